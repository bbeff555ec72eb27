/**
 * Where the API server is and how to authenticate, read without @kubernetes/client-node for the
 * common cases: the in-cluster service account, and a kubeconfig whose user has a client
 * certificate, a bearer token (or token file) or basic auth. Loading client-node costs ~75 MiB of
 * resident memory for its generated models, so it is imported only for what this file does not
 * handle (exec and auth-provider plugins, a KUBECONFIG list of several files).
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";
import { KubeError } from "./errors.ts";

export interface ApiAccess {
  readonly server: string;
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly skipTlsVerify: boolean;
  /** Headers for one request (a bearer token file is re-read as it rotates). */
  headers(): Promise<Record<string, string>>;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Bound service-account tokens rotate; re-read the file at most this often. */
const TOKEN_FILE_TTL_MS = 60_000;

/** A kubeconfig list item: `{name, cluster: {...}}`, `{name, user: {...}}`, `{name, context: {...}}`. */
interface NamedEntry {
  readonly name?: string;
  readonly [field: string]: unknown;
}

interface ClusterEntry {
  readonly server?: string;
  readonly "certificate-authority"?: string;
  readonly "certificate-authority-data"?: string;
  readonly "insecure-skip-tls-verify"?: boolean;
}

interface UserEntry {
  readonly "client-certificate"?: string;
  readonly "client-certificate-data"?: string;
  readonly "client-key"?: string;
  readonly "client-key-data"?: string;
  readonly token?: string;
  readonly tokenFile?: string;
  readonly username?: string;
  readonly password?: string;
  readonly exec?: unknown;
  readonly "auth-provider"?: unknown;
}

interface KubeconfigFile {
  readonly "current-context"?: string;
  readonly contexts?: NamedEntry[];
  readonly clusters?: NamedEntry[];
  readonly users?: NamedEntry[];
}

function tokenFileReader(path: string): () => string {
  let token = "";
  let readAt = Number.NEGATIVE_INFINITY;
  return () => {
    const now = performance.now();
    if (now - readAt > TOKEN_FILE_TTL_MS) {
      token = readFileSync(path, "utf8").trim();
      readAt = now;
    }
    return token;
  };
}

function bearer(token: (() => string) | undefined): () => Promise<Record<string, string>> {
  return () => {
    const headers: Record<string, string> = {};
    if (token !== undefined) headers["authorization"] = `Bearer ${token()}`;
    return Promise.resolve(headers);
  };
}

function inCluster(): ApiAccess | undefined {
  const host = process.env["KUBERNETES_SERVICE_HOST"];
  const port = process.env["KUBERNETES_SERVICE_PORT"];
  if (host === undefined || port === undefined || !existsSync(join(SA_DIR, "token"))) return undefined;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    ca: readFileSync(join(SA_DIR, "ca.crt")),
    skipTlsVerify: false,
    headers: bearer(tokenFileReader(join(SA_DIR, "token"))),
  };
}

/** The `field` object of the list item called `name` (a kubeconfig's contexts, clusters, users). */
function entry(list: NamedEntry[] | undefined, name: string | undefined, field: string): unknown {
  return list?.find((e) => e.name === name)?.[field];
}

/** Inline `*-data` (base64) or a file path relative to the kubeconfig's directory. */
function material(base: string, data: string | undefined, file: string | undefined): Buffer | undefined {
  if (data !== undefined) return Buffer.from(data, "base64");
  if (file !== undefined) return readFileSync(isAbsolute(file) ? file : join(base, file));
  return undefined;
}

/** Undefined when the file needs what only client-node does (exec or auth-provider plugins). */
function fromFile(path: string): ApiAccess | undefined {
  const config = (parseYaml(readFileSync(path, "utf8")) ?? {}) as KubeconfigFile;
  const contextName = config["current-context"];
  const context = entry(config.contexts, contextName, "context") as
    { cluster?: string; user?: string } | undefined;
  const cluster = entry(config.clusters, context?.cluster, "cluster") as ClusterEntry | undefined;
  if (cluster?.server === undefined) {
    throw new KubeError(
      "TETHER_ERR_KUBE_CONFIG",
      `kubeconfig ${path} has no current cluster (set current-context)`,
    );
  }
  const user = (entry(config.users, context?.user, "user") ?? {}) as UserEntry;
  if (user.exec !== undefined || user["auth-provider"] !== undefined) return undefined;
  const base = dirname(path);
  const token =
    user.token !== undefined
      ? (): string => user.token ?? ""
      : user.tokenFile !== undefined
        ? tokenFileReader(isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile))
        : undefined;
  const basic =
    user.username !== undefined && user.password !== undefined
      ? `Basic ${Buffer.from(`${user.username}:${user.password}`).toString("base64")}`
      : undefined;
  const ca = material(base, cluster["certificate-authority-data"], cluster["certificate-authority"]);
  const cert = material(base, user["client-certificate-data"], user["client-certificate"]);
  const key = material(base, user["client-key-data"], user["client-key"]);
  return {
    server: cluster.server,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    skipTlsVerify: cluster["insecure-skip-tls-verify"] === true,
    headers:
      basic !== undefined && token === undefined
        ? (): Promise<Record<string, string>> => Promise.resolve({ authorization: basic })
        : bearer(token),
  };
}

/**
 * The API access from `kubeconfigPath`, else as kubectl finds it (KUBECONFIG, ~/.kube/config, the
 * in-cluster service account); undefined when only client-node can load it.
 */
export function loadApiAccess(kubeconfigPath?: string): ApiAccess | undefined {
  if (kubeconfigPath !== undefined) return fromFile(kubeconfigPath);
  const env = process.env["KUBECONFIG"];
  if (env !== undefined && env !== "") {
    const paths = env.split(":").filter((p) => p !== "");
    return paths.length === 1 && paths[0] !== undefined ? fromFile(paths[0]) : undefined;
  }
  const home = join(homedir(), ".kube", "config");
  if (existsSync(home)) return fromFile(home);
  return inCluster();
}

/**
 * Command-line flags, each with an environment variable (the flag wins). Bad values are errors
 * naming the flag, with code TETHER_ERR_OPERATOR_CONFIG.
 */
import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

export const DEFAULT_SIDECAR_IMAGE = "localhost/tether/sidecar:0.1.0";

export interface OperatorConfig {
  readonly kubeconfig: string | undefined;
  /** Empty: all namespaces. */
  readonly namespaces: string[];
  readonly sidecarImage: string;
  /** imagePullPolicy of the sidecar containers; empty: Kubernetes' default for the tag. */
  readonly sidecarImagePullPolicy: "" | "Always" | "IfNotPresent" | "Never";
  /** Render the agent's sidecar as a native sidecar (init container, restartPolicy Always). */
  readonly nativeSidecar: boolean;
  readonly clusterDomain: string;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly leaderElect: boolean;
  readonly leaseName: string;
  readonly leaseNamespace: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly concurrency: number;
  readonly resyncPeriodMs: number;
  readonly watchTimeoutSeconds: number;
  readonly logLevel: string;
  /** The ADS server's listen address; undefined: no xDS server. */
  readonly xds: { readonly host: string; readonly port: number } | undefined;
  /** `<service>.<namespace>` sidecars reach the ADS server at; undefined: static bootstraps only. */
  readonly xdsService: string | undefined;
  /** Serve xDS over TLS with a certificate from the operator's own CA (and tell sidecars to verify it). */
  readonly xdsTls: boolean;
  /**
   * A kubernetes.io/tls Secret in the operator's namespace (cert-manager's) to serve xDS with instead
   * of the operator's own CA; undefined: the operator's CA.
   */
  readonly xdsTlsSecret: string | undefined;
  /** The Secret, in the operator's namespace, holding the operator's CA. */
  readonly caSecret: string;
  /** The namespace the operator runs in (the CA Secret's). */
  readonly operatorNamespace: string;
  /** Sidecars present projected ServiceAccount tokens, verified by TokenReview (see docs/xds-security.md). */
  readonly xdsAuth: boolean;
  /** TokenReviews and pod GETs of the identity check in flight at once; more streams wait. */
  readonly xdsAuthMaxReviews: number;
  /** How long a stream waits for a review slot before it is refused with UNAVAILABLE. */
  readonly xdsAuthQueueTimeoutMs: number;
  /** The admission webhook (sidecar injection); undefined: not served. */
  readonly webhook: WebhookConfig | undefined;
}

export interface WebhookConfig {
  readonly host: string;
  readonly port: number;
  /** The Service the API server reaches it through: its DNS names go in the serving certificate. */
  readonly service: { readonly name: string; readonly namespace: string } | undefined;
  /** More DNS names for the serving certificate. */
  readonly extraDnsNames: readonly string[];
  /** The MutatingWebhookConfiguration whose caBundle the operator keeps current; undefined: none. */
  readonly configurationName: string | undefined;
}

export class ConfigError extends Error {
  readonly code = "TETHER_ERR_OPERATOR_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Each flag, its environment variable and its default. */
export const FLAGS = {
  kubeconfig: {
    env: "KUBECONFIG",
    default: "",
    help: "kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster)",
  },
  namespaces: {
    env: "TETHER_NAMESPACES",
    default: "",
    help: "comma-separated namespaces to watch; empty or '*' = all",
  },
  "sidecar-image": {
    env: "TETHER_SIDECAR_IMAGE",
    default: DEFAULT_SIDECAR_IMAGE,
    help: "sidecar image for Agents and Brokers that name none",
  },
  "sidecar-image-pull-policy": {
    env: "TETHER_SIDECAR_IMAGE_PULL_POLICY",
    default: "",
    help: "imagePullPolicy of the sidecar containers: Always, IfNotPresent, Never; empty = Kubernetes' default",
  },
  "native-sidecar": {
    env: "TETHER_NATIVE_SIDECAR",
    default: "true",
    help: "agent sidecars as native sidecars (Kubernetes >= 1.29); false: a plain container (true|false)",
  },
  "cluster-domain": {
    env: "TETHER_CLUSTER_DOMAIN",
    default: "cluster.local",
    help: "cluster DNS domain for Service host names",
  },
  "admin-address": {
    env: "TETHER_ADMIN_ADDRESS",
    default: "0.0.0.0:8080",
    help: "host:port of /metrics, /healthz, /readyz (port 0 = any free port)",
  },
  "leader-elect": { env: "TETHER_LEADER_ELECT", default: "true", help: "run leader election (true|false)" },
  "lease-name": {
    env: "TETHER_LEASE_NAME",
    default: "tether-operator",
    help: "name of the leader-election Lease",
  },
  "lease-namespace": {
    env: "TETHER_LEASE_NAMESPACE",
    default: "",
    help: "namespace of the Lease (default: the pod's namespace, else default)",
  },
  identity: {
    env: "TETHER_IDENTITY",
    default: "",
    help: "this replica's identity in the Lease (default: hostname-pid)",
  },
  "lease-duration": {
    env: "TETHER_LEASE_DURATION",
    default: "10s",
    help: "how long a lease is valid without renewal",
  },
  "renew-deadline": {
    env: "TETHER_RENEW_DEADLINE",
    default: "7s",
    help: "a leader that cannot renew for this long stops writing",
  },
  "retry-period": {
    env: "TETHER_RETRY_PERIOD",
    default: "2s",
    help: "how often to try to acquire or renew the lease",
  },
  concurrency: {
    env: "TETHER_CONCURRENCY",
    default: "4",
    help: "reconciles run in parallel (different keys)",
  },
  "resync-period": {
    env: "TETHER_RESYNC_PERIOD",
    default: "10m",
    help: "reconcile everything this often; 0 = never",
  },
  "watch-timeout": {
    env: "TETHER_WATCH_TIMEOUT",
    default: "5m",
    help: "server-side watch timeout; the watchdog fires 60s after it",
  },
  "xds-address": {
    env: "TETHER_XDS_ADDRESS",
    default: "0.0.0.0:18000",
    help: "host:port of the xDS (ADS) server every replica runs; empty = none",
  },
  "xds-service": {
    env: "TETHER_XDS_SERVICE",
    default: "",
    help: "<service>.<namespace> sidecars reach the xDS server at; empty = static bootstraps only",
  },
  "xds-tls": {
    env: "TETHER_XDS_TLS",
    default: "true",
    help: "serve xDS over TLS from the operator's own CA; sidecars verify it (true|false)",
  },
  "xds-tls-secret": {
    env: "TETHER_XDS_TLS_SECRET",
    default: "",
    help: "kubernetes.io/tls Secret in the operator's namespace (e.g. cert-manager's) to serve xDS with; its ca.crt goes to the sidecars; empty = the operator's own CA",
  },
  "webhook-address": {
    env: "TETHER_WEBHOOK_ADDRESS",
    default: "",
    help: "host:port of the sidecar-injection admission webhook (HTTPS) every replica serves; empty = none",
  },
  "webhook-service": {
    env: "TETHER_WEBHOOK_SERVICE",
    default: "",
    help: "<service>.<namespace> the API server reaches the webhook at (names in its serving certificate)",
  },
  "webhook-extra-dns-names": {
    env: "TETHER_WEBHOOK_EXTRA_DNS_NAMES",
    default: "",
    help: "comma-separated extra DNS names in the webhook's certificate (a clientConfig.url not through the Service)",
  },
  "webhook-configuration": {
    env: "TETHER_WEBHOOK_CONFIGURATION",
    default: "",
    help: "MutatingWebhookConfiguration whose caBundle the operator keeps current; empty = none",
  },
  "ca-secret": {
    env: "TETHER_CA_SECRET",
    default: "tether-ca",
    help: "Secret in the operator's namespace (POD_NAMESPACE) holding its CA; created when missing",
  },
  "xds-auth": {
    env: "TETHER_XDS_AUTH",
    default: "true",
    help: "sidecars present a projected ServiceAccount token (TokenReview) and get their own Agent's or Broker's config only; false: no identity check (true|false)",
  },
  "xds-auth-max-reviews": {
    env: "TETHER_XDS_AUTH_MAX_REVIEWS",
    default: "16",
    help: "TokenReviews and pod GETs of the xDS identity check in flight at once; more streams wait",
  },
  "xds-auth-queue-timeout": {
    env: "TETHER_XDS_AUTH_QUEUE_TIMEOUT",
    default: "10s",
    help: "a stream waiting this long for a review slot is refused with UNAVAILABLE (the sidecar retries)",
  },
  "log-level": {
    env: "TETHER_LOG_LEVEL",
    default: "info",
    help: "pino level: trace, debug, info, warn, error",
  },
} as const;

type FlagName = keyof typeof FLAGS;

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function durationMs(flag: string, text: string): number {
  const m = DURATION.exec(text.trim());
  if (m === null) throw new ConfigError(`--${flag}: "${text}" is not a duration like 500ms, 10s or 5m`);
  return Number(m[1]) * (UNIT[m[2] ?? "s"] ?? 1000);
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--${flag}: "${text}" is not a positive integer`);
  return n;
}

function pullPolicy(flag: string, text: string): OperatorConfig["sidecarImagePullPolicy"] {
  if (text === "" || text === "Always" || text === "IfNotPresent" || text === "Never") return text;
  throw new ConfigError(`--${flag}: "${text}" is not Always, IfNotPresent or Never`);
}

function bool(flag: string, text: string): boolean {
  if (/^(true|1|yes|on)$/i.test(text)) return true;
  if (/^(false|0|no|off)$/i.test(text)) return false;
  throw new ConfigError(`--${flag}: "${text}" is not true or false`);
}

function address(flag: string, text: string): { host: string; port: number } {
  const i = text.lastIndexOf(":");
  const port = Number(text.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`--${flag}: "${text}" is not host:port`);
  }
  return { host: text.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0", port };
}

function podNamespace(): string | undefined {
  try {
    return readFileSync("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "utf8").trim();
  } catch {
    return undefined;
  }
}

export function usage(): string {
  const lines = Object.entries(FLAGS).map(
    ([name, f]) => `  --${name.padEnd(16)} ${f.help} [env ${f.env}; default "${f.default}"]`,
  );
  return `Usage: tether-operator [flags]\n${lines.join("\n")}\n  --help             this text`;
}

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): OperatorConfig | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: "string" as const }]));
    values = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: "boolean" } },
      strict: true,
    }).values;
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  if (values["help"] === true) return "help";
  const get = (name: FlagName): string => {
    const flag = values[name];
    if (typeof flag === "string") return flag;
    return env[FLAGS[name].env] ?? FLAGS[name].default;
  };
  const ns = get("namespaces").trim();
  const admin = address("admin-address", get("admin-address"));
  const leaseDurationMs = durationMs("lease-duration", get("lease-duration"));
  const renewDeadlineMs = durationMs("renew-deadline", get("renew-deadline"));
  if (renewDeadlineMs >= leaseDurationMs)
    throw new ConfigError("--renew-deadline must be shorter than --lease-duration");
  const kubeconfig = get("kubeconfig");
  const xdsAddress = get("xds-address").trim();
  const xdsService = get("xds-service").trim();
  if (xdsService !== "" && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(xdsService))
    throw new ConfigError(`--xds-service: "${xdsService}" is not <service>.<namespace>`);
  if (xdsService !== "" && xdsAddress === "")
    throw new ConfigError("--xds-service needs the xDS server (--xds-address)");
  const operatorNamespace = env["POD_NAMESPACE"] || podNamespace() || "default";
  const caSecret = get("ca-secret").trim();
  if (!/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(caSecret) || caSecret.length > 253)
    throw new ConfigError(`--ca-secret: "${caSecret}" is not a Secret name`);
  const xdsTls = bool("xds-tls", get("xds-tls"));
  const xdsTlsSecret = xdsTlsSecretOf(get, xdsTls);
  return {
    kubeconfig: kubeconfig === "" ? undefined : kubeconfig,
    namespaces:
      ns === "" || ns === "*"
        ? []
        : ns
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== ""),
    sidecarImage: get("sidecar-image"),
    sidecarImagePullPolicy: pullPolicy("sidecar-image-pull-policy", get("sidecar-image-pull-policy")),
    nativeSidecar: bool("native-sidecar", get("native-sidecar")),
    clusterDomain: get("cluster-domain"),
    adminHost: admin.host,
    adminPort: admin.port,
    leaderElect: bool("leader-elect", get("leader-elect")),
    leaseName: get("lease-name"),
    leaseNamespace: get("lease-namespace") || operatorNamespace,
    identity: get("identity") || `${hostname()}-${process.pid}`,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs: durationMs("retry-period", get("retry-period")),
    concurrency: positiveInt("concurrency", get("concurrency")),
    resyncPeriodMs: get("resync-period") === "0" ? 0 : durationMs("resync-period", get("resync-period")),
    watchTimeoutSeconds: Math.max(1, Math.round(durationMs("watch-timeout", get("watch-timeout")) / 1000)),
    logLevel: get("log-level"),
    xds: xdsAddress === "" ? undefined : address("xds-address", xdsAddress),
    xdsService: xdsService === "" ? undefined : xdsService,
    xdsTls,
    xdsTlsSecret,
    caSecret,
    operatorNamespace,
    xdsAuth: bool("xds-auth", get("xds-auth")),
    xdsAuthMaxReviews: positiveInt("xds-auth-max-reviews", get("xds-auth-max-reviews")),
    xdsAuthQueueTimeoutMs: durationMs("xds-auth-queue-timeout", get("xds-auth-queue-timeout")),
    webhook: webhookConfig(get),
  };
}

function xdsTlsSecretOf(get: (name: FlagName) => string, xdsTls: boolean): string | undefined {
  const name = get("xds-tls-secret").trim();
  if (name === "") return undefined;
  if (!/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 253)
    throw new ConfigError(`--xds-tls-secret: "${name}" is not a Secret name`);
  if (!xdsTls) throw new ConfigError("--xds-tls-secret needs --xds-tls=true");
  return name;
}

const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function webhookConfig(get: (name: FlagName) => string): WebhookConfig | undefined {
  const where = get("webhook-address").trim();
  if (where === "") return undefined;
  const { host, port } = address("webhook-address", where);
  const service = get("webhook-service").trim();
  const [serviceName = "", serviceNamespace = ""] = service.split(".");
  if (service !== "" && (service.split(".").length !== 2 || !DNS_NAME.test(service)))
    throw new ConfigError(`--webhook-service: "${service}" is not <service>.<namespace>`);
  const extraDnsNames = get("webhook-extra-dns-names")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const name of extraDnsNames) {
    if (!DNS_NAME.test(name)) throw new ConfigError(`--webhook-extra-dns-names: "${name}" is not a DNS name`);
  }
  if (service === "" && extraDnsNames.length === 0)
    throw new ConfigError("--webhook-address needs --webhook-service (or --webhook-extra-dns-names)");
  const configuration = get("webhook-configuration").trim();
  return {
    host,
    port,
    service: service === "" ? undefined : { name: serviceName, namespace: serviceNamespace },
    extraDnsNames,
    configurationName: configuration === "" ? undefined : configuration,
  };
}

/**
 * The scenarios' resources, taken from examples/quick-start so the end-to-end suite runs what users
 * apply, with the few changes a scenario needs (replica counts, names).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../controlplane/binaries.ts";

type Resource = { metadata: { name: string }; spec: Record<string, unknown> } & Record<string, unknown>;

function example(file: string): Resource {
  return parse(readFileSync(join(REPO_ROOT, "examples/quick-start", file), "utf8")) as Resource;
}

/** TLS for the demo policy servers: their certificate's Secret, and what the agents verify it with. */
export interface PolicyServerTls {
  /** A kubernetes.io/tls Secret mounted into every policy server pod (tls.crt, tls.key). */
  readonly certSecret: string;
  /** A Secret holding the CA bundle under `ca.crt` (spec.tls.caSecretRef). */
  readonly caSecret: string;
  /** The name the sidecars send as SNI and verify (spec.tls.serverName). */
  readonly serverName: string;
}

/**
 * The quick-start PolicyServerCluster (demo policy servers over HTTP, health-checked). With `tls`
 * the servers serve HTTPS with the certificate Secret mounted at TLS_MOUNT (and follow its updates),
 * and the agents' sidecars verify them against the CA Secret.
 */
export function policyServerCluster(
  options: { name?: string; replicas?: number; tls?: PolicyServerTls } = {},
): string {
  const psc = example("01-policy-server-cluster.yaml");
  psc.metadata.name = options.name ?? psc.metadata.name;
  const managed = psc.spec["managed"] as Record<string, unknown>;
  if (options.replicas !== undefined) managed["replicas"] = options.replicas;
  if (options.tls !== undefined) {
    const tls = options.tls;
    psc.spec["tls"] = {
      enabled: true,
      caSecretRef: { name: tls.caSecret, key: "ca.crt" },
      serverName: tls.serverName,
    };
    const pod = (managed["template"] as { spec: Record<string, unknown> }).spec;
    const [server] = pod["containers"] as Record<string, unknown>[];
    if (server === undefined) throw new Error("the quick-start PolicyServerCluster has no container");
    server["args"] = [
      ...(server["args"] as string[]),
      ...["--tls-cert", `${TLS_MOUNT}/tls.crt`, "--tls-key", `${TLS_MOUNT}/tls.key`],
    ];
    const probe = server["readinessProbe"] as { httpGet: Record<string, unknown> };
    probe.httpGet["scheme"] = "HTTPS";
    server["volumeMounts"] = [{ name: "tls", mountPath: TLS_MOUNT, readOnly: true }];
    pod["volumes"] = [{ name: "tls", secret: { secretName: tls.certSecret } }];
  }
  return stringify(psc);
}

/**
 * The quick-start Agent (demo agent + tether-sidecar), one replica by default so the client's
 * traffic reaches the pod whose restarts are counted. The decision cache is off unless `cache`
 * is given: with it on, every request for one path after the first would be answered by the
 * sidecar and the policy servers' restarts would go unseen.
 */
export function agent(
  options: {
    name?: string;
    policyServerCluster?: string;
    replicas?: number;
    cache?: { ttl: string; notifications?: boolean };
    /** The sidecar's JSON access log on its stdout (one line per request). */
    accessLog?: boolean;
    /** false: the sidecar runs its bootstrap ConfigMap alone (spec.sidecar.xds.enabled). */
    xds?: boolean;
    /** spec.pool, e.g. maxRequestsPerConnection so connections (and handshakes) renew under load. */
    pool?: Record<string, unknown>;
  } = {},
): string {
  const a = example("02-agent.yaml");
  const sidecar = (a.spec["sidecar"] ?? {}) as Record<string, unknown>;
  a.spec["sidecar"] = {
    ...sidecar,
    ...(options.accessLog === true ? { accessLog: { enabled: true } } : {}),
    ...(options.xds === false ? { xds: { enabled: false } } : {}),
  };
  a.metadata.name = options.name ?? a.metadata.name;
  a.spec["replicas"] = options.replicas ?? 1;
  if (options.policyServerCluster !== undefined) {
    a.spec["policyServerClusterRef"] = { name: options.policyServerCluster };
  }
  a.spec["cache"] =
    options.cache === undefined
      ? { enabled: false }
      : { enabled: true, ttl: options.cache.ttl, notifications: options.cache.notifications ?? true };
  if (options.pool !== undefined) a.spec["pool"] = options.pool;
  return stringify(a);
}

/** Label selector of the pods of an Agent, a managed PolicyServerCluster or a Broker (the API's child labels). */
export function podsOf(name: string, component: "agent" | "policy-server" | "broker"): string {
  return `app.kubernetes.io/instance=${name},app.kubernetes.io/component=${component}`;
}

/** The demo image, as the quick-start examples name it (localhost/tether/demo:<version>). */
export function demoImage(): string {
  const psc = example("01-policy-server-cluster.yaml");
  const template = (psc.spec["managed"] as { template: { spec: { containers: { image: string }[] } } })
    .template;
  const image = template.spec.containers[0]?.image;
  if (image === undefined)
    throw new Error("examples/quick-start/01-policy-server-cluster.yaml: no container image");
  return image;
}

/** A container security context that passes the restricted Pod Security Standard (but seccomp). */
const RESTRICTED = {
  runAsNonRoot: true,
  runAsUser: 65532,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
};

/**
 * A ClusterIP Service in front of an Agent's pods (the operator makes none: users choose how their
 * web servers are reached): the demo agent's port and the sidecar's proxy port.
 */
export function agentService(name = "web"): string {
  return stringify({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name },
    spec: {
      selector: { "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "agent" },
      ports: [
        { name: "agent", port: AGENT_PORT, targetPort: AGENT_PORT },
        { name: "proxy", port: PROXY_PORT, targetPort: PROXY_PORT },
      ],
    },
  });
}

export interface Mount {
  /** Volume name. */
  readonly name: string;
  readonly mountPath: string;
  /** Exactly one of a Secret or a ConfigMap. */
  readonly secret?: string;
  readonly configMap?: string;
}

function volumes(mounts: readonly Mount[]): { volumes?: unknown[]; volumeMounts?: unknown[] } {
  if (mounts.length === 0) return {};
  return {
    volumes: mounts.map((m) =>
      m.secret !== undefined
        ? { name: m.name, secret: { secretName: m.secret } }
        : { name: m.name, configMap: { name: m.configMap } },
    ),
    volumeMounts: mounts.map((m) => ({ name: m.name, mountPath: m.mountPath, readOnly: true })),
  };
}

/**
 * The scenarios' client: a pod running the demo image's `idle` role, into which the suite `kubectl
 * exec`s the `load` and `request` commands, so traffic starts inside the cluster (Service DNS,
 * kube-proxy, pod network) rather than at a port-forward.
 */
export function clientPod(options: { name?: string; mounts?: readonly Mount[] } = {}): string {
  const { volumes: vols, volumeMounts } = volumes(options.mounts ?? []);
  return stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: options.name ?? CLIENT_POD, labels: { "app.kubernetes.io/name": "tether-e2e-client" } },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      automountServiceAccountToken: false,
      containers: [
        {
          name: "client",
          image: demoImage(),
          imagePullPolicy: "IfNotPresent",
          args: ["idle"],
          securityContext: RESTRICTED,
          ...(volumeMounts === undefined ? {} : { volumeMounts }),
        },
      ],
      ...(vols === undefined ? {} : { volumes: vols }),
    },
  });
}

/** The client pod's default name. */
export const CLIENT_POD = "client";

/**
 * Bare backend pods `<name>-0 … <name>-(n-1)` behind a headless Service `<name>` (each pod also gets
 * `<name>-i.<name>` in DNS, as a StatefulSet's would). Bare on purpose: a killed backend is not
 * replaced, so "after the loss" means exactly one fewer backend. `args` gets the pod's index.
 */
function backendPods(options: {
  name: string;
  count: number;
  port: number;
  args: (index: number) => string[];
  mounts?: (index: number) => Mount[];
}): string {
  const labels = {
    "app.kubernetes.io/name": "tether-e2e-backend",
    "app.kubernetes.io/instance": options.name,
  };
  const docs: unknown[] = [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: options.name },
      spec: {
        clusterIP: "None",
        selector: labels,
        ports: [{ name: "app", port: options.port, targetPort: options.port }],
      },
    },
  ];
  for (let i = 0; i < options.count; i++) {
    const { volumes: vols, volumeMounts } = volumes(options.mounts?.(i) ?? []);
    docs.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `${options.name}-${i}`, labels },
      spec: {
        hostname: `${options.name}-${i}`,
        subdomain: options.name,
        restartPolicy: "Never",
        terminationGracePeriodSeconds: 1,
        automountServiceAccountToken: false,
        containers: [
          {
            name: "backend",
            image: demoImage(),
            imagePullPolicy: "IfNotPresent",
            args: options.args(i),
            ports: [{ name: "app", containerPort: options.port }],
            readinessProbe: { tcpSocket: { port: options.port }, periodSeconds: 1 },
            securityContext: RESTRICTED,
            ...(volumeMounts === undefined ? {} : { volumeMounts }),
          },
        ],
        ...(vols === undefined ? {} : { volumes: vols }),
      },
    });
  }
  return docs.map((doc) => stringify(doc)).join("---\n");
}

/** Demo HTTP servers `<name>-i` (answering with their own name) for the ProxyRoute scenario. */
export function httpBackends(options: { name?: string; count?: number; port?: number } = {}): string {
  const port = options.port ?? PROXY_BACKEND_PORT;
  return backendPods({
    name: options.name ?? "app",
    count: options.count ?? 2,
    port,
    args: () => ["policy-server", "--port", String(port), "--protocol", "http"],
  });
}

export const PROXY_BACKEND_PORT = 8080;

/** Where a TLS backend pod finds its kubernetes.io/tls Secret and the client pod the CA. */
export const TLS_MOUNT = "/etc/tether-e2e/tls";
export const CA_MOUNT = "/etc/tether-e2e/ca";

/** Demo TLS backends `<name>-i`, each serving the certificate of Secret `<name>-i-tls`. */
export function tlsBackends(options: { name?: string; count?: number; port?: number } = {}): string {
  const name = options.name ?? "appserver";
  const port = options.port ?? TLS_BACKEND_PORT;
  return backendPods({
    name,
    count: options.count ?? 2,
    port,
    args: () => [
      "tls-backend",
      "--port",
      String(port),
      "--cert",
      `${TLS_MOUNT}/tls.crt`,
      "--key",
      `${TLS_MOUNT}/tls.key`,
    ],
    mounts: (i) => [{ name: "tls", mountPath: TLS_MOUNT, secret: `${name}-${i}-tls` }],
  });
}

export const TLS_BACKEND_PORT = 50001;

/** A kubernetes.io/tls Secret. */
export function tlsSecret(name: string, certPem: string, keyPem: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name },
    type: "kubernetes.io/tls",
    stringData: { "tls.crt": certPem, "tls.key": keyPem },
  });
}

/** A Secret holding a CA bundle (one or more PEM certificates) under `ca.crt`, as caSecretRef names it. */
export function caSecret(name: string, bundlePem: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name },
    type: "Opaque",
    stringData: { "ca.crt": bundlePem },
  });
}

/** A ConfigMap holding a CA certificate under `ca.crt` (public: no Secret needed). */
export function caConfigMap(name: string, caPem: string): string {
  return stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: { "ca.crt": caPem } });
}

/**
 * The quick-start Broker in front of the TLS backends' headless Service, with health checks fast
 * enough that a lost backend leaves rotation within a few seconds.
 */
export function broker(options: { backend?: string; port?: number; replicas?: number } = {}): string {
  const b = example("04-broker.yaml");
  b.spec["backends"] = {
    serviceRef: { name: options.backend ?? "appserver", port: options.port ?? TLS_BACKEND_PORT },
  };
  b.spec["healthCheck"] = {
    type: "tls",
    interval: "1s",
    timeout: "500ms",
    unhealthyThreshold: 2,
    healthyThreshold: 1,
  };
  if (options.replicas !== undefined) b.spec["replicas"] = options.replicas;
  return stringify(b);
}

/** The Broker's name and port in the quick-start example. */
export const BROKER = { name: "appserver-broker", port: 20001 } as const;

/** The port the demo agent serves on in the example. */
export const AGENT_PORT = 8000;

/**
 * ProxyRoutes on the Agent `web` to the demo servers of a PolicyServerCluster (their headless
 * Service): `/app/…` with the prefix trimmed and sticky sessions by the JSESSIONID cookie, and
 * `*.jsp` by extension. The demo servers answer with their own name (the pod's), so a test sees
 * which server served each request.
 */
export function proxyRoutes(options: { backend?: string; listenerPort?: number } = {}): string {
  const backend = { serviceRef: { name: options.backend ?? "ps-main", port: 8080 } };
  const common = {
    agentRef: { name: "web" },
    listenerPort: options.listenerPort ?? PROXY_PORT,
    backend,
    timeouts: { connect: "1s", retryInterval: "250ms", request: "30s" },
  };
  return [
    {
      apiVersion: "tether.dev/v1alpha1",
      kind: "ProxyRoute",
      metadata: { name: "app" },
      spec: {
        ...common,
        match: { pathPrefix: "/app/" },
        rewrite: { pathTrim: "/app" },
        sessionAffinity: { cookieName: "JSESSIONID" },
      },
    },
    {
      apiVersion: "tether.dev/v1alpha1",
      kind: "ProxyRoute",
      metadata: { name: "pages" },
      spec: { ...common, match: { extensions: ["jsp"] } },
    },
  ]
    .map((doc) => stringify(doc))
    .join("---\n");
}

/**
 * One ProxyRoute `name` on the Agent `web`: requests under `prefix` (e.g. `/v3/`) go to the demo
 * servers `backend` with the prefix trimmed (`/v3/authorize` → `/authorize`). Applied again with
 * another prefix, it is a config change whose effect a client sees: the new prefix answers.
 */
export function prefixRoute(options: { name: string; prefix: string; backend?: string }): string {
  return stringify({
    apiVersion: "tether.dev/v1alpha1",
    kind: "ProxyRoute",
    metadata: { name: options.name },
    spec: {
      agentRef: { name: "web" },
      listenerPort: PROXY_PORT,
      backend: { serviceRef: { name: options.backend ?? "app", port: PROXY_BACKEND_PORT } },
      timeouts: { connect: "1s", retryInterval: "250ms", request: "30s" },
      match: { pathPrefix: options.prefix },
      rewrite: { pathTrim: options.prefix.replace(/\/$/, "") },
    },
  });
}

/** The sidecar's inbound HTTP port for the scenarios' ProxyRoutes. */
export const PROXY_PORT = 8080;

/** Pod-template helpers shared by the Agent, PolicyServerCluster and Broker renderers. */
import { POD_TEMPLATE_HASH_ANNOTATION } from "./meta.ts";
import { stableHash } from "./hash.ts";
import { xdsCaMount } from "./xds-ca.ts";

export type JsonObject = Record<string, unknown>;

export interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> } & JsonObject;
  spec: { containers: JsonObject[] } & JsonObject;
}

export const SIDECAR_CONTAINER = "tether-sidecar";
export const SIDECAR_CONFIG_DIR = "/etc/tether/sidecar";
export const SIDECAR_CONFIG_FILE = `${SIDECAR_CONFIG_DIR}/envoy.yaml`;
export const AGENT_CONFIG_DIR = "/etc/tether/agent";
/** The sidecar image's non-root user; set explicitly so runAsNonRoot holds whatever the image says. */
export const SIDECAR_UID = 65532;

function asObject(value: unknown): JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : {};
}

function asStringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(asObject(value))) if (typeof v === "string") out[k] = v;
  return out;
}

/** A deep copy of the user's template with our selector labels forced on (ours win). */
export function userTemplate(template: unknown, labels: Record<string, string>): PodTemplate {
  const copy = asObject(structuredClone(template));
  const metadata = asObject(copy["metadata"]);
  const spec = asObject(copy["spec"]);
  const containers = Array.isArray(spec["containers"]) ? (spec["containers"] as unknown[]).map(asObject) : [];
  const annotations = asStringMap(metadata["annotations"]);
  const out: PodTemplate = {
    metadata: { ...metadata, labels: { ...asStringMap(metadata["labels"]), ...labels } },
    spec: { ...spec, containers },
  };
  if (Object.keys(annotations).length > 0) out.metadata.annotations = annotations;
  else delete out.metadata["annotations"];
  return out;
}

/** Stamps the template with a hash of itself; the hash changes exactly when the template does. */
export function withTemplateHash(template: PodTemplate): PodTemplate {
  const annotations = Object.fromEntries(
    Object.entries(template.metadata.annotations ?? {}).filter(([k]) => k !== POD_TEMPLATE_HASH_ANNOTATION),
  );
  const unstamped: PodTemplate = {
    ...template,
    metadata: { ...template.metadata, annotations },
  };
  if (Object.keys(annotations).length === 0) delete unstamped.metadata["annotations"];
  const hash = stableHash(unstamped);
  return {
    ...template,
    metadata: { ...template.metadata, annotations: { ...annotations, [POD_TEMPLATE_HASH_ANNOTATION]: hash } },
  };
}

/** Kubernetes' "restricted" Pod Security Standard, at container level. */
export function restrictedSecurityContext(): JsonObject {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: SIDECAR_UID,
    runAsGroup: SIDECAR_UID,
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** Readiness and liveness on the sidecar admin's /ready (Envoy's: the server is live). */
export function sidecarProbes(adminPort: number): JsonObject {
  const httpGet = { path: "/ready", port: adminPort };
  return {
    readinessProbe: { httpGet, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3 },
    livenessProbe: { httpGet, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 6 },
    startupProbe: { httpGet, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 60 },
  };
}

export interface SidecarContainerInput {
  readonly image: string;
  readonly imagePullPolicy?: string | undefined;
  readonly adminPort: number;
  readonly ports: readonly { readonly name: string; readonly containerPort: number }[];
  readonly resources?: JsonObject | undefined;
  readonly extraMounts?: readonly JsonObject[];
  readonly args?: readonly string[];
  /** With xDS: the ADS node.cluster of this sidecar; the node id comes from the pod. */
  readonly xdsGroup?: string | undefined;
  /** With xDS over TLS: mount the tether-xds-ca bundle (the pod needs xdsCaVolume()). */
  readonly xdsCa?: boolean | undefined;
  /** Mount the xdsTokenVolume and pass it as --xds-token-file (the pod must have the volume). */
  readonly xdsToken?: boolean;
}

/** The projected ServiceAccount token the sidecar presents to the ADS server, mounted in it alone. */
export const XDS_TOKEN_VOLUME = "tether-xds-token";
export const XDS_TOKEN_DIR = "/var/run/secrets/tether.dev/xds";
export const XDS_TOKEN_FILE = `${XDS_TOKEN_DIR}/token`;
/** Short-lived: the kubelet rewrites the file at 80% of this, and the sidecar reads it at every connect. */
export const XDS_TOKEN_EXPIRATION_SECONDS = 600;

/** A projected volume with a token of the pod's ServiceAccount, bound to the pod, for `audience`. */
export function xdsTokenVolume(audience: string): JsonObject {
  return {
    name: XDS_TOKEN_VOLUME,
    projected: {
      sources: [
        {
          serviceAccountToken: { audience, expirationSeconds: XDS_TOKEN_EXPIRATION_SECONDS, path: "token" },
        },
      ],
    },
  };
}

/** `<namespace>/<pod>`: the sidecar's ADS node.id, from the downward API. */
export const ENV_NODE_ID = "TETHER_NODE_ID";

/**
 * The node identity as Envoy takes it: `--service-node` / `--service-cluster` override the
 * bootstrap's node. Kubernetes expands `$(VAR)` in args and in later env values.
 */
function xdsIdentity(group: string): { env: JsonObject[]; args: string[] } {
  const field = (name: string, fieldPath: string): JsonObject => ({
    name,
    valueFrom: { fieldRef: { fieldPath } },
  });
  return {
    env: [
      field("TETHER_POD_NAMESPACE", "metadata.namespace"),
      field("TETHER_POD_NAME", "metadata.name"),
      { name: ENV_NODE_ID, value: "$(TETHER_POD_NAMESPACE)/$(TETHER_POD_NAME)" },
    ],
    args: ["--service-node", `$(${ENV_NODE_ID})`, "--service-cluster", group],
  };
}

export function sidecarContainer(input: SidecarContainerInput): JsonObject {
  const identity = input.xdsGroup === undefined ? undefined : xdsIdentity(input.xdsGroup);
  const container: JsonObject = {
    name: SIDECAR_CONTAINER,
    image: input.image,
    ...(input.imagePullPolicy === undefined || input.imagePullPolicy === ""
      ? {}
      : { imagePullPolicy: input.imagePullPolicy }),
    args: [
      "--config",
      SIDECAR_CONFIG_FILE,
      ...(identity?.args ?? []),
      ...(input.xdsToken === true ? ["--xds-token-file", XDS_TOKEN_FILE] : []),
      ...(input.args ?? []),
    ],
    ...(identity === undefined ? {} : { env: identity.env }),
    ports: [
      { name: "tether-admin", containerPort: input.adminPort, protocol: "TCP" },
      ...input.ports.map((p) => ({ ...p, protocol: "TCP" })),
    ],
    ...sidecarProbes(input.adminPort),
    volumeMounts: [
      { name: "tether-sidecar-config", mountPath: SIDECAR_CONFIG_DIR, readOnly: true },
      ...(input.xdsToken === true
        ? [{ name: XDS_TOKEN_VOLUME, mountPath: XDS_TOKEN_DIR, readOnly: true }]
        : []),
      ...(input.extraMounts ?? []),
      ...(input.xdsCa === true ? [xdsCaMount()] : []),
    ],
    securityContext: restrictedSecurityContext(),
  };
  if (input.resources !== undefined && Object.keys(input.resources).length > 0) {
    container["resources"] = input.resources;
  }
  return container;
}

export function configMapVolume(name: string, configMapName: string): JsonObject {
  return { name, configMap: { name: configMapName } };
}

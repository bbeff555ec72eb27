/**
 * Agent → Deployment `<name>` (the user's pods plus the tether-sidecar container), ConfigMap
 * `<name>-sidecar` (envoy.yaml) and ConfigMap `<name>-agent-config` (the agentConfig files).
 */
import type { AgentSpec } from "../api/index.ts";
import {
  agentListenerPort,
  renderAgentBootstrap,
  type AgentBootstrapInput,
  type PolicyServers,
} from "./agent-bootstrap.ts";
import { bootstrapYaml, type ConfigMap } from "./configmap.ts";
import { childMeta, childNames, selectorLabels, type ChildMeta, type OwnerMeta } from "./meta.ts";
import {
  AGENT_CONFIG_DIR,
  configMapVolume,
  sidecarContainer,
  SIDECAR_CONTAINER,
  userTemplate,
  withTemplateHash,
  xdsTokenVolume,
  type JsonObject,
  type PodTemplate,
} from "./pod.ts";
import { accessLogVolume, nativeSidecar, sidecarDrainArgs, terminationGracePeriod } from "./lifecycle.ts";
import { routeSecrets, type AcceptedRoute } from "./routes.ts";
import { uniqueMounts } from "./secrets.ts";
import { sidecarXds, XDS_TOKEN_AUDIENCE, xdsGroup, type XdsTarget } from "./xds.ts";
import { xdsCaVolume } from "./xds-ca.ts";

export const ENV_POLICY_SERVER_HOST = "TETHER_POLICY_SERVER_HOST";
export const ENV_POLICY_SERVER_PORT = "TETHER_POLICY_SERVER_PORT";
export const ENV_AGENT_CONFIG_DIR = "TETHER_AGENT_CONFIG_DIR";

export interface RenderOptions {
  /** The sidecar image used when the resource does not name one. */
  readonly sidecarImage: string;
  /** imagePullPolicy of the sidecar container; empty or absent: Kubernetes' default. */
  readonly sidecarImagePullPolicy?: string;
  /** The cluster's DNS domain, for Service host names. Default cluster.local. */
  readonly clusterDomain: string;
  /** The operator's ADS server as sidecars reach it; unset: static bootstraps only. */
  readonly xds?: XdsTarget | undefined;
  /** The agent's sidecar as a native sidecar (init container, restartPolicy Always). Default true. */
  readonly nativeSidecar?: boolean;
}

export interface Deployment {
  apiVersion: "apps/v1";
  kind: "Deployment";
  metadata: ChildMeta;
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: PodTemplate;
  };
}

export interface AgentInput {
  readonly owner: OwnerMeta;
  readonly spec: AgentSpec;
  readonly policyServers: PolicyServers;
  /** The routes accepted for this Agent (see evaluateRoutes). */
  readonly routes: readonly AcceptedRoute[];
  readonly options: RenderOptions;
}

export interface AgentChildren {
  readonly deployment: Deployment;
  readonly sidecarConfig: ConfigMap;
  readonly agentConfig: ConfigMap;
}

export function bootstrapInput(input: AgentInput): AgentBootstrapInput {
  return {
    name: input.owner.name,
    namespace: input.owner.namespace,
    spec: input.spec,
    policyServers: input.policyServers,
    routes: input.routes,
    clusterDomain: input.options.clusterDomain,
    xds: sidecarXds(input),
  };
}

export function renderAgentSidecarConfig(input: AgentInput): ConfigMap {
  const bootstrap = renderAgentBootstrap(bootstrapInput(input));
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMeta(input.owner, childNames.sidecarConfigMap(input.owner.name), "agent"),
    data: { "envoy.yaml": bootstrapYaml(input.owner, bootstrap) },
  };
}

export function renderAgentConfig(owner: OwnerMeta, spec: AgentSpec): ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMeta(owner, childNames.agentConfigMap(owner.name), "agent"),
    data: { ...(spec.agentConfig ?? {}) },
  };
}

const OUR_ENV = new Set([ENV_POLICY_SERVER_HOST, ENV_POLICY_SERVER_PORT, ENV_AGENT_CONFIG_DIR]);

/** An agent container with the sidecar's address in its environment and the agent config mounted. */
function agentContainer(container: JsonObject, listenerPort: number): JsonObject {
  const env = Array.isArray(container["env"]) ? (container["env"] as JsonObject[]) : [];
  const mounts = Array.isArray(container["volumeMounts"]) ? (container["volumeMounts"] as JsonObject[]) : [];
  return {
    ...container,
    env: [
      ...env.filter((e) => !OUR_ENV.has(String(e["name"]))),
      { name: ENV_POLICY_SERVER_HOST, value: "127.0.0.1" },
      { name: ENV_POLICY_SERVER_PORT, value: String(listenerPort) },
      { name: ENV_AGENT_CONFIG_DIR, value: AGENT_CONFIG_DIR },
    ],
    volumeMounts: [
      ...mounts.filter((m) => m["name"] !== "tether-agent-config"),
      { name: "tether-agent-config", mountPath: AGENT_CONFIG_DIR, readOnly: true },
    ],
  };
}

function secretNames(input: AgentInput): string[] {
  const tls = input.policyServers.spec.tls;
  const names = routeSecrets(input.routes);
  if (tls.enabled && tls.caSecretRef !== undefined) names.push(tls.caSecretRef.name);
  if (tls.enabled && tls.clientCertSecretRef !== undefined) names.push(tls.clientCertSecretRef.name);
  return names;
}

export function renderAgentPodTemplate(input: AgentInput): PodTemplate {
  const { owner, spec } = input;
  const listenerPort = agentListenerPort(spec, input.policyServers.spec);
  const template = userTemplate(spec.template, selectorLabels(owner, "agent"));
  const secrets = uniqueMounts(secretNames(input));
  const grace = terminationGracePeriod(
    spec.terminationGracePeriodSeconds,
    template.spec["terminationGracePeriodSeconds"],
  );
  const logVolume = accessLogVolume(spec.sidecar.accessLog);
  const xds = sidecarXds(input);
  const xdsToken = xds?.tokenAuth === true;
  const xdsCa = xds?.tls === true;
  const sidecar = sidecarContainer({
    // The API: an empty image means the operator's configured one.
    image:
      spec.sidecar.image === undefined || spec.sidecar.image === ""
        ? input.options.sidecarImage
        : spec.sidecar.image,
    imagePullPolicy: input.options.sidecarImagePullPolicy,
    adminPort: spec.sidecar.adminPort,
    // Route listener ports are not declared (declaring is informational): a ProxyRoute added or
    // removed is then a config-only change that the sidecar hot-reloads, not a rollout.
    ports: [],
    xdsCa,
    resources: spec.sidecar.resources,
    extraMounts: [
      ...secrets.map((s) => ({ name: s.volumeName, mountPath: s.mountPath, readOnly: true })),
      ...(logVolume === undefined ? [] : [logVolume.mount]),
    ],
    args: sidecarDrainArgs(spec.sidecar.drain, grace),
    xdsGroup: xds === undefined ? undefined : xdsGroup(owner.namespace, "agent", owner.name),
    xdsToken: xdsToken,
  });
  const native = input.options.nativeSidecar !== false;
  const userInit = Array.isArray(template.spec["initContainers"])
    ? (template.spec["initContainers"] as JsonObject[]).filter((c) => c["name"] !== SIDECAR_CONTAINER)
    : undefined;
  // Native: first of the init containers, so the user's init containers can reach the policy servers too.
  const initContainers = native ? [nativeSidecar(sidecar), ...(userInit ?? [])] : userInit;
  const userVolumes = Array.isArray(template.spec["volumes"])
    ? (template.spec["volumes"] as JsonObject[])
    : [];
  // The volumes the sidecar and the agent config need; a template that already has one of them (a
  // pod rendered before, e.g. at admission) keeps it once, at the end.
  const ourVolumes: JsonObject[] = [
    configMapVolume("tether-sidecar-config", childNames.sidecarConfigMap(owner.name)),
    configMapVolume("tether-agent-config", childNames.agentConfigMap(owner.name)),
    ...secrets.map((s) => ({ name: s.volumeName, secret: { secretName: s.secretName } })),
    ...(logVolume === undefined ? [] : [logVolume.volume]),
    ...(xdsCa ? [xdsCaVolume()] : []),
    ...(xdsToken ? [xdsTokenVolume(XDS_TOKEN_AUDIENCE)] : []),
  ];
  const ourNames = new Set(ourVolumes.map((v) => String(v["name"])));
  template.spec = {
    ...template.spec,
    terminationGracePeriodSeconds: grace,
    ...(initContainers === undefined ? {} : { initContainers }),
    containers: [
      ...template.spec.containers
        .filter((c) => c["name"] !== SIDECAR_CONTAINER)
        .map((c) => agentContainer(c, listenerPort)),
      ...(native ? [] : [sidecar]),
    ],
    volumes: [...userVolumes.filter((v) => !ourNames.has(String(v["name"]))), ...ourVolumes],
  };
  return withTemplateHash(template);
}

export function renderAgentDeployment(input: AgentInput): Deployment {
  const { owner, spec } = input;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: childMeta(owner, childNames.deployment(owner.name), "agent"),
    spec: {
      replicas: spec.replicas,
      selector: { matchLabels: selectorLabels(owner, "agent") },
      template: renderAgentPodTemplate(input),
    },
  };
}

export function renderAgent(input: AgentInput): AgentChildren {
  return {
    deployment: renderAgentDeployment(input),
    sidecarConfig: renderAgentSidecarConfig(input),
    agentConfig: renderAgentConfig(input.owner, input.spec),
  };
}

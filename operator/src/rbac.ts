/**
 * Every API permission the operator uses, and nothing more, split by scope: OPERATOR_RULES are calls
 * on namespaced objects in the watched namespaces (a ClusterRole when it watches all namespaces, a
 * Role in each watched namespace with --namespaces), CLUSTER_SCOPED_RULES are calls that only a
 * ClusterRole can grant, whatever it watches. operator/README.md lists the same rules and the Helm
 * chart's RBAC is built from them; test/rbac.test.ts runs the operator as a ServiceAccount holding
 * exactly these rules, in both modes.
 */
import { GROUP } from "./api/index.ts";
import { XDS_CA_CONFIGMAP } from "./render/xds-ca.ts";

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly resourceNames?: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * Namespaced calls: cluster-wide (ClusterRole) when every namespace is watched, or per watched
 * namespace (Role) with --namespaces, where every informer lists and watches that namespace only.
 */
export const OPERATOR_RULES: readonly PolicyRule[] = [
  // Watch the four kinds.
  {
    apiGroups: [GROUP],
    resources: ["policyserverclusters", "agents", "brokers", "proxyroutes"],
    verbs: ["list", "watch"],
  },
  // Status through the status subresource (server-side apply = PATCH).
  {
    apiGroups: [GROUP],
    resources: ["policyserverclusters/status", "agents/status", "brokers/status", "proxyroutes/status"],
    verbs: ["patch"],
  },
  // ownerReferences with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on.
  {
    apiGroups: [GROUP],
    resources: ["policyserverclusters/finalizers", "agents/finalizers", "brokers/finalizers"],
    verbs: ["update"],
  },
  // Children: cached (list/watch), read by name to detect name conflicts (get), server-side applied (patch; create for new ones).
  { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "create", "patch"] },
  {
    apiGroups: [""],
    resources: ["services", "configmaps"],
    verbs: ["get", "list", "watch", "create", "patch"],
  },
  // The shared CA bundle ConfigMap, deleted by name when the last Agent or Broker of its namespace goes.
  { apiGroups: [""], resources: ["configmaps"], resourceNames: [XDS_CA_CONFIGMAP], verbs: ["delete"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create"] },
  // The xDS server's endpoints (EDS): every replica caches them, so list and watch only.
  { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
];

/**
 * Cluster-scoped calls of the core operator (a ClusterRole in both modes): none. It reads no
 * CustomResourceDefinitions (a kind that is not installed shows as a failing list, logged and retried
 * with back-off) and no Namespaces or Nodes; discovery (`/version`, `/apis`) is open to every
 * authenticated user through the built-in system:discovery ClusterRole. The two features that do call
 * cluster-scoped APIs keep their own rules below: the xDS identity check (XDS_AUTH_RULES, TokenReviews)
 * and the sidecar-injection webhook (webhookConfigurationRules). A rule added here must name the
 * cluster-scoped call it is for.
 */
export const CLUSTER_SCOPED_RULES: readonly PolicyRule[] = [];

/** In the Lease's namespace only (Role), when leader election is on. */
export const LEADER_ELECTION_RULES: readonly PolicyRule[] = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
];

/**
 * In the operator's own namespace only (Role), when xDS serves TLS: its CA Secret. The CA's key must
 * survive restarts and be shared by the replicas (each issues its serving certificate from it), so
 * it lives in a Secret, readable and writable by name only. `create` cannot be limited by name
 * (RBAC does not know a created object's name), so it stays namespace-wide; no list or watch, and
 * no access to any other Secret anywhere.
 */
export function caSecretRules(secretName: string): readonly PolicyRule[] {
  return [
    { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
    { apiGroups: [""], resources: ["secrets"], resourceNames: [secretName], verbs: ["get", "update"] },
  ];
}

/**
 * In the operator's own namespace only (Role), with --xds-tls-secret: the Secret cert-manager writes
 * the xDS serving certificate into. Read only, and watched so a renewal is served at once; list and
 * watch are limited to this name because the operator always sends `fieldSelector=metadata.name=<it>`
 * (the API server then authorizes them against resourceNames). No create, update or other Secret.
 */
export function xdsTlsSecretRules(secretName: string): readonly PolicyRule[] {
  return [
    { apiGroups: [""], resources: ["secrets"], resourceNames: [secretName], verbs: ["get", "list", "watch"] },
  ];
}

/**
 * Always a ClusterRole (TokenReviews are cluster-scoped), only with the xDS identity check
 * (--xds-auth): the ADS server asks the API server who a sidecar's token belongs to, then reads
 * the one pod the token is bound to (XDS_AUTH_POD_RULES: by name, never a list or watch of pods).
 */
export const XDS_AUTH_RULES: readonly PolicyRule[] = [
  { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
];

/**
 * With the xDS identity check: a GET of the one pod a sidecar's token is bound to. In the
 * ClusterRole watching every namespace; in each watched namespace's Role with --namespaces.
 */
export const XDS_AUTH_POD_RULES: readonly PolicyRule[] = [
  { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
];

/**
 * Cluster-wide (ClusterRole: the object is cluster-scoped), when the sidecar-injection webhook runs:
 * the one MutatingWebhookConfiguration the chart creates, by name. The operator writes its own CA
 * into that configuration's caBundle (and again after each CA rotation), so the API server trusts
 * the webhook's serving certificate; it creates, lists or changes no other admission configuration.
 */
export function webhookConfigurationRules(configurationName: string): readonly PolicyRule[] {
  return [
    {
      apiGroups: ["admissionregistration.k8s.io"],
      resources: ["mutatingwebhookconfigurations"],
      resourceNames: [configurationName],
      verbs: ["get", "patch"],
    },
  ];
}

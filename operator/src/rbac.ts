/**
 * Every API permission the operator uses, and nothing more, split by scope: OPERATOR_RULES are calls
 * on namespaced objects in the watched namespaces (a ClusterRole when it watches all namespaces, a
 * Role in each watched namespace with --namespaces), CLUSTER_SCOPED_RULES are calls that only a
 * ClusterRole can grant, whatever it watches. operator/README.md lists the same rules and the Helm
 * chart's RBAC is built from them; test/rbac.test.ts runs the operator as a ServiceAccount holding
 * exactly these rules, in both modes.
 */
import { GROUP } from "./api/index.ts";

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
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
  { apiGroups: [""], resources: ["events"], verbs: ["create"] },
  // The xDS server's endpoints (EDS): every replica caches them, so list and watch only.
  { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
];

/**
 * Cluster-scoped calls (a ClusterRole in both modes): none. The operator reads no
 * CustomResourceDefinitions (a kind that is not installed shows as a failing list, logged and retried
 * with back-off), creates no TokenReviews or SubjectAccessReviews (the xDS server authenticates nobody
 * through the API server), and reads no Namespaces or Nodes; discovery (`/version`, `/apis`) is open
 * to every authenticated user through the built-in system:discovery ClusterRole. A rule added here
 * must name the cluster-scoped call it is for.
 */
export const CLUSTER_SCOPED_RULES: readonly PolicyRule[] = [];

/** In the Lease's namespace only (Role), when leader election is on. */
export const LEADER_ELECTION_RULES: readonly PolicyRule[] = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
];

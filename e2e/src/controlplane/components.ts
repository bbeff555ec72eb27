import { join } from "node:path";
import type { ControlPlaneCerts } from "./certs.ts";

/** The service network of every control plane; the apiserver's serving cert names its first IP. */
export const SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24";
export const FIRST_SERVICE_IP = "10.0.0.1";
export const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";

/**
 * Controllers kube-controller-manager runs with `controllers: true`: enough for ownerReference
 * garbage collection, namespace deletion, default ServiceAccounts and the aggregated admin/edit/view
 * roles. No pod-running controllers (there is no kubelet).
 */
export const DEFAULT_CONTROLLERS: readonly string[] = [
  "garbage-collector-controller",
  "namespace-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "clusterrole-aggregation-controller",
];

export function etcdArgs(dir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    "--name=tether",
    `--data-dir=${join(dir, "etcd")}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=tether=${peer}`,
    "--initial-cluster-state=new",
    // Throwaway data: skipping fsync makes every write (and so every test) much faster.
    "--unsafe-no-fsync",
    "--log-level=warn",
  ];
}

export function apiserverArgs(
  dir: string,
  certs: ControlPlaneCerts,
  etcdClientPort: number,
  securePort: number,
  extra: readonly string[],
): string[] {
  return [
    `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${securePort}`,
    `--cert-dir=${join(dir, "apiserver")}`,
    `--tls-cert-file=${certs.apiserverCert}`,
    `--tls-private-key-file=${certs.apiserverKey}`,
    `--client-ca-file=${certs.caCert}`,
    "--authorization-mode=Node,RBAC",
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${certs.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${certs.serviceAccountKey}`,
    `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
    "--allow-privileged=true",
    // The endpoint reconciler would publish 127.0.0.1 as the `kubernetes` Service's endpoint, which
    // Endpoints validation rejects (loopback), logging an error every few seconds.
    "--endpoint-reconciler-type=none",
    "--profiling=false",
    ...extra,
  ];
}

export function controllerManagerArgs(
  kubeconfig: string,
  certs: ControlPlaneCerts,
  securePort: number,
  controllers: readonly string[],
): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${securePort}`,
    `--controllers=${controllers.join(",")}`,
    "--use-service-account-credentials=false",
    "--leader-elect=false",
    `--service-account-private-key-file=${certs.serviceAccountKey}`,
    `--root-ca-file=${certs.caCert}`,
  ];
}

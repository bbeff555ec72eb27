/**
 * The local cluster's containerd and kubelet configuration (e2e/local/node-config.sh, which
 * e2e/local/cluster.sh writes to the node): on cgroup v1 exactly the files this machine's cluster has
 * always run with; on cgroup v2 (hosted Ubuntu runners, where the cluster is not run from here) the
 * systemd cgroup driver on both kubelet and runc, and nothing else changed.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { parse } from "yaml";
import { REPO_ROOT } from "../src/controlplane/binaries.ts";

// The values cluster.sh sets; runc is pinned so the output does not depend on this machine's PATH.
const CLUSTER_ENV = {
  data: "/var/lib/tether-local",
  run: "/run/tether-local",
  PAUSE_IMAGE: "localhost/tether/pause:1.0.0",
  NODE_IP: "10.250.0.2",
  DNS_SERVICE_IP: "10.96.0.10",
  TETHER_LOCAL_RUNC: "/usr/sbin/runc",
};

interface Output {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one of node-config.sh's functions in bash, as cluster.sh does (errexit, nounset). */
function nodeConfig(...command: string[]): Output {
  const r = spawnSync(
    "bash",
    ["-c", `set -euo pipefail; source e2e/local/node-config.sh; ${command.join(" ")}`],
    { cwd: REPO_ROOT, env: { ...process.env, ...CLUSTER_ENV }, encoding: "utf8", timeout: 10_000 },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function config(kind: "containerd_config" | "kubelet_config", cgroup: string): string {
  const r = nodeConfig(kind, cgroup);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return r.stdout;
}

function kubeletConfig(cgroup: string): Record<string, unknown> {
  return parse(config("kubelet_config", cgroup)) as Record<string, unknown>;
}

// What cluster.sh wrote inline before the configuration moved to node-config.sh.
const CONTAINERD_V1 = `version = 3
root = "/var/lib/tether-local/containerd"
state = "/run/tether-local/containerd"

[grpc]
  address = "/run/tether-local/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "localhost/tether/pause:1.0.0"

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # This machine withholds CAP_SYS_RESOURCE, so no process may lower its oom_score_adj below ours
  # (kubelet asks -998 for every pod sandbox); containerd raises such requests to its own value.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
        Root = "/run/tether-local/runc"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/var/lib/tether-local/cni/net.d"
    max_conf_num = 1
`;

const KUBELET_V1 = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.250.0.2
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /var/lib/tether-local/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix:///run/tether-local/containerd.sock
cgroupDriver: cgroupfs
# This machine runs cgroup v1, which kubelet refuses by default since 1.35.
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
# Pods resolve only through CoreDNS: nothing from the host's resolver configuration.
resolvConf: /var/lib/tether-local/resolv.conf
# A test machine's disk and memory run fuller than a node's would: evict only when nearly out.
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
# Images were imported, not pulled: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
podLogsDir: /var/lib/tether-local/pod-logs
maxPods: 110
`;

describe("local cluster node configuration (e2e/local/node-config.sh)", () => {
  it("cgroup v1: containerd's config is byte for byte the one the cluster has run with (cgroupfs runc)", () => {
    expect(config("containerd_config", "v1")).toBe(CONTAINERD_V1);
  });

  it("cgroup v1: kubelet's config is byte for byte the one the cluster has run with (cgroupfs, v1 allowed)", () => {
    expect(config("kubelet_config", "v1")).toBe(KUBELET_V1);
  });

  it("cgroup v2: runc uses the systemd cgroup driver; the rest of containerd's config is v1's", () => {
    const v1 = config("containerd_config", "v1").split("\n");
    const v2 = config("containerd_config", "v2").split("\n");
    expect(v2).toHaveLength(v1.length);
    const changed = v2.flatMap((line, i) => (line === v1[i] ? [] : [[v1[i], line]]));
    expect(changed).toEqual([["        SystemdCgroup = false", "        SystemdCgroup = true"]]);
  });

  it("cgroup v2: kubelet uses the systemd driver with QoS slices under the root, and does not allow v1", () => {
    const v1 = kubeletConfig("v1");
    const v2 = kubeletConfig("v2");
    expect(v2).toMatchObject({ cgroupDriver: "systemd", cgroupsPerQOS: true, cgroupRoot: "/" });
    expect(v2).not.toHaveProperty("failCgroupV1");
    expect(v1).toMatchObject({ cgroupDriver: "cgroupfs", failCgroupV1: false });
    const rest = (c: Record<string, unknown>): Record<string, unknown> =>
      Object.fromEntries(
        Object.entries(c).filter(
          ([k]) => !["cgroupDriver", "cgroupsPerQOS", "cgroupRoot", "failCgroupV1"].includes(k),
        ),
      );
    expect(rest(v2)).toEqual(rest(v1));
  });

  it("refuses a cgroup version it does not know, naming it", () => {
    for (const kind of ["containerd_config", "kubelet_config"]) {
      const r = nodeConfig(kind, "v3");
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("unknown cgroup version: v3");
    }
  });

  it("detects this machine's cgroup version (v2 only with the unified hierarchy at /sys/fs/cgroup)", () => {
    const r = nodeConfig("cgroup_version");
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(existsSync("/sys/fs/cgroup/cgroup.controllers") ? "v2" : "v1");
  });
});

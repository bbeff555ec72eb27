# shellcheck shell=bash
# The local cluster's containerd and kubelet configuration for the host's cgroup version, sourced by
# e2e/local/cluster.sh (and by e2e/test/local-node-config.test.ts, which checks what it prints).
#   cgroup_version [dir]         v2 when dir (default /sys/fs/cgroup) is the unified hierarchy, else v1
#   containerd_config v1|v2      containerd's config.toml on stdout
#   kubelet_config v1|v2         kubelet's KubeletConfiguration on stdout
# They read cluster.sh's variables: data, run, PAUSE_IMAGE, NODE_IP and DNS_SERVICE_IP (and
# TETHER_LOCAL_RUNC, else the runc on PATH).
#
# cgroup v1 (this machine): the cgroupfs driver on kubelet and runc; the pods' cgroups are
# <controller>/kubepods. cgroup v2 (hosted Ubuntu runners): the systemd driver on both, the setup
# Kubernetes documents for a systemd host, where systemd expects to be the one cgroup manager; the
# pods' cgroups are kubepods.slice, made and removed through systemd.

# A hybrid host (v1 controllers, a unified hierarchy beside them) counts as v1, as kubelet sees it.
cgroup_version() {
  if [ "$(stat -fc %T "${1:-/sys/fs/cgroup}")" = cgroup2fs ]; then echo v2; else echo v1; fi
}

# cgroup_driver v1|v2: the driver kubelet and runc must agree on.
cgroup_driver() {
  case "$1" in
    v1) echo cgroupfs ;;
    v2) echo systemd ;;
    *) echo "unknown cgroup version: $1 (v1 or v2)" >&2 && return 1 ;;
  esac
}

containerd_config() {
  local driver systemd_cgroup=false
  driver=$(cgroup_driver "$1") || return 1
  [ "$driver" = cgroupfs ] || systemd_cgroup=true
  cat << EOF
version = 3
root = "$data/containerd"
state = "$run/containerd"

[grpc]
  address = "$run/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"

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
        BinaryName = "${TETHER_LOCAL_RUNC:-$(command -v runc)}"
        SystemdCgroup = $systemd_cgroup
        Root = "$run/runc"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$data/cni/net.d"
    max_conf_num = 1
EOF
}

kubelet_config() {
  local pki=$data/pki driver cgroups
  driver=$(cgroup_driver "$1") || return 1
  case "$driver" in
    cgroupfs)
      cgroups="cgroupDriver: cgroupfs
# This machine runs cgroup v1, which kubelet refuses by default since 1.35.
failCgroupV1: false"
      ;;
    systemd)
      cgroups="# cgroup v2 under systemd: the pods' cgroups are systemd slices (kubepods.slice, cgroupRoot /,
# one per QoS class), made through systemd as runc's are (SystemdCgroup in containerd's config).
cgroupDriver: systemd
cgroupsPerQOS: true
cgroupRoot: /"
      ;;
  esac
  cat << EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$run/containerd.sock
$cgroups
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$DNS_SERVICE_IP]
# Pods resolve only through CoreDNS: nothing from the host's resolver configuration.
resolvConf: $data/resolv.conf
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
podLogsDir: $data/pod-logs
maxPods: 110
EOF
}

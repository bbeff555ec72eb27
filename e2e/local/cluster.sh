#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine from upstream components, without Docker:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy (built from
# the Go module proxy by e2e/k8s/build.sh), containerd 2 and its runc shim (same), runc, the CNI
# plugins, iptables and conntrack (Debian), and CoreDNS as a pod. Images come from archives built
# by e2e/local/images.sh (into .tether/local/images, or taken as they are from $TETHER_LOCAL_IMAGES)
# and imported into containerd; no registry is involved.
#
#   bash e2e/local/cluster.sh up       start the cluster (after clearing any leftover of an earlier one)
#   bash e2e/local/cluster.sh down     stop it and remove everything it created
#   bash e2e/local/cluster.sh status   exit 0 when the node is Ready
#
# Networking stays on this machine. Every component runs in one network namespace of its own
# (tether-local); the only link to the host is a veth pair with two addresses of a /30, and the host
# does not forward. Pods sit on a bridge inside that namespace; the node namespace has no default
# route, no NAT is configured, and CoreDNS answers only for cluster.local. Deleting the namespace takes
# every interface and iptables rule the cluster made with it.
#
# Runs on cgroup v1 or v2 (v2 with systemd as init), configuring kubelet and containerd for the
# version found (e2e/local/node-config.sh).
#
# Needs root (network namespaces, mounts, cgroups). State lives in $TETHER_LOCAL_DATA (default
# /var/lib/tether-local) and /run/tether-local; the admin kubeconfig is copied to
# .tether/local/kubeconfig, component logs to .tether/local/logs/ on `down`.
set -euo pipefail
shopt -s inherit_errexit nullglob

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../k8s/versions.env
source "$repo/e2e/k8s/versions.env"
# shellcheck source=node-config.sh
source "$repo/e2e/local/node-config.sh"

NODE_NAME=tether-local
NETNS=tether-local
HOST_IF=tl-host
NODE_IF=tl-node
HOST_IP=10.250.0.1
NODE_IP=10.250.0.2
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
BRIDGE=tl-cni0
API_PORT=6443

data=${TETHER_LOCAL_DATA:-/var/lib/tether-local}
run=/run/tether-local
out=$repo/.tether/local
kubeconfig=$out/kubeconfig
images_dir=${TETHER_LOCAL_IMAGES:-$out/images}
PAUSE_IMAGE=$(bash "$repo/e2e/local/images.sh" --names pause)
COREDNS_IMAGE=$(bash "$repo/e2e/local/images.sh" --names coredns)
# Paths kubelet, containerd and the CNI library use whatever they are configured with; `up` notes
# which of them did not exist, and `down` removes exactly those.
HOST_PATHS=(/var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods /run/containerd)
# kubelet rewrites these kernel settings at start; `up` records them and `down` puts them back.
KERNEL_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# v1 or v2: picks kubelet's and runc's cgroup driver and where the pods' cgroups are (node-config.sh).
CGROUP_VERSION=$(cgroup_version)

log() { printf '[cluster:local] %s (%ss)\n' "$*" "$SECONDS" >&2; }
# No silent exit: a failing command names itself and its line.
set -E
trap 'log "error: \"$BASH_COMMAND\" failed (line $LINENO)"' ERR
die() { printf '[cluster:local] error: %s\n' "$*" >&2; exit 1; }

in_node() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

# ---------------------------------------------------------------------------------------------- checks

preflight() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, mounts and cgroups)"
  local tool
  for tool in ip nsenter iptables conntrack openssl runc findmnt; do
    command -v "$tool" > /dev/null || die "$tool not found (.ci/run installs it: iproute2, util-linux, iptables, conntrack, openssl, runc)"
  done
  for tool in bridge host-local loopback portmap; do
    [ -x "/usr/lib/cni/$tool" ] || die "CNI plugin /usr/lib/cni/$tool not found (Debian package containernetworking-plugins)"
  done
  [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || die "no cgroup hierarchy at /sys/fs/cgroup"
  if [ "$CGROUP_VERSION" = v2 ]; then
    [ -d /run/systemd/system ] && command -v systemctl > /dev/null ||
      die "cgroup v2 needs systemd as init: kubelet and runc use the systemd cgroup driver there"
  fi
  bin=$(bash "$repo/e2e/k8s/build.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet \
    kube-proxy kubectl helm containerd containerd-shim-runc-v2 ctr coredns | tail -1)
}

# ----------------------------------------------------------------------------------------- certificates

openssl_config() {
  cat << EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:$NODE_IP, IP:$KUBERNETES_SERVICE_IP, IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
}

# cert <name> <subject> <extensions>: a P-256 key and a certificate signed by the run's CA.
cert() {
  local pki=$data/pki
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2> /dev/null
  openssl req -new -config "$pki/openssl.cnf" -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 30 -extfile "$pki/openssl.cnf" -extensions "$3" -out "$pki/$1.crt" 2> /dev/null
}

certificates() {
  local pki=$data/pki
  mkdir -p "$pki" && chmod 700 "$pki"
  openssl_config > "$pki/openssl.cnf"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2> /dev/null
  openssl req -x509 -new -config "$pki/openssl.cnf" -extensions ca -key "$pki/ca.key" \
    -subj "/CN=tether-local-ca" -days 30 -out "$pki/ca.crt"
  cert apiserver "/CN=kube-apiserver" server
  cert admin "/O=system:masters/CN=tether-admin" client
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  # With --use-service-account-credentials=false every controller acts as this user.
  cert controller-manager "/O=system:masters/CN=system:kube-controller-manager" client
  cert scheduler "/CN=system:kube-scheduler" client
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client
  cert kube-proxy "/CN=system:kube-proxy" client
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/service-account.key" 2> /dev/null
  openssl pkey -in "$pki/service-account.key" -pubout -out "$pki/service-account.pub"
}

# write_kubeconfig <file> <client cert name>
write_kubeconfig() {
  local pki=$data/pki
  cat > "$1" << EOF
apiVersion: v1
kind: Config
clusters:
  - name: $NODE_NAME
    cluster:
      server: https://$NODE_IP:$API_PORT
      certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
  - name: $2
    user:
      client-certificate-data: $(base64 -w0 < "$pki/$2.crt")
      client-key-data: $(base64 -w0 < "$pki/$2.key")
contexts:
  - name: $NODE_NAME
    context: {cluster: $NODE_NAME, user: $2}
current-context: $NODE_NAME
EOF
  chmod 600 "$1"
}

# -------------------------------------------------------------------------------------------- network

network() {
  ip netns add "$NETNS"
  ip link add "$HOST_IF" type veth peer name "$NODE_IF" netns "$NETNS"
  ip addr add "$HOST_IP/30" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  in_node ip link set lo up
  in_node ip addr add "$NODE_IP/30" dev "$NODE_IF"
  in_node ip link set "$NODE_IF" up
  # Forwarding between pods and services inside the node namespace only (the setting is per
  # namespace; the host's own stays as it was).
  in_node sysctl -qw net.ipv4.ip_forward=1
  # Bridged pod-to-pod traffic must pass iptables so service DNAT replies are un-NATed.
  in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 2> /dev/null ||
    log "net.bridge.bridge-nf-call-iptables not settable in the node namespace; relying on hairpin mode"
}

cni_config() {
  mkdir -p "$data/cni/net.d" "$data/cni/ipam"
  cat > "$data/cni/net.d/10-tether-local.conflist" << EOF
{
  "cniVersion": "1.0.0",
  "name": "tether-local",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$data/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

# ----------------------------------------------------------------------------------------- processes

# start <name> <binary> [args...]: runs the component in the node namespace, in its own session,
# logging to $data/logs/<name>.log; its pid goes to $run/pids/<name>.
start() {
  local name=$1
  shift
  mkdir -p "$data/logs" "$run/pids"
  # nsenter and setsid each exec the next program, so $! is the component's own pid.
  nsenter --net="/run/netns/$NETNS" -- setsid "$@" >> "$data/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$run/pids/$name"
}

# wait_for <what> <seconds> <command...>: polls the command until it succeeds.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" > /dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out waiting for $what"
      tail_logs
      die "timed out waiting for $what"
    fi
    dead_component && { tail_logs; die "a component exited while waiting for $what"; }
    sleep 0.5
  done
  log "$what"
}

dead_component() {
  local f
  for f in "$run"/pids/*; do
    if ! running "$(cat "$f")"; then
      log "$(basename "$f") is not running"
      return 0
    fi
  done
  return 1
}

tail_logs() {
  local f
  for f in "$data"/logs/*.log; do
    printf '\n--- %s (last 25 lines) ---\n' "$(basename "$f")" >&2
    tail -n 25 "$f" >&2
  done
}

k() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

https_ok() { curl -fsS --cacert "$data/pki/ca.crt" --cert "$data/pki/admin.crt" --key "$data/pki/admin.key" "$1"; }

control_plane() {
  start etcd "$bin/etcd" --name=tether-local --data-dir="$data/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=tether-local=http://127.0.0.1:2380 --initial-cluster-state=new \
    --unsafe-no-fsync --log-level=warn
  wait_for "etcd healthy" 60 in_node curl -fsS http://127.0.0.1:2379/health

  local pki=$data/pki
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
    --cert-dir="$data/apiserver" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/service-account.pub" \
    --service-account-signing-key-file="$pki/service-account.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true --profiling=false
  write_kubeconfig "$data/admin.kubeconfig" admin
  mkdir -p "$out" && cp "$data/admin.kubeconfig" "$kubeconfig"
  wait_for "kube-apiserver ready" 120 https_ok "https://$NODE_IP:$API_PORT/readyz"
  wait_for "default namespace" 60 https_ok "https://$NODE_IP:$API_PORT/api/v1/namespaces/default"

  write_kubeconfig "$data/controller-manager.kubeconfig" controller-manager
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$data/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$data/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$data/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --use-service-account-credentials=false --leader-elect=false \
    --service-account-private-key-file="$pki/service-account.key" --root-ca-file="$pki/ca.crt" \
    --cluster-cidr="$CLUSTER_CIDR" --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
  write_kubeconfig "$data/scheduler.kubeconfig" scheduler
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$data/scheduler.kubeconfig" \
    --authentication-kubeconfig="$data/scheduler.kubeconfig" \
    --authorization-kubeconfig="$data/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
}

containerd_() {
  mkdir -p "$data/containerd" "$run/containerd"
  containerd_config "$CGROUP_VERSION" > "$data/containerd.toml"
  # The shim is found on PATH.
  start containerd env PATH="$bin:$PATH" "$bin/containerd" --config "$data/containerd.toml"
  wait_for "containerd serving" 60 ctr_ version
}

# ctr in containerd's k8s.io namespace (the CRI's). It warns on every call that cgroup v1 is
# deprecated; that line is dropped, any other message kept.
ctr_() {
  "$bin/ctr" --address "$run/containerd.sock" -n k8s.io "$@" 2> >(grep -v 'support for cgroup v1 is deprecated' >&2)
}

import_images() {
  local archive count=0
  if [ -z "${TETHER_LOCAL_IMAGES:-}" ]; then
    log "building the images into $images_dir (e2e/local/images.sh)"
    bash "$repo/e2e/local/images.sh" "$images_dir" > /dev/null
  fi
  for archive in "$images_dir"/*.tar; do
    ctr_ images import --snapshotter overlayfs "$archive" > /dev/null
    count=$((count + 1))
  done
  [ $count -gt 0 ] || die "no image archives in $images_dir (TETHER_LOCAL_IMAGES); build them with: bash e2e/local/images.sh $images_dir"
  local imported
  imported=$(ctr_ images ls -q)
  grep -qx "$PAUSE_IMAGE" <<< "$imported" || die "$PAUSE_IMAGE is not among the imported images: $imported"
  log "imported $count image archives from $images_dir"
}

kubelet_() {
  mkdir -p "$data/kubelet"
  : > "$data/resolv.conf"
  write_kubeconfig "$data/kubelet.kubeconfig" kubelet
  kubelet_config "$CGROUP_VERSION" > "$data/kubelet.yaml"
  start kubelet "$bin/kubelet" --config="$data/kubelet.yaml" --kubeconfig="$data/kubelet.kubeconfig" \
    --root-dir="$data/kubelet" --cert-dir="$data/kubelet/pki" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --v=1
  wait_for "node $NODE_NAME registered" 120 k get node "$NODE_NAME"
}

kube_proxy() {
  write_kubeconfig "$data/kube-proxy.kubeconfig" kube-proxy
  cat > "$data/kube-proxy.yaml" << EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $data/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine-wide conntrack settings alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  start kube-proxy "$bin/kube-proxy" --config="$data/kube-proxy.yaml"
}

coredns() {
  k apply -f - > /dev/null << EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Answers for the cluster's own names only: nothing is forwarded anywhere.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
        - name: coredns
          image: $COREDNS_IMAGE
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - {name: dns, containerPort: 1053, protocol: UDP}
            - {name: dns-tcp, containerPort: 1053, protocol: TCP}
          readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_SERVICE_IP
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

# The host's interfaces and iptables rules, to check after `down` that the run left none behind.
host_snapshot() {
  mkdir -p "$1"
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort > "$1/links"
  iptables-save 2> /dev/null | grep -v -e '^#' -e '^:' | sort > "$1/iptables" || true
}

record_host_state() {
  local s p
  host_snapshot "$out/host-before"
  for s in "${KERNEL_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done > "$run/sysctls"
  for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p"; done > "$run/created-paths"
  cp "$run/created-paths" "$out/host-before/created-paths"
}

up() {
  preflight
  down_quiet
  # A failed start removes what it made (the logs stay in .tether/local/logs).
  trap 'down_quiet' EXIT
  mkdir -p "$data" "$run" "$out"
  # Everything the node writes (etcd, images, pods) lives in memory, and goes with one unmount.
  mount -t tmpfs -o "size=${TETHER_LOCAL_TMPFS_SIZE:-8g},mode=0700" tether-local "$data"
  record_host_state
  log "network namespace $NETNS ($HOST_IP <-> $NODE_IP)"
  network
  cni_config
  certificates
  control_plane
  containerd_
  import_images
  kubelet_
  kube_proxy
  wait_for "node $NODE_NAME Ready" 180 k wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  coredns
  wait_for "CoreDNS available" 180 k -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
  trap - EXIT
  cat >&2 << EOF

The cluster is up. Use it with:
  export KUBECONFIG=$kubeconfig
  kubectl get nodes        (kubectl and helm are in $bin)
Stop it with: npm run cluster:local -- down
EOF
}

# ---------------------------------------------------------------------------------------- teardown

# Every process the cluster started: the components (pid files), the containers under the kubelet's
# cgroups (kubepods under each v1 controller, kubepods.slice on v2) and containerd's shims.
# Containers are test workloads: they get SIGKILL at once; the components SIGTERM, then SIGKILL
# after 5 s.
kill_everything() {
  local f pid components=() containers=()
  for f in "$run"/pids/*; do components+=("$(cat "$f")"); done
  for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/kubepods.slice; do
    [ -d "$f" ] || continue
    while read -r pid; do containers+=("$pid"); done < <(find "$f" -name cgroup.procs -exec cat {} + 2> /dev/null)
  done
  while read -r pid; do containers+=("$pid"); done < <(pgrep -f "containerd-shim-runc-v2 .*$run/containerd.sock" || true)
  [ ${#components[@]} -eq 0 ] || kill -TERM "${components[@]}" 2> /dev/null || true
  [ ${#containers[@]} -eq 0 ] || kill -KILL "${containers[@]}" 2> /dev/null || true
  local all=("${components[@]}" "${containers[@]}") attempt alive
  [ ${#all[@]} -gt 0 ] || return 0
  for attempt in $(seq 1 40); do
    alive=()
    for pid in "${all[@]}"; do running "$pid" && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    [ "$attempt" -eq 25 ] && kill -KILL "${alive[@]}" 2> /dev/null
    sleep 0.2
  done
  log "still running after SIGKILL: ${alive[*]}"
}

# A pid that exists and is not a zombie (an exited process its parent has not reaped yet).
running() {
  local _pid _comm state
  { read -r _pid _comm state _ < "/proc/$1/stat"; } 2> /dev/null || return 1
  [ "$state" != Z ] && [ "$state" != X ]
}

unmount_everything() {
  local target
  # Deepest first; lazily, so a busy mount can't stop the teardown.
  while read -r target; do
    umount -l "$target" 2> /dev/null || true
  done < <(findmnt -rn -o TARGET | grep -E "^($data|$run)(/|$)" | sort -r)
}

remove_cgroups() {
  local root dir
  # On v2 systemd made the slices: stopping the top one removes every pod's slice below it.
  if [ "$CGROUP_VERSION" = v2 ]; then
    systemctl stop kubepods.slice 2> /dev/null || true
    return 0
  fi
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$root" ] || continue
    while read -r dir; do rmdir "$dir" 2> /dev/null || true; done < <(find "$root" -depth -type d)
  done
}

restore_host_state() {
  local line
  if [ -f "$run/sysctls" ]; then
    while read -r line; do sysctl -qw "$line" || log "could not restore $line"; done < "$run/sysctls"
  fi
  if [ -f "$run/created-paths" ]; then
    while read -r line; do rm -rf "$line"; done < "$run/created-paths"
  fi
}

down_quiet() {
  kill_everything
  if [ -d "$data/logs" ]; then
    mkdir -p "$out/logs"
    cp "$data"/logs/*.log "$out/logs/" 2> /dev/null || true
  fi
  # $data is a tmpfs: unmounting it frees the image store and the pods' files at once.
  unmount_everything
  remove_cgroups
  restore_host_state
  ip netns del "$NETNS" 2> /dev/null || true
  ip link del "$HOST_IF" 2> /dev/null || true
  rm -rf "$data" "$run"
  rm -f "$kubeconfig"
}

down() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  down_quiet
  local left=()
  ip netns list | grep -qw "$NETNS" && left+=("network namespace $NETNS")
  ip link show "$HOST_IF" > /dev/null 2>&1 && left+=("interface $HOST_IF")
  findmnt -rn -o TARGET | grep -qE "^($data|$run)(/|$)" && left+=("mounts under $data or $run")
  [ -e /sys/fs/cgroup/memory/kubepods ] && left+=("cgroup kubepods")
  [ -e /sys/fs/cgroup/kubepods.slice ] && left+=("cgroup kubepods.slice")
  local p
  for p in "${HOST_PATHS[@]}"; do
    grep -qx "$p" "$out/host-before/created-paths" 2> /dev/null && [ -e "$p" ] && left+=("$p")
  done
  if [ -d "$out/host-before" ]; then
    host_snapshot "$out/host-after"
    # Only what is there now and was not before counts: other programs may remove their own.
    local added
    added=$(comm -13 "$out/host-before/links" "$out/host-after/links" | tr '\n' ' ')
    [ -z "$added" ] || left+=("interfaces: $added")
    added=$(comm -13 "$out/host-before/iptables" "$out/host-after/iptables" | awk 'NR <= 5' | tr '\n' ' ')
    [ -z "$added" ] || left+=("host iptables rules: $added")
    rm -rf "$out/host-before" "$out/host-after"
  fi
  [ ${#left[@]} -eq 0 ] || die "teardown left: ${left[*]}"
  log "down: every process, mount, cgroup, interface, iptables rule and the network namespace removed"
}

status() {
  [ -f "$kubeconfig" ] || { echo "down"; exit 1; }
  bin=$(bash "$repo/e2e/k8s/build.sh" kubectl 2> /dev/null | tail -1)
  k get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2> /dev/null | grep -qx True ||
    { echo "not ready"; exit 1; }
  echo "up: KUBECONFIG=$kubeconfig"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

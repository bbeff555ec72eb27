#!/usr/bin/env bash
# Everything Tether's build, tests and local cluster need on a fresh Debian 12 machine, as root:
#   bash scripts/prereqs.sh                  all of it: Debian packages, Go and Node if missing,
#                                            npm ci (the pinned Node runtime), the Kubernetes tools
#   bash scripts/prereqs.sh packages         the Debian packages of the tests and the local cluster
#   bash scripts/prereqs.sh cluster-packages only those of the local cluster (a subset)
#   bash scripts/prereqs.sh toolchains       Go (from the Go module proxy's toolchain module) and
#                                            Debian's npm, each only when none is on PATH
#   bash scripts/prereqs.sh tools            the pinned Kubernetes binaries, containerd, CoreDNS,
#                                            actionlint and xds-check, built from the Go module proxy
#                                            (cached in ~/.cache/tether)
# .ci/run's packages, cluster-packages and tools steps call this script. Re-running is cheap: what
# is installed or cached is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# openssl: per-run certificates for the test control plane. procps/psmisc: process checks in tests.
# haproxy, nginx, wrk: the benchmark anchors (bench/). prometheus: evaluates the dashboard and alerts.
# git, ca-certificates, curl, unzip, xz-utils: fetching npm packages, Go and Go modules.
test_packages=(ca-certificates openssl procps psmisc iproute2 haproxy nginx wrk prometheus git curl unzip
  xz-utils)
# runc, containernetworking-plugins, iptables, conntrack, util-linux, curl, gcc, libc6-dev and jq: the
# local one-node cluster of `npm run e2e:local` (gcc builds its static pause program, jq writes the
# image manifests); it also uses openssl, procps and iproute2.
cluster_packages=(openssl procps iproute2 runc containernetworking-plugins iptables conntrack
  util-linux curl gcc libc6-dev jq)
# The Go toolchain the Kubernetes binaries are built with when the machine has none (Debian 12's
# golang-go is 1.19, too old for Kubernetes 1.36).
GO_TOOLCHAIN=1.26.8
# The tools `npm test` and the local cluster use (e2e/k8s/build.sh names).
tools=(etcd kube-apiserver kubectl kube-controller-manager helm kube-scheduler kubelet kube-proxy containerd
  containerd-shim-runc-v2 ctr coredns actionlint)

step() { printf '\n=== prereqs: %s (%ss)\n' "$*" "$SECONDS"; }

# Installed means known to dpkg; runc also when one is on PATH, as Docker's containerd.io package
# ships its own and conflicts with the distribution's.
installed() { dpkg -s "$1" > /dev/null 2>&1 || { [ "$1" = runc ] && command -v runc > /dev/null; }; }

# install_packages <package...>: installs those not installed yet.
install_packages() {
  local p missing=()
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
  fi
}

packages() {
  step "Debian packages"
  local p svc all=("${test_packages[@]}")
  for p in "${cluster_packages[@]}"; do [[ " ${all[*]} " == *" $p "* ]] || all+=("$p"); done
  install_packages "${all[@]}"
  # The anchors run as our own processes on loopback ports; the distribution's services stay off.
  for svc in nginx haproxy prometheus prometheus-node-exporter; do
    if command -v service > /dev/null && service "$svc" status > /dev/null 2>&1; then service "$svc" stop || true; fi
  done
}

cluster_packages_only() {
  step "Debian packages of the local cluster"
  install_packages "${cluster_packages[@]}"
}

# Go lives in /usr/local/go on this kind of machine.
command -v go > /dev/null || export PATH="$PATH:/usr/local/go/bin"

toolchains() {
  step "Go and npm (only when missing)"
  if ! command -v go > /dev/null; then
    # The Go toolchain is published on the Go module proxy as the module golang.org/toolchain (what
    # GOTOOLCHAIN downloads); unpacked into /usr/local/go.
    local arch zip dir
    arch=$(dpkg --print-architecture)
    zip=$(mktemp --suffix .zip)
    dir=$(mktemp -d)
    curl -fsSL -o "$zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_TOOLCHAIN.linux-$arch.zip"
    unzip -q "$zip" -d "$dir"
    rm -rf /usr/local/go
    mv "$dir/golang.org/toolchain@v0.0.1-go$GO_TOOLCHAIN.linux-$arch" /usr/local/go
    chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2> /dev/null || true
    rm -rf "$zip" "$dir"
    export PATH="$PATH:/usr/local/go/bin"
    # The tests run `go mod download` (the Prometheus Operator's CRDs): go on every PATH.
    ln -sf /usr/local/go/bin/go /usr/local/bin/go
    echo "go $(go env GOVERSION) in /usr/local/go, linked from /usr/local/bin/go"
  fi
  # Any npm will do: npm ci installs the pinned Node runtime into node_modules/.bin, which every
  # npm script then runs.
  command -v npm > /dev/null || install_packages nodejs npm
}

npm_ci() {
  step "npm ci (installs the pinned Node runtime from the npm registry)"
  npm ci --no-audit --no-fund
}

build_tools() {
  step "Kubernetes binaries, containerd, CoreDNS, actionlint and xds-check (Go module proxy; cached outside the repo)"
  command -v go > /dev/null || { echo "go not found: run bash scripts/prereqs.sh toolchains first" >&2; exit 1; }
  bash e2e/k8s/build.sh "${tools[@]}"
  # xds-check (tools/xds-check): npm test judges every rendered bootstrap and both xDS ends with it.
  bash tools/xds-check/build.sh > /dev/null
}

case "${1:-all}" in
  all)
    [ "$(id -u)" = 0 ] || { echo "scripts/prereqs.sh installs Debian packages: run it as root" >&2; exit 1; }
    packages
    toolchains
    npm_ci
    build_tools
    step "done"
    ;;
  packages) packages ;;
  cluster-packages) cluster_packages_only ;;
  toolchains) toolchains ;;
  tools) build_tools ;;
  *)
    echo "usage: $0 [all|packages|cluster-packages|toolchains|tools]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Builds pinned Kubernetes components and etcd from the Go module proxy with the ordinary `go`
# client, into a cache directory outside the repository. Re-running is cheap: a binary is rebuilt
# only when its pinned version changes (the version is part of the cache path).
#
#   e2e/k8s/build.sh [component ...]     default: etcd kube-apiserver kubectl kube-controller-manager helm
#   also: kube-scheduler kubelet kube-proxy containerd containerd-shim-runc-v2 ctr coredns (local cluster)
#         actionlint (the workflow linter of `npm run lint`)
#   prints the bin directory on stdout (last line).
#
# TETHER_CACHE overrides the cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/tether).
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}
bin="$cache/k8s/$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"
mkdir -p "$bin"

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver kubectl kube-controller-manager helm)

log() { printf '[build-k8s] %s\n' "$*" >&2; }

# k8s.io/kubernetes (and etcd's server module) pin their sibling modules with relative `replace`
# directives (`=> ./staging/...`, `=> ../api`), which `go install pkg@version` refuses. A small
# wrapper module requires the upstream module and replaces each sibling with its published release.
#   wrapper_module <dir-name> <module> <version> <sibling-version> <package>...
wrapper_module() {
  local name=$1 module=$2 version=$3 sibling_version=$4
  shift 4
  local dir="$cache/k8s/wrapper-$name-$version"
  if [ ! -f "$dir/.ready" ]; then
    log "preparing wrapper module for $module $version in $dir"
    rm -rf "$dir" && mkdir -p "$dir"
    local gomod
    gomod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module tether.dev/build-$name"
      echo
      grep -m1 '^go ' "$gomod"
      echo
      echo "require $module $version"
      echo
      echo "replace ("
      # Modules never published (k8s.io/sample-*) and etcd's FORBIDDEN_DEPENDENCY guards are skipped.
      sed -n '/^replace (/,/^)/p; /^replace [^(]/p' "$gomod" | sed 's/^replace //' |
        awk '$2 == "=>" && $3 ~ /^\.\.?\// && $3 !~ /FORBIDDEN/ {print $1}' |
        while read -r mod; do
          case "$mod" in k8s.io/sample-*) continue ;; esac
          echo "	$mod => $mod $sibling_version"
        done
      echo ")"
    } > "$dir/go.mod"
    {
      echo "//go:build tools"
      echo
      echo "// Package tools pins the commands this module builds."
      echo "package tools"
      echo
      echo "import ("
      for pkg in "$@"; do echo "	_ \"$pkg\""; done
      echo ")"
    } > "$dir/tools.go"
    (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >&2)
    touch "$dir/.ready"
  fi
  echo "$dir"
}

k8s_wrapper() {
  local cmds=() c
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    cmds+=("k8s.io/kubernetes/cmd/$c")
  done
  wrapper_module kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION" "$KUBERNETES_STAGING_VERSION" "${cmds[@]}"
}

# Version stamping, as the upstream build does (hack/lib/version.sh), so `kube-apiserver --version`
# and the discovery /version endpoint report the real release.
k8s_ldflags() {
  local pkg v=$KUBERNETES_VERSION
  local minor=${v#v1.}; minor=${minor%%.*}
  local flags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

build_k8s() {
  local name=$1 dir
  dir=$(k8s_wrapper)
  log "building $name $KUBERNETES_VERSION"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$(k8s_ldflags)" \
    -o "$bin/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv "$bin/$name.tmp" "$bin/$name"
}

build_etcd() {
  local dir
  dir=$(wrapper_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" go.etcd.io/etcd/server/v3)
  log "building etcd $ETCD_VERSION"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
    -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.tmp" "$bin/etcd"
}

# containerd, CoreDNS and actionlint have no relative replace directives, so `go install` builds them directly.
#   go_install <name> <package@version> <version-stamp> [ldflags...]
go_install() {
  local name=$1 pkg=$2 stamp=$3 gobin
  shift 3
  log "building $name from $pkg"
  gobin=$(mktemp -d)
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w $*" "$pkg"
  mv "$gobin/$(basename "${pkg%@*}")" "$bin/$name"
  rm -rf "$gobin"
  echo "$stamp" > "$bin/$name.version"
}

build_containerd() {
  local name=$1
  go_install "$name" "github.com/containerd/containerd/v2/cmd/$name@$CONTAINERD_VERSION" "$CONTAINERD_VERSION" \
    "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
}

build_helm() {
  log "building helm $HELM_VERSION"
  local gobin
  gobin=$(mktemp -d)
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$gobin/helm" "$bin/helm"
  rm -rf "$gobin"
  # helm is versioned apart from Kubernetes: a stamp records which release the binary is.
  echo "$HELM_VERSION" > "$bin/helm.version"
}

# Components versioned apart from Kubernetes carry a stamp file naming their release.
stamp_of() {
  case "$1" in
    helm) echo "$HELM_VERSION" ;;
    containerd | containerd-shim-runc-v2 | ctr) echo "$CONTAINERD_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    actionlint) echo "$ACTIONLINT_VERSION" ;;
  esac
}

for c in "${components[@]}"; do
  want=$(stamp_of "$c")
  if [ -x "$bin/$c" ] && { [ -z "$want" ] || [ "$(cat "$bin/$c.version" 2>/dev/null)" = "$want" ]; }; then
    log "$c cached in $bin"
    continue
  fi
  case "$c" in
    etcd) build_etcd ;;
    helm) build_helm ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | kubectl) build_k8s "$c" ;;
    containerd | containerd-shim-runc-v2 | ctr) build_containerd "$c" ;;
    coredns) go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION" "$COREDNS_VERSION" ;;
    actionlint)
      go_install actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" "$ACTIONLINT_VERSION" \
        "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
      ;;
    *) log "unknown component: $c"; exit 2 ;;
  esac
done
echo "$bin"

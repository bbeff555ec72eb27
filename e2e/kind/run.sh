#!/usr/bin/env bash
# The end-to-end suite on kind: a kind cluster (kind built from the Go module proxy), the three images
# built from the Dockerfiles and loaded into it, the chart installed, then the scenario tests
# (e2e/test/kind/) against the cluster's kubeconfig. Needs Docker and Go.
#
#   bash e2e/kind/run.sh          up + test   (what `npm run e2e:kind` runs)
#   bash e2e/kind/run.sh up       cluster, images, chart
#   bash e2e/kind/run.sh test     the scenarios against the running cluster
#   bash e2e/kind/run.sh down     delete the cluster
#
# KIND_CLUSTER (default tether-e2e) names the cluster; KIND_NODE_IMAGE picks the node image.
set -euo pipefail
cd "$(dirname "$0")/../.."

KIND_VERSION=v0.33.0
cluster=${KIND_CLUSTER:-tether-e2e}
cache=${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}
state=.tether/kind
kubeconfig=$state/kubeconfig
# Images are tagged with the chart's appVersion, which the chart and the examples use.
tag=$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' charts/tether/Chart.yaml)
images=(operator sidecar demo)

log() { printf '\n[e2e:kind] %s (%ss)\n' "$*" "$SECONDS" >&2; }

tools() {
  bin=$(bash e2e/k8s/build.sh kubectl helm | tail -1)
  kind="$cache/kind-$KIND_VERSION/kind"
  if [ ! -x "$kind" ]; then
    log "building kind $KIND_VERSION"
    GOBIN="$(dirname "$kind")" go install "sigs.k8s.io/kind@$KIND_VERSION"
  fi
  export PATH="$bin:$PATH"
}

up() {
  tools
  mkdir -p "$state"
  if ! "$kind" get clusters | grep -qx "$cluster"; then
    log "creating kind cluster $cluster"
    "$kind" create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 180s \
      ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
  fi
  "$kind" get kubeconfig --name "$cluster" > "$kubeconfig"

  for image in "${images[@]}"; do
    dockerfile=$image/Dockerfile
    [ "$image" = demo ] && dockerfile=e2e/Dockerfile
    log "building localhost/tether/$image:$tag"
    docker build -f "$dockerfile" -t "localhost/tether/$image:$tag" .
    "$kind" load docker-image --name "$cluster" "localhost/tether/$image:$tag"
  done

  log "installing the chart"
  KUBECONFIG=$kubeconfig helm upgrade --install tether charts/tether -n tether-system --create-namespace \
    --set operator.image.pullPolicy=Never --wait --timeout 5m
  KUBECONFIG=$kubeconfig kubectl -n tether-system rollout status deployment/tether --timeout=180s
  KUBECONFIG=$kubeconfig helm test tether -n tether-system --timeout 3m --logs
}

test_() {
  tools
  log "scenarios"
  # S15 cuts a pod off the network from inside the (single) kind node.
  TETHER_E2E_NODE_EXEC="docker exec $cluster-control-plane" \
    TETHER_E2E_KUBECONFIG=$PWD/$kubeconfig KUBECTL=$bin/kubectl npx vitest run --project integration e2e/test/kind
}

down() {
  tools
  "$kind" delete cluster --name "$cluster"
  rm -rf "$state"
}

case "${1:-all}" in
  up) up ;;
  test) test_ ;;
  down) down ;;
  all) up && test_ ;;
  *) echo "usage: $0 [up|test|down]" >&2; exit 2 ;;
esac

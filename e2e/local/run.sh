#!/usr/bin/env bash
# The end-to-end suite on a local one-node cluster (e2e/local/cluster.sh): the same scenario tests
# as `npm run e2e:kind` (e2e/test/kind/), on real Kubernetes components, with no Docker and no
# registry. Needs root.
#
#   bash e2e/local/run.sh          cluster up (with the images), chart, scenarios, cluster down (`npm run e2e:local`)
#   bash e2e/local/run.sh up       cluster and chart, left running
#   bash e2e/local/run.sh test     the scenarios against the running cluster
#   bash e2e/local/run.sh down     remove the cluster
#
# The cluster is removed at the end of a full run whether the tests passed or not; its component
# logs stay in .tether/local/logs/ and the scenario table in .tether/e2e/.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=.tether/local
kubeconfig=$PWD/$out/kubeconfig

log() { printf '\n[e2e:local] %s (%ss)\n' "$*" "$SECONDS" >&2; }

tools() {
  bin=$(bash e2e/k8s/build.sh kubectl helm | tail -1)
  export PATH="$bin:$PATH"
}

up() {
  tools
  log "starting the cluster (builds the project and the images first)"
  bash e2e/local/cluster.sh up
  log "installing the chart"
  # Images were imported into containerd: never pull.
  helm upgrade --install tether charts/tether --kubeconfig "$kubeconfig" -n tether-system --create-namespace \
    --set operator.image.pullPolicy=Never --wait --timeout 5m
  kubectl --kubeconfig "$kubeconfig" -n tether-system rollout status deployment/tether --timeout=180s
  log "helm test (the chart's test pod: the operator answers, the CRDs are served)"
  helm test tether --kubeconfig "$kubeconfig" -n tether-system --timeout 3m --logs
}

test_() {
  tools
  log "scenarios"
  # S15 cuts a pod off the network from inside the node's network namespace.
  TETHER_E2E_NODE_EXEC="nsenter --net=/run/netns/tether-local --" \
    TETHER_E2E_KUBECONFIG=$kubeconfig KUBECTL=$bin/kubectl npx vitest run --project integration e2e/test/kind
}

down() {
  bash e2e/local/cluster.sh down
}

case "${1:-all}" in
  up) up ;;
  test) test_ ;;
  down) down ;;
  all)
    trap down EXIT
    up
    test_
    ;;
  *)
    echo "usage: $0 [up|test|down]" >&2
    exit 2
    ;;
esac

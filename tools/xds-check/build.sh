#!/usr/bin/env bash
# Builds xds-check from this Go module (dependencies from the Go module proxy, with the ordinary `go`
# client) into a cache directory outside the repository, keyed by a hash of go.mod, go.sum and the Go
# sources: re-running is cheap, and a changed source builds a new binary beside the old ones.
#
#   tools/xds-check/build.sh        prints the binary's path on stdout (last line)
#
# TETHER_CACHE overrides the cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/tether).
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v go > /dev/null || export PATH="$PATH:/usr/local/go/bin"

cache=${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}
hash=$(cd "$here" && find . -maxdepth 1 \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
dir="$cache/xds-check/$hash"
bin="$dir/xds-check"

log() { printf '[build-xds-check] %s\n' "$*" >&2; }

if [ -x "$bin" ]; then
  log "cached in $dir"
else
  command -v go > /dev/null || { log "go not found: xds-check is built with the go client"; exit 1; }
  log "building into $dir"
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/xds-check.XXXXXX")
  # -mod=readonly: go.sum pins every module; a missing entry is an error, not a silent update.
  (cd "$here" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp" .)
  # A rename, so a concurrent build or reader never sees a half-written binary.
  mv "$tmp" "$bin"
fi
echo "$bin"

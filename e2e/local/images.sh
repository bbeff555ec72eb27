#!/usr/bin/env bash
# Builds Tether's container images without Docker and without a registry: one OCI image archive per
# image (oci-layout + index.json + blobs, tarred), ready for `ctr -n k8s.io images import <archive>`.
#
#   bash e2e/local/images.sh <out-dir> [image ...]   build (default: all), print "<name> <archive>" lines
#   bash e2e/local/images.sh --names [image ...]     print the fully qualified names only, build nothing
#
# Images: operator, sidecar, demo (tag: the chart's appVersion), pause (containerd's sandbox image,
# e2e/local/pause/pause.c) and coredns (COREDNS_VERSION, built by e2e/k8s/build.sh), all named
# localhost/tether/<image>:<tag>.
#
# The Node images mirror operator/Dockerfile, sidecar/Dockerfile and e2e/Dockerfile (entry point, user
# 65532, environment, working directory /app, file layout) over a base layer they share: the pinned
# Node binary (node_modules/node/bin/node), exactly the shared libraries it links, /etc/passwd and
# /etc/group with the nonroot user 65532, and /tmp. Layers are reproducible: same inputs, same bytes.
#
# The TypeScript build runs first (`tsc -b envoy xds operator sidecar e2e`, incremental); TETHER_IMAGES_SKIP_BUILD=1
# skips it and uses the dist/ directories as they are. Compressed layers are cached under
# <out-dir>/.cache by content digest, so a rebuild with unchanged inputs only re-tars and re-hashes.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD

registry=localhost/tether
# The chart's appVersion: the chart and the operator name the images with it.
tag=$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' charts/tether/Chart.yaml)
coredns_version=$(
  # shellcheck source=e2e/k8s/versions.env
  source e2e/k8s/versions.env && echo "$COREDNS_VERSION"
)
# Our own pause program's version: bump it when e2e/local/pause/pause.c changes.
pause_version=1.0.0
all_images=(operator sidecar demo pause coredns)

log() { printf '[images] %s\n' "$*" >&2; }
die() {
  printf '[images] error: %s\n' "$*" >&2
  exit 1
}

ref_of() {
  case "$1" in
    operator | sidecar | demo) echo "$registry/$1:$tag" ;;
    pause) echo "$registry/pause:$pause_version" ;;
    coredns) echo "$registry/coredns:$coredns_version" ;;
    *) die "unknown image '$1' (known: ${all_images[*]})" ;;
  esac
}

[ -n "$tag" ] || die "no appVersion in charts/tether/Chart.yaml"

if [ "${1:-}" = --names ]; then
  shift
  images=("$@")
  [ ${#images[@]} -gt 0 ] || images=("${all_images[@]}")
  for image in "${images[@]}"; do ref_of "$image"; done
  exit 0
fi

if [ $# -lt 1 ] || [ -z "$1" ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 <out-dir> [${all_images[*]}] | $0 --names [image ...]" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
images=("$@")
[ ${#images[@]} -gt 0 ] || images=("${all_images[@]}")
for image in "${images[@]}"; do ref_of "$image" > /dev/null; done

for tool in tar gzip sha256sum jq; do
  command -v "$tool" > /dev/null || die "$tool is needed (apt-get install -y $tool)"
done
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

cache=$out/.cache
mkdir -p "$cache/layers"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
: > "$work/used" # cache entries this run used (layer() runs in command substitutions: a file, not a variable)

# The same tar flags for every layer and archive: sorted names, no timestamps, owners or user names,
# every file stored whole (staging directories hard-link the repository's files).
det_tar() {
  tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --no-acls --no-xattrs \
    --hard-dereference "$@"
}

# Directories 0755, files 0755 when executable else 0644: modes from the checkout's umask stay out.
# (App layers, whose staged files are the repository's own inodes, get the same through tar --mode.)
normalize_modes() {
  find "$1" -type d -exec chmod 0755 {} +
  find "$1" -type f -perm /111 -exec chmod 0755 {} +
  find "$1" -type f ! -perm /111 -exec chmod 0644 {} +
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# layer <staging-dir> [tar option...]: tars the directory's contents into a layer; prints
# "<diff_id> <digest> <size>" (the gzip blob lands in $cache/layers/<digest hex>, reused when the same
# diff_id was built before).
layer() {
  local dir=$1 raw diff blob digest size entries
  shift
  raw=$(mktemp "$work/layer.XXXXXX")
  mapfile -t entries < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort)
  det_tar "$@" -C "$dir" -cf "$raw" "${entries[@]}"
  diff=sha256:$(sha256_of "$raw")
  if [ -f "$cache/layers/${diff#sha256:}.gzdigest" ] &&
    [ -f "$cache/layers/$(cat "$cache/layers/${diff#sha256:}.gzdigest")" ]; then
    digest=sha256:$(cat "$cache/layers/${diff#sha256:}.gzdigest")
  else
    blob=$(mktemp "$work/blob.XXXXXX")
    gzip -n -6 -c "$raw" > "$blob"
    digest=sha256:$(sha256_of "$blob")
    mv "$blob" "$cache/layers/${digest#sha256:}"
    echo "${digest#sha256:}" > "$cache/layers/${diff#sha256:}.gzdigest"
  fi
  rm -f "$raw"
  printf '%s\n' "${diff#sha256:}.gzdigest" "${digest#sha256:}" >> "$work/used"
  size=$(stat -c %s "$cache/layers/${digest#sha256:}")
  echo "$diff $digest $size"
}

# --- the Node base layer, shared by operator, sidecar and demo ------------------------------------
base_layer() {
  local node root lib target
  node=$(readlink -f node_modules/node/bin/node)
  [ -f "$node" ] || die "node_modules/node/bin/node is missing: run npm ci"
  ! ldd "$node" | grep 'not found' >&2 || die "$node needs libraries this machine lacks"
  root=$work/base
  mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/home/nonroot"
  cp "$node" "$root/usr/local/bin/node"
  # Every library the binary links, and the dynamic loader, at the paths ldd resolves them to; the
  # loader searches /lib/<triplet> by default, so no ld.so.cache is needed.
  while read -r lib; do
    target=$root$lib
    mkdir -p "$(dirname "$target")"
    cp "$(readlink -f "$lib")" "$target"
  done < <(ldd "$node" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' > "$root/etc/group"
  # glibc's resolver (built into libc since 2.34) reads the hosts and resolv.conf kubelet mounts.
  printf '%s\n' 'hosts: files dns' > "$root/etc/nsswitch.conf"
  normalize_modes "$root"
  chmod 1777 "$root/tmp"
  layer "$root"
}

# Production dependencies of one workspace, as paths relative to the repository (node_modules/x,
# node_modules/x/node_modules/y, <ws>/node_modules/z), without the workspace links themselves.
prod_packages() {
  local ws=$1 path rel
  # npm ls exits non-zero on any tree problem (an extraneous dev package, say) but still lists the
  # tree; a listed package that is really missing is caught below.
  npm ls --omit=dev --all --parseable --workspace "$ws" > "$work/npm-ls-$ws" 2> "$work/npm-ls-$ws.err" ||
    log "npm ls --workspace $ws reported problems: $(grep -v 'npm warn' "$work/npm-ls-$ws.err" | head -3)"
  sort -u "$work/npm-ls-$ws" | while read -r path; do
    rel=${path#"$repo"/}
    case "$rel" in */node_modules/* | node_modules/*) ;; *) continue ;; esac
    [ -L "$path" ] && continue
    [ -d "$path" ] || die "npm lists $rel but it is not installed: run npm ci"
    echo "$rel"
  done
}

# stage <dest> <relative path>...: puts repository paths into <dest> with their relative layout, as
# hard links when <dest> is on the repository's file system (copying ~10k small files of node_modules
# costs seconds; linking them does not).
stage() {
  local dest=$1 rel
  shift
  for rel in "$@"; do
    mkdir -p "$dest/$(dirname "$rel")"
    if [ "$link" = yes ]; then cp -al "$repo/$rel" "$dest/$rel"; else cp -R "$repo/$rel" "$dest/$rel"; fi
  done
}

# app_layer <workspace> <yes|no: with production node_modules>: /app as the workspace's Dockerfile
# lays it out.
app_layer() {
  local ws=$1 deps=$2 root pkg up
  root=$work/app-$ws
  mkdir -p "$root/app"
  case "$ws" in
    sidecar)
      # The bundle and its start-up snapshot (sidecar/scripts/bundle.ts) hold all its dependencies.
      stage "$root/app" sidecar/package.json sidecar/bin sidecar/dist/bundle
      ;;
    operator)
      stage "$root/app" package.json "$ws/package.json" "$ws/bin" "$ws/dist"
      # It depends on the envoy and xds workspaces (@tether/envoy, @tether/xds), linked into
      # node_modules as npm does.
      stage "$root/app" envoy/package.json envoy/dist
      stage "$root/app" xds/package.json xds/dist xds/generated
      mkdir -p "$root/app/node_modules/@tether"
      ln -s ../../envoy "$root/app/node_modules/@tether/envoy"
      ln -s ../../xds "$root/app/node_modules/@tether/xds"
      ;;
    e2e) stage "$root/app" e2e/package.json e2e/dist/demo e2e/dist/image ;;
  esac
  if [ "$deps" = yes ]; then
    prod_packages "$ws" > "$work/packages-$ws"
    [ -s "$work/packages-$ws" ] || die "npm ls lists no production packages for $ws"
    # Each package whole, nested node_modules included (what is nested under a production package
    # is its own dependency, so production too); packages listed below one already staged are skipped.
    local -A staged=()
    while read -r pkg; do
      up=$pkg
      while [ "${up%/*}" != "$up" ]; do
        up=${up%/*}
        [ -z "${staged[$up]:-}" ] || continue 2
      done
      stage "$root/app" "$pkg"
      staged[$pkg]=1
    done < "$work/packages-$ws"
  fi
  # u=rwX,go=rX: directories and executables 0755, other files 0644, whatever the checkout's umask.
  layer "$root" --mode=u=rwX,go=rX
}

# --- OCI image archive ------------------------------------------------------------------------------
# oci_archive <image> <ref> <image config JSON (the "config" object)> <layer record>...
oci_archive() {
  local image=$1 ref=$2 config=$3 dir diffs layers record diff digest size cfg cfg_digest manifest
  local man_digest archive
  shift 3
  dir=$work/oci-$image
  mkdir -p "$dir/blobs/sha256"
  diffs='[]' layers='[]'
  for record in "$@"; do
    read -r diff digest size <<< "$record"
    diffs=$(jq -c --arg d "$diff" '. + [$d]' <<< "$diffs")
    layers=$(jq -c --arg d "$digest" --argjson s "$size" \
      '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $d, size: $s}]' <<< "$layers")
    ln -f "$cache/layers/${digest#sha256:}" "$dir/blobs/sha256/${digest#sha256:}" 2> /dev/null ||
      cp "$cache/layers/${digest#sha256:}" "$dir/blobs/sha256/${digest#sha256:}"
  done
  cfg=$dir/config.json
  jq -n -c --arg arch "$arch" --argjson config "$config" --argjson diffs "$diffs" --arg by "e2e/local/images.sh" \
    '{created: "1970-01-01T00:00:00Z", architecture: $arch, os: "linux", config: $config,
      rootfs: {type: "layers", diff_ids: $diffs},
      history: [$diffs[] | {created: "1970-01-01T00:00:00Z", created_by: $by}]}' > "$cfg"
  cfg_digest=sha256:$(sha256_of "$cfg")
  mv "$cfg" "$dir/blobs/sha256/${cfg_digest#sha256:}"
  manifest=$dir/manifest.json
  jq -n -c --arg d "$cfg_digest" --argjson s "$(stat -c %s "$dir/blobs/sha256/${cfg_digest#sha256:}")" \
    --argjson layers "$layers" --arg ref "$ref" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $d, size: $s},
      layers: $layers}' > "$manifest"
  man_digest=sha256:$(sha256_of "$manifest")
  jq -n -c --arg d "$man_digest" --argjson s "$(stat -c %s "$manifest")" --arg ref "$ref" --arg arch "$arch" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
        platform: {architecture: $arch, os: "linux"},
        annotations: {"org.opencontainers.image.ref.name": $ref, "io.containerd.image.name": $ref}}]}' \
    > "$dir/index.json"
  mv "$manifest" "$dir/blobs/sha256/${man_digest#sha256:}"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
  normalize_modes "$dir"
  archive=$out/$image-${ref##*:}.oci.tar
  # An archive whose manifest (so config and every layer) is unchanged is left as it is.
  if [ -f "$archive" ] && [ "$(cat "$cache/$image.manifest" 2> /dev/null)" = "$man_digest $archive" ]; then
    log "$ref unchanged ($man_digest)"
  else
    det_tar -C "$dir" -cf "$archive.tmp" oci-layout index.json blobs
    mv "$archive.tmp" "$archive"
    echo "$man_digest $archive" > "$cache/$image.manifest"
    log "$ref -> $archive ($(du -h "$archive" | cut -f1), manifest $man_digest)"
  fi
  printf '%s\t%s\n' "$ref" "$archive" >> "$work/built"
}

# node_config <title> <description> <ports JSON> <entrypoint JSON> [cmd JSON] [extra env JSON]
node_config() {
  jq -n -c --arg title "$1" --arg description "$2" --argjson ports "$3" --argjson entrypoint "$4" \
    --argjson cmd "${5:-null}" --argjson env "${6:-[]}" --arg version "$tag" \
    '{User: "65532:65532", WorkingDir: "/app",
      Env: (["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_ENV=production"] + $env),
      Entrypoint: $entrypoint, ExposedPorts: ($ports | map({key: ., value: {}}) | from_entries),
      Labels: {"org.opencontainers.image.title": $title, "org.opencontainers.image.description": $description,
        "org.opencontainers.image.licenses": "Apache-2.0", "org.opencontainers.image.version": $version}}
     + (if $cmd == null then {} else {Cmd: $cmd} end)'
}

# Staging hard-links the repository's files when the output is on the same file system.
link=no
if ln "$repo/package.json" "$work/.link-test" 2> /dev/null; then link=yes; fi
rm -f "$work/.link-test"

needs_node=no
for image in "${images[@]}"; do
  case "$image" in operator | sidecar | demo) needs_node=yes ;; esac
done

if [ "$needs_node" = yes ]; then
  if [ "${TETHER_IMAGES_SKIP_BUILD:-0}" != 1 ]; then
    log "building TypeScript (tsc -b envoy xds operator sidecar e2e) and the sidecar's bundle"
    PATH=$repo/node_modules/.bin:$PATH tsc -b envoy xds operator sidecar e2e
    PATH=$repo/node_modules/.bin:$PATH node sidecar/scripts/bundle.ts > /dev/null
  fi
  for f in envoy/dist/index.js xds/dist/index.js operator/dist/main.js sidecar/dist/bundle/sidecar.blob e2e/dist/image/main.js; do
    [ -f "$f" ] || die "$f is missing: run npm run build"
  done
  log "base layer: $(readlink -f node_modules/node/bin/node) ($("$repo/node_modules/node/bin/node" --version)) and its libraries"
  base=$(base_layer)
fi

# Layers and configs are assigned to variables before use: a failing command substitution stops the
# script there (set -e), where as an argument it would be ignored.
for image in "${images[@]}"; do
  ref=$(ref_of "$image")
  log "building $ref"
  case "$image" in
    operator)
      config=$(node_config tether-operator "The Tether Kubernetes operator" '["8080/tcp", "18000/tcp"]' \
        '["node", "--max-semi-space-size=1", "--optimize-for-size", "/app/operator/bin/tether-operator.js"]' \
        null '["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=65536"]')
      app=$(app_layer operator yes)
      oci_archive operator "$ref" "$config" "$base" "$app"
      ;;
    sidecar)
      # The operator passes --config /etc/tether/envoy.yaml itself; CMD is the same default.
      config=$(node_config tether-sidecar "Tether's Envoy-compatible sidecar proxy" '["9901/tcp"]' \
        '["node", "--snapshot-blob=/app/sidecar/dist/bundle/sidecar.blob", "--max-semi-space-size=4", "--no-maglev", "/app/sidecar/bin/tether-sidecar.js"]' \
        '["--config", "/etc/tether/envoy.yaml"]' '["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072"]')
      app=$(app_layer sidecar no)
      oci_archive sidecar "$ref" "$config" "$base" "$app"
      ;;
    demo)
      # Node built-ins only at run time, as e2e/Dockerfile: no node_modules.
      config=$(node_config tether-demo \
        "Tether's demo policy server and web agent, for examples and end-to-end tests" \
        '["8080/tcp", "8000/tcp"]' '["node", "/app/e2e/dist/image/main.js"]')
      app=$(app_layer e2e no)
      oci_archive demo "$ref" "$config" "$base" "$app"
      ;;
    pause)
      command -v gcc > /dev/null || die "gcc is needed for the pause image (apt-get install -y gcc libc6-dev)"
      mkdir -p "$work/pause"
      gcc -static -Os -s -Wall -Wextra -Werror -DTETHER_PAUSE_VERSION="\"$pause_version\"" \
        -o "$work/pause/pause" e2e/local/pause/pause.c
      normalize_modes "$work/pause"
      config=$(jq -n -c '{User: "65532:65532", Entrypoint: ["/pause"],
        Labels: {"org.opencontainers.image.title": "tether-pause",
          "org.opencontainers.image.description": "Holds a pod sandbox open for containerd (e2e/local/pause/pause.c)",
          "org.opencontainers.image.licenses": "Apache-2.0"}}')
      only=$(layer "$work/pause")
      oci_archive pause "$ref" "$config" "$only"
      ;;
    coredns)
      bin=$(bash e2e/k8s/build.sh coredns | tail -1)
      mkdir -p "$work/coredns"
      cp "$bin/coredns" "$work/coredns/coredns"
      normalize_modes "$work/coredns"
      # No ExposedPorts: the port is the Corefile's choice (as user 65532, one above 1023).
      config=$(jq -n -c --arg v "$coredns_version" '{User: "65532:65532", Entrypoint: ["/coredns"],
        Labels: {"org.opencontainers.image.title": "coredns", "org.opencontainers.image.version": $v,
          "org.opencontainers.image.description": "CoreDNS built from its Go module (e2e/k8s/build.sh)"}}')
      only=$(layer "$work/coredns")
      oci_archive coredns "$ref" "$config" "$only"
      ;;
  esac
done

# Cached layers this run did not use are from older inputs: drop them.
if [ ${#images[@]} -eq ${#all_images[@]} ]; then
  for f in "$cache/layers"/*; do
    [ -e "$f" ] || continue
    grep -qxF "$(basename "$f")" "$work/used" || rm -f "$f"
  done
fi
cat "$work/built"

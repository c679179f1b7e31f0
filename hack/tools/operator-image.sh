#!/usr/bin/env bash
# Builds the operator image without Docker, as an OCI layout, and prints "<layout>:<tag>":
#   $IMAGEPOLICY_CHEAP_CACHE/operator-image-<hash of the inputs>/oci:operator
#
# The same image the Dockerfile describes (test/node/image.test.ts compares them): a Debian
# bookworm base, Node 24 at /usr/local/bin/node, /app holding the production node_modules
# (`npm ci --omit=dev` with the repository's .npmrc), the agent's malloc_trim addon
# (native/malloc-trim.node, hack/tools/malloc-trim.sh), package.json, bin/ and src/, USER
# 65532:65532, WORKDIR /app, ENTRYPOINT ["node", "/app/src/cli/main.ts"], NODE_ENV=production,
# and Node's compile cache filled by the Dockerfile's RUN line (NODE_COMPILE_CACHE).
# Four layers:
#   1. the base: `mmdebstrap --variant=minbase bookworm` from the machine's apt mirror, without
#      documentation and locales as Debian's slim images; cached in $IMAGEPOLICY_CACHE keyed by
#      suite, variant and recipe (it does not depend on this repository);
#   2. Node: the binary of the npm `node` package at the version package.json pins (the one
#      `npm ci` installed into node_modules; the Dockerfile's node:24-bookworm-slim base carries
#      the official build of the same release line);
#   3. the application;
#   4. Node's compile cache: the Dockerfile's RUN line run in the unpacked image (chroot), so the
#      cache entries name /app's files exactly as at run time.
# The image itself goes to the cheap cache (rebuilt on every CI run): about 30 s warm.
#
# Needs: mmdebstrap (installed when missing), umoci (hack/tools/evaluator.sh), npm.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)

BASE_SUITE=bookworm
BASE_VARIANT=minbase
# Bump when the base recipe changes.
BASE_RECIPE=1
BASE_KEY="operator-base-${BASE_SUITE}-${BASE_VARIANT}-r${BASE_RECIPE}"
base_dest="$IMAGEPOLICY_CACHE/$BASE_KEY"
TAG=operator

# Everything that ends up in the image, and this script.
app_inputs() {
  (cd "$repo" && {
    printf '%s\n' hack/tools/operator-image.sh hack/tools/malloc-trim.sh package.json \
      package-lock.json .npmrc Dockerfile native/build.sh native/malloc-trim.c
    find bin src config/sigstore -type f | LC_ALL=C sort
  })
}

build_base() {
  [[ -f $base_dest/complete ]] && return 0
  if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    apt-get install -y mmdebstrap >&2 || { apt-get update >&2 && apt-get install -y mmdebstrap >&2; }
  fi
  local mirror tmp
  mirror=${OPERATOR_BASE_MIRROR:-$(apt_debian_mirror)}
  rm -rf "$base_dest".tmp.*
  tmp="$base_dest.tmp.$$"
  mkdir -p "$tmp"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  log "building the $BASE_SUITE $BASE_VARIANT base of the operator image (about 30 s)"
  # As Debian's slim images: no documentation, manual pages or translations.
  mmdebstrap --quiet --variant="$BASE_VARIANT" --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    "$BASE_SUITE" "$tmp/rootfs.tar" "$mirror" >&2 || die "mmdebstrap $BASE_SUITE failed"
  local umoci
  umoci="$("$here/evaluator.sh")/umoci"
  "$umoci" init --layout "$tmp/oci" >&2
  "$umoci" new --image "$tmp/oci:base" >&2
  "$umoci" raw add-layer --image "$tmp/oci:base" \
    --history.created_by "mmdebstrap --variant=$BASE_VARIANT $BASE_SUITE" "$tmp/rootfs.tar" >&2
  rm "$tmp/rootfs.tar"
  touch "$tmp/complete"
  rm -rf "$base_dest"
  mv "$tmp" "$base_dest"
  trap - EXIT
}

# deterministic_tar DIR OUT: DIR's content as an uncompressed tar, root-owned, sorted, fixed mtime.
deterministic_tar() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2" .
}

build_image() {
  local dest=$1 tmp umoci start=$SECONDS
  [[ -f $dest/complete ]] && return 0
  build_base
  umoci="$("$here/evaluator.sh")/umoci"
  rm -rf "$dest".tmp.*
  tmp="$dest.tmp.$$"
  mkdir -p "$tmp/oci"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  # Blobs are content-addressed and never rewritten: hard links when on the same filesystem.
  cp -al "$base_dest/oci/blobs" "$tmp/oci/blobs" 2>/dev/null || cp -r "$base_dest/oci/blobs" "$tmp/oci/blobs"
  cp "$base_dest/oci/index.json" "$base_dest/oci/oci-layout" "$tmp/oci/"

  # Node 24: the binary npm installed from the pinned `node` package.
  local want have
  want=$(sed -n 's/^ *"node": "\([0-9.]*\)",\{0,1\}$/\1/p' "$repo/package.json" | head -n1)
  [[ -n $want ]] || die "package.json pins no node version"
  [[ -x $repo/node_modules/node/bin/node ]] || die "node_modules/node/bin/node missing: run hack/tools/npm-install.sh"
  have=$("$repo/node_modules/node/bin/node" -v)
  [[ $have == "v$want" ]] || die "node_modules holds Node $have, package.json pins $want: run hack/tools/npm-install.sh"
  mkdir -p "$tmp/node/usr/local/bin"
  cp "$repo/node_modules/node/bin/node" "$tmp/node/usr/local/bin/node"
  chmod 0755 "$tmp/node/usr/local/bin/node"
  deterministic_tar "$tmp/node" "$tmp/node.tar"
  "$umoci" raw add-layer --image "$tmp/oci:base" --tag "$TAG" \
    --history.created_by "Node $have from the npm package node@$want" "$tmp/node.tar" >&2
  rm -rf "$tmp/node" "$tmp/node.tar"

  # The application, as the Dockerfile's COPY lines lay it out.
  mkdir -p "$tmp/app/app"
  (cd "$repo" && cp package.json package-lock.json .npmrc "$tmp/app/app/")
  log "npm ci --omit=dev for the operator image"
  (cd "$tmp/app/app" && PATH="$repo/node_modules/.bin:$PATH" npm ci --omit=dev --no-audit --no-fund \
    --prefer-offline >&2) || die "npm ci --omit=dev failed"
  # The Dockerfile copies package-lock.json and .npmrc only into its deps stage.
  rm "$tmp/app/app/package-lock.json" "$tmp/app/app/.npmrc"
  (cd "$repo" && cp -r bin src "$tmp/app/app/" && mkdir -p "$tmp/app/app/config" &&
    cp -r config/sigstore "$tmp/app/app/config/")
  # The Dockerfile's native stage: the agent's malloc_trim addon, built by the same native/build.sh
  # against the same Node release's headers. Its only C library symbols are malloc_trim and
  # __cxa_finalize (GLIBC_2.2.5), so a build on this machine loads on the base's glibc.
  local addon
  addon=$("$here/malloc-trim.sh") || die "building the malloc_trim addon failed"
  mkdir -p "$tmp/app/app/native"
  cp "$addon" "$tmp/app/app/native/malloc-trim.node"
  deterministic_tar "$tmp/app" "$tmp/app.tar"
  "$umoci" raw add-layer --image "$tmp/oci:$TAG" \
    --history.created_by "node_modules (npm ci --omit=dev), native/malloc-trim.node, package.json, bin, src, config/sigstore" \
    "$tmp/app.tar" >&2
  rm -rf "$tmp/app" "$tmp/app.tar"

  # The Dockerfile's RUN line, in the image as built so far: the compile cache names the files by
  # their paths in the image, so it is made there, as root, as `docker build` would.
  local run cache=/app/.node-compile-cache
  run=$(sed -n 's/^RUN \(node src\/cli\/main.ts agent --help.*\)$/\1/p' "$repo/Dockerfile")
  [[ -n $run ]] || die "the Dockerfile's compile-cache RUN line was not found"
  "$umoci" unpack --image "$tmp/oci:$TAG" "$tmp/bundle" >&2
  chroot "$tmp/bundle/rootfs" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production \
    NODE_COMPILE_CACHE="$cache" /bin/sh -c "cd /app && $run" >&2 || die "the compile-cache RUN line failed"
  [[ -n $(find "$tmp/bundle/rootfs$cache" -type f | head -n1) ]] || die "the compile cache is empty"
  mkdir -p "$tmp/cache/app"
  cp -a "$tmp/bundle/rootfs$cache" "$tmp/cache/app/"
  rm -rf "$tmp/bundle"
  deterministic_tar "$tmp/cache" "$tmp/cache.tar"
  "$umoci" raw add-layer --image "$tmp/oci:$TAG" \
    --history.created_by "RUN $run (NODE_COMPILE_CACHE=$cache)" "$tmp/cache.tar" >&2
  rm -rf "$tmp/cache" "$tmp/cache.tar"

  # The Dockerfile's final-stage configuration (and the PATH and NODE_VERSION its base sets).
  "$umoci" config --image "$tmp/oci:$TAG" --created 1970-01-01T00:00:00Z \
    --history.created_by "USER, WORKDIR, ENV, ENTRYPOINT as in the Dockerfile" \
    --clear config.env --clear config.cmd --clear config.entrypoint \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env "NODE_VERSION=$want" \
    --config.env NODE_ENV=production \
    --config.env NODE_COMPILE_CACHE=/app/.node-compile-cache \
    --config.user 65532:65532 \
    --config.workingdir /app \
    --config.entrypoint node --config.entrypoint /app/src/cli/main.ts >&2
  "$umoci" rm --image "$tmp/oci:base" >&2
  "$umoci" gc --layout "$tmp/oci" >&2
  touch "$tmp/complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  log "built the operator image in $((SECONDS - start))s"
}

key=$(cd "$repo" && app_inputs | { mapfile -t files; inputs_hash "${files[@]}"; })
dest="$IMAGEPOLICY_CHEAP_CACHE/operator-image-${BASE_KEY#operator-}-$key"

if [[ "${1:-}" == --locked ]]; then
  build_image "$dest"
  exit 0
fi
if [[ ! -f $dest/complete ]]; then
  with_lock "operator-image" "$here/operator-image.sh" --locked
fi
[[ -f $dest/complete ]] || die "operator image missing under $dest"
echo "$dest/oci:$TAG"

#!/usr/bin/env bash
# Builds the agent's malloc_trim addon (native/malloc-trim.c, with native/build.sh) against the
# headers of the Node that npm installed, and prints its path:
#   $IMAGEPOLICY_CHEAP_CACHE/malloc-trim-<hash of the inputs>/malloc-trim.node
# The tests and benchmarks run the agent from the checkout with IMAGEPOLICY_MALLOC_TRIM set to it,
# as the image carries it at /app/native/malloc-trim.node. Needs a C compiler (installs gcc when
# none is found). Everything else goes to stderr.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)

# The npm `node` package installs its binary and headers from node-<os>-<arch>.
headers=("$repo"/node_modules/node/node_modules/node-*/include/node)
include=${headers[0]}
[[ -f $include/node_api.h ]] ||
  die "no Node headers under node_modules/node: run hack/tools/npm-install.sh"
version=$("$repo/node_modules/node/bin/node" -v)
key=$(cd "$repo" && inputs_hash native/malloc-trim.c native/build.sh)
dest="$IMAGEPOLICY_CHEAP_CACHE/malloc-trim-$version-$key"
build() {
  [[ -f $dest/malloc-trim.node ]] && return 0
  if ! command -v "${CC:-cc}" >/dev/null; then
    log "installing gcc"
    apt-get install -y gcc >&2 || { apt-get update >&2 && apt-get install -y gcc >&2; }
  fi
  log "building the malloc_trim addon against Node $version's headers"
  rm -rf "$dest.tmp.$$"
  mkdir -p "$dest.tmp.$$"
  "$repo/native/build.sh" "$include" "$dest.tmp.$$/malloc-trim.node" >&2 ||
    die "native/build.sh failed"
  rm -rf "$dest"
  mv "$dest.tmp.$$" "$dest"
}

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi
# One builder at a time (parallel test workers, a second clone).
[[ -f $dest/malloc-trim.node ]] || with_lock malloc-trim "$here/malloc-trim.sh" --locked
echo "$dest/malloc-trim.node"

# Shared helpers for hack/tools/*.sh. Source it; do not execute it.
# Everything built or downloaded goes under the cache directory, keyed by version, outside the
# clone, so a fresh clone on the same machine reuses it. Never under the repository.
set -euo pipefail

IMAGEPOLICY_CACHE="${IMAGEPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagepolicy-operator}"
export IMAGEPOLICY_CACHE
mkdir -p "$IMAGEPOLICY_CACHE"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# with_lock NAME CMD...: serialise concurrent builders of the same cache entry (parallel test
# workers, a second clone building at the same time).
with_lock() {
  local name=$1; shift
  mkdir -p "$IMAGEPOLICY_CACHE/locks"
  flock "$IMAGEPOLICY_CACHE/locks/$name.lock" "$@"
}

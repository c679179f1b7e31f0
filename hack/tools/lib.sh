# Shared helpers for hack/tools/*.sh. Source it; do not execute it.
# Everything built or downloaded goes under the cache directory, keyed by version, outside the
# clone, so a fresh clone on the same machine reuses it. Never under the repository.
set -euo pipefail

IMAGEPOLICY_CACHE="${IMAGEPOLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagepolicy-operator}"
export IMAGEPOLICY_CACHE
mkdir -p "$IMAGEPOLICY_CACHE"

# Two kinds of cached state:
# - $IMAGEPOLICY_CACHE: the expensive builds (control plane, CRI-O, the evaluator rootfs, ...),
#   keyed by the versions they are built from. Their content does not depend on the machine in
#   any way a test can see, so every clone and every run may reuse them.
# - $IMAGEPOLICY_CHEAP_CACHE: what takes seconds to build (fixture images, the operator image).
#   Keyed by a hash of its inputs, reused locally for speed; .ci/run points it at a fresh, empty
#   directory on every run, so no test can pass only because an earlier run left something here.
IMAGEPOLICY_CHEAP_CACHE="${IMAGEPOLICY_CHEAP_CACHE:-$IMAGEPOLICY_CACHE/cheap}"
export IMAGEPOLICY_CHEAP_CACHE
mkdir -p "$IMAGEPOLICY_CHEAP_CACHE"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# with_lock NAME CMD...: serialise concurrent builders of the same cache entry (parallel test
# workers, a second clone building at the same time).
with_lock() {
  local name=$1; shift
  mkdir -p "$IMAGEPOLICY_CACHE/locks"
  flock "$IMAGEPOLICY_CACHE/locks/$name.lock" "$@"
}

# inputs_hash FILE...: the first 12 hex digits of the SHA-256 over the files' names and contents,
# the cache key of something built from exactly those files.
inputs_hash() {
  local f
  for f in "$@"; do printf '%s\0' "$f"; cat "$f"; done | sha256sum | cut -c1-12
}

# apt_debian_mirror: the Debian archive this machine's apt is configured with (the first `deb`
# source whose URI does not end in -security), so builds of other suites (mmdebstrap) use the same
# mirror or proxy as the machine. Reads deb822 .sources files and one-line sources.list files.
apt_debian_mirror() {
  local uri
  uri=$(
    {
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^Types:/ { deb = 0; for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
        /^URIs:/ && deb { for (i = 2; i <= NF; i++) print $i }'
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }'
    } | grep -v -- '-security/*$' | head -n 1
  ) || true
  [[ -n $uri ]] || die "no Debian source in /etc/apt (set EVALUATOR_MIRROR or add an apt source)"
  printf '%s\n' "${uri%/}"
}

# Shared by hack/tools/{helm,promtool,kstatus}.sh. Source it after lib.sh; do not execute it.
#
# go_tool_cached NAME RECIPE BUILD_FUNCTION BINARY...
#   Makes sure $IMAGEPOLICY_CACHE/NAME/bin holds every BINARY, built by BUILD_FUNCTION (called
#   with a bin directory to fill) under a lock, in a temporary directory renamed into place only
#   when the build and its smoke test succeeded. RECIPE is written next to the binaries: bump it
#   in the calling script when a change there changes what gets built. Prints the bin directory.
#
# The callers build from the Go module proxy with the machine's own Go settings (GOPROXY,
# GOMODCACHE, GOCACHE): no host name is written here.
set -euo pipefail

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x $GO ]] || die "go not found (set GO or put go on PATH)"
export GO GOTOOLCHAIN=local GOFLAGS="-buildvcs=false"

go_tool_complete() {
  local dest=$1 recipe=$2 b
  shift 2
  [[ $(cat "$dest/recipe" 2>/dev/null) == "$recipe" ]] || return 1
  for b in "$@"; do [[ -x $dest/bin/$b ]] || return 1; done
}

# Runs under the lock (a fresh bash: everything it uses is exported by go_tool_cached).
go_tool_build() {
  go_tool_complete "$GT_DEST" "$GT_RECIPE" $GT_BINARIES && return 0
  local tmp start=$SECONDS
  tmp=$(mktemp -d "$IMAGEPOLICY_CACHE/.$GT_NAME.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin"
  "$GT_BUILD" "$tmp/bin"
  echo "$GT_RECIPE" >"$tmp/recipe"
  chmod 755 "$tmp"
  local old="$GT_DEST.old.$$"
  [[ ! -e $GT_DEST ]] || mv "$GT_DEST" "$old"
  mv "$tmp" "$GT_DEST"
  trap - EXIT
  rm -rf "$old"
  log "built $GT_NAME in $((SECONDS - start))s"
}

go_tool_cached() {
  local name=$1 recipe=$2 build=$3
  shift 3
  local dest="$IMAGEPOLICY_CACHE/$name"
  if ! go_tool_complete "$dest" "$recipe" "$@"; then
    export GT_NAME=$name GT_DEST=$dest GT_RECIPE=$recipe GT_BUILD=$build GT_BINARIES="$*"
    export -f go_tool_build go_tool_complete log die "$build"
    with_lock "$name" bash -euo pipefail -c go_tool_build
  fi
  go_tool_complete "$dest" "$recipe" "$@" || die "$name: binaries missing under $dest/bin"
  echo "$dest/bin"
}

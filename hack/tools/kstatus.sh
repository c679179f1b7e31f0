#!/usr/bin/env bash
# Builds hack/tools/kstatus (a tiny Go program around sigs.k8s.io/cli-utils' pkg/kstatus/status,
# the rules Flux, Helm 4's --wait and kpt read an object's readiness with) from the Go module
# proxy and caches it by the cli-utils version and a hash of the program's sources:
#   $IMAGEPOLICY_CACHE/kstatus-<cli-utils version>-<hash>/bin/kstatus
# Prints the bin directory on stdout; everything else goes to stderr. The dependency versions are
# pinned by hack/tools/kstatus/go.sum (verified by Go against its checksum database).
#
# Environment: GO (default go on PATH, else /usr/local/go/bin/go).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/go-tool.sh"

SRC="$(cd "$(dirname "$0")/kstatus" && pwd)"
export SRC
CLI_UTILS_VERSION=$(sed -n 's/^[[:space:]]*sigs\.k8s\.io\/cli-utils \(v[0-9.]*\)$/\1/p' "$SRC/go.mod")
[[ -n $CLI_UTILS_VERSION ]] || die "no sigs.k8s.io/cli-utils requirement in $SRC/go.mod"
HASH=$(cd "$SRC" && inputs_hash main.go go.mod go.sum)
RECIPE=1

build_kstatus() {
  local bin=$1
  log "building kstatus from $SRC"
  (cd "$SRC" && CGO_ENABLED=0 "$GO" build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin/kstatus" .) >&2 ||
    die "building kstatus failed"
  echo '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"smoke"}}' | "$bin/kstatus" >&2 ||
    die "the built kstatus does not run"
}

go_tool_cached "kstatus-$CLI_UTILS_VERSION-$HASH" "$RECIPE" build_kstatus kstatus

#!/usr/bin/env bash
# Builds a local Kubernetes control plane from the Go module proxy and caches it by version:
#   $IMAGEPOLICY_CACHE/control-plane-<k8s>-etcd-<etcd>/bin/{kube-apiserver,kube-controller-manager,kubectl,etcd}
# Prints the bin directory on stdout; everything else goes to stderr.
#
# kube-apiserver, kube-controller-manager and kubectl come from the Kubernetes wrapper module of
# lib.sh (k8s_build_commands, shared with kubelet.sh). etcd comes from a second wrapper module
# around go.etcd.io/etcd/server/v3/etcdmain, kept apart so its dependency versions do not move
# Kubernetes's.
#
# Environment: KUBERNETES_VERSION (default v1.37.2), ETCD_VERSION (default v3.6.16), GO (default
# go on PATH, else /usr/local/go/bin/go). GOCACHE and GOMODCACHE are Go's own defaults unless set.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
[[ $KUBERNETES_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "KUBERNETES_VERSION must look like v1.37.2, got $KUBERNETES_VERSION"
[[ $ETCD_VERSION =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION must look like v3.6.16, got $ETCD_VERSION"

NAME="control-plane-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}"
DEST="$IMAGEPOLICY_CACHE/$NAME"
BINARIES=(kube-apiserver kube-controller-manager kubectl etcd)

# Bump when a change to this script changes the binaries it produces, so caches rebuild.
RECIPE=2

complete() {
  local b
  [[ $(cat "$DEST/recipe" 2>/dev/null) == "$RECIPE" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x $DEST/bin/$b ]] || return 1; done
}

build_etcd() {
  local work=$1 out=$2 go
  go=$(go_binary)
  local mod="$work/etcd"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<EOM
module imagepolicy.dev/etcd-wrapper

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOM
  cat >"$mod/main.go" <<'EOM'
// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOM
  export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false"
  log "resolving etcd $ETCD_VERSION dependencies"
  (cd "$mod" && "$go" mod tidy) >&2 || die "go mod tidy failed for the etcd wrapper module"
  # Keep the etcd modules the server was released with (tidy may pick them already; be explicit).
  local ver
  ver=$(cd "$mod" && "$go" list -m -f '{{.Version}}' go.etcd.io/etcd/api/v3)
  [[ $ver == "$ETCD_VERSION" ]] || log "note: go.etcd.io/etcd/api/v3 resolved to $ver"
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && CGO_ENABLED=0 "$go" build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
    -o "$out/etcd" .) >&2 || die "building etcd $ETCD_VERSION failed"
}

build() {
  complete && return 0
  local tmp
  tmp=$(mktemp -d "$IMAGEPOLICY_CACHE/.$NAME.XXXXXX")
  # Clean the temp dir on failure; on success it has been renamed away.
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/bin" "$tmp/src"
  local start=$SECONDS
  build_etcd "$tmp/src" "$tmp/bin"
  k8s_build_commands "$tmp/src" "$tmp/bin" "$KUBERNETES_VERSION" \
    kube-apiserver kube-controller-manager kubectl
  "$tmp/bin/kubectl" version --client >&2 || die "the built kubectl does not run"
  "$tmp/bin/etcd" --version >&2 || die "the built etcd does not run"
  echo "$RECIPE" >"$tmp/recipe"
  chmod 755 "$tmp"
  rm -rf "$tmp/src"
  # Swap in the new tree; a stale one (older recipe) is moved aside first, then removed.
  local old="$DEST.old.$$"
  [[ ! -e $DEST ]] || mv "$DEST" "$old"
  mv "$tmp" "$DEST"
  trap - EXIT
  rm -rf "$old"
  log "built $NAME in $((SECONDS - start))s"
}

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi
if ! complete; then
  with_lock "$NAME" "$here/control-plane.sh" --locked
fi
complete || die "control plane binaries missing under $DEST/bin"
echo "$DEST/bin"

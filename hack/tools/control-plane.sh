#!/usr/bin/env bash
# Builds a local Kubernetes control plane from the Go module proxy and caches it by version:
#   $IMAGEPOLICY_CACHE/control-plane-<k8s>-etcd-<etcd>/bin/{kube-apiserver,kube-controller-manager,kubectl,etcd}
# Prints the bin directory on stdout; everything else goes to stderr.
#
# kube-apiserver, kube-controller-manager and kubectl come from a wrapper module (created under the
# cache directory, never in the repository) that requires k8s.io/kubernetes and replaces each of
# its staging modules (k8s.io/api, k8s.io/client-go, ...) with the matching v0.X.Y release; the
# staging list is read from k8s.io/kubernetes's own go.mod because it changes between minor
# releases. etcd comes from a second wrapper module around go.etcd.io/etcd/server/v3/etcdmain,
# kept apart so its dependency versions do not move Kubernetes's.
#
# Environment: KUBERNETES_VERSION (default v1.37.2), ETCD_VERSION (default v3.6.16), GO (default
# go on PATH, else /usr/local/go/bin/go). GOCACHE and GOMODCACHE are Go's own defaults unless set.
source "$(dirname "$0")/lib.sh"

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
[[ $KUBERNETES_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBERNETES_VERSION must look like v1.37.2, got $KUBERNETES_VERSION"
K8S_MINOR="${BASH_REMATCH[1]}"
K8S_PATCH="${BASH_REMATCH[2]}"
STAGING_VERSION="v0.${K8S_MINOR}.${K8S_PATCH}"
[[ $ETCD_VERSION =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION must look like v3.6.16, got $ETCD_VERSION"

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x $GO ]] || die "go not found (set GO or put go on PATH)"
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false"

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

build_kubernetes() {
  local work=$1 out=$2
  local mod="$work/kubernetes"
  mkdir -p "$mod"
  log "fetching k8s.io/kubernetes@$KUBERNETES_VERSION metadata"
  local download gomod infofile
  download=$(cd "$work" && "$GO" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION") ||
    die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION"
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")
  infofile=$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")
  [[ -f $gomod && -f $infofile ]] || die "no go.mod/.info for k8s.io/kubernetes@$KUBERNETES_VERSION in: $download"
  # The .info file holds the release time, and the commit only when the proxy recorded an Origin
  # (proxy.golang.org does not for k8s.io/kubernetes): gitCommit is then "unknown".
  local commit vtime
  commit=$(grep -o '"Hash": *"[0-9a-f]\{40\}"' "$infofile" | grep -o '[0-9a-f]\{40\}' | head -n1 || true)
  commit=${commit:-unknown}
  vtime=$(grep -o '"Time": *"[^"]*"' "$infofile" | sed 's/.*"\([^"]*\)"$/\1/' | head -n1 || true)
  [[ -n $vtime ]] || die "no release time in $infofile"
  local goline
  goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -n1)

  # Staging modules: `k8s.io/<name> => ./staging/src/k8s.io/<name>` in k8s.io/kubernetes's go.mod.
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "$gomod" | sort -u)
  [[ -n $staging ]] || die "no staging replace lines found in $gomod"
  {
    echo "module imagepolicy.dev/control-plane-wrapper"
    echo
    echo "go ${goline:-1.26.0}"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'EOF'
//go:build tools

// Package tools pins the commands built from this wrapper module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  log "resolving Kubernetes dependencies ($(wc -w <<<"$staging") staging modules at $STAGING_VERSION)"
  (cd "$mod" && "$GO" mod tidy) >&2 || die "go mod tidy failed for the Kubernetes wrapper module"

  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION"
    ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=$vtime"
  done
  log "building kube-apiserver, kube-controller-manager, kubectl $KUBERNETES_VERSION"
  (cd "$mod" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl) >&2 || die "building Kubernetes $KUBERNETES_VERSION failed"
}

build_etcd() {
  local work=$1 out=$2
  local mod="$work/etcd"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<EOF
module imagepolicy.dev/etcd-wrapper

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$mod/main.go" <<'EOF'
// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  log "resolving etcd $ETCD_VERSION dependencies"
  (cd "$mod" && "$GO" mod tidy) >&2 || die "go mod tidy failed for the etcd wrapper module"
  # Keep the etcd modules the server was released with (tidy may pick them already; be explicit).
  local ver
  ver=$(cd "$mod" && "$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/api/v3)
  [[ $ver == "$ETCD_VERSION" ]] || log "note: go.etcd.io/etcd/api/v3 resolved to $ver"
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && CGO_ENABLED=0 "$GO" build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
    -o "$out/etcd" .) >&2 || die "building etcd $ETCD_VERSION failed"
}

build() {
  complete && return 0
  local tmp
  tmp=$(mktemp -d "$IMAGEPOLICY_CACHE/.$NAME.XXXXXX")
  # Clean the temp dir on failure; on success it has been renamed away.
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin" "$tmp/src"
  local start=$SECONDS
  build_etcd "$tmp/src" "$tmp/bin"
  build_kubernetes "$tmp/src" "$tmp/bin"
  "$tmp/bin/kubectl" version --client >&2 || die "the built kubectl does not run"
  "$tmp/bin/etcd" --version >&2 || die "the built etcd does not run"
  echo "$RECIPE" >"$tmp/recipe"
  chmod 755 "$tmp"
  # Swap in the new tree; a stale one (older recipe) is moved aside first, then removed.
  local old="$DEST.old.$$"
  [[ ! -e $DEST ]] || mv "$DEST" "$old"
  mv "$tmp" "$DEST"
  trap - EXIT
  rm -rf "$old"
  log "built $NAME in $((SECONDS - start))s"
}

if ! complete; then
  export -f build build_etcd build_kubernetes complete log die
  export GO NAME DEST RECIPE KUBERNETES_VERSION ETCD_VERSION K8S_MINOR STAGING_VERSION IMAGEPOLICY_CACHE
  export BINARIES_LIST="${BINARIES[*]}"
  with_lock "$NAME" bash -euo pipefail -c 'BINARIES=($BINARIES_LIST); build'
fi
complete || die "control plane binaries missing under $DEST/bin"
echo "$DEST/bin"

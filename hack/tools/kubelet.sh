#!/usr/bin/env bash
# Builds the node side of Kubernetes from the Go module proxy and caches it by version:
#   $IMAGEPOLICY_CACHE/node-<k8s>/bin/{kubelet,kube-scheduler,kube-proxy}
# Prints the bin directory on stdout; everything else goes to stderr.
#
# The same wrapper module as the control plane (lib.sh k8s_build_commands), at the same version
# by default, so a cold build reuses most of Go's build cache from hack/tools/control-plane.sh.
# kube-scheduler is here rather than in the control plane because only a cluster with a kubelet
# needs it; kube-proxy gives pods the `kubernetes` Service (in-cluster configuration dials its
# ClusterIP). All three build with CGO_ENABLED=0. Also installs Debian's iptables, which
# kube-proxy and the CNI bridge plugin run.
#
# Environment: KUBERNETES_VERSION (default v1.37.2), GO.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
[[ $KUBERNETES_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "KUBERNETES_VERSION must look like v1.37.2, got $KUBERNETES_VERSION"
NAME="node-${KUBERNETES_VERSION}"
DEST="$IMAGEPOLICY_CACHE/$NAME"
BINARIES=(kubelet kube-scheduler kube-proxy)
# Bump when a change to this script changes the binaries it produces, so caches rebuild.
RECIPE=1

complete() {
  local b
  [[ $(cat "$DEST/recipe" 2>/dev/null) == "$RECIPE" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x $DEST/bin/$b ]] || return 1; done
}

build() {
  complete && return 0
  local tmp start=$SECONDS
  tmp=$(mktemp -d "$IMAGEPOLICY_CACHE/.$NAME.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/bin" "$tmp/src"
  log "building ${BINARIES[*]} $KUBERNETES_VERSION (cold: about 6 minutes on 2 cores, less after the control plane)"
  k8s_build_commands "$tmp/src" "$tmp/bin" "$KUBERNETES_VERSION" "${BINARIES[@]}"
  local b
  for b in "${BINARIES[@]}"; do
    "$tmp/bin/$b" --version >&2 || die "the built $b does not run"
  done
  rm -rf "$tmp/src"
  echo "$RECIPE" >"$tmp/recipe"
  chmod 755 "$tmp"
  local old="$DEST.old.$$"
  [[ ! -e $DEST ]] || mv "$DEST" "$old"
  mv "$tmp" "$DEST"
  trap - EXIT
  rm -rf "$old"
  log "built $NAME in $((SECONDS - start))s"
}

# kube-proxy programs the node's Services with iptables (inside the node's network namespace),
# and the CNI bridge plugin masquerades pod traffic with it.
ensure_apt iptables

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi
if ! complete; then
  with_lock "$NAME" "$here/kubelet.sh" --locked
fi
complete || die "node binaries missing under $DEST/bin"
echo "$DEST/bin"

#!/usr/bin/env bash
# Builds the CNI plugins the local node needs from the Go module proxy and caches them by version:
#   $IMAGEPOLICY_CACHE/cni-plugins-<version>/bin/{bridge,host-local,loopback,portmap}
# Prints the bin directory on stdout; everything else goes to stderr.
#
# From github.com/containernetworking/plugins (its own module, built with its own go.mod, as
# crio.sh builds CRI-O): bridge (the pods' bridge inside the node's network namespace, with IP
# masquerade), host-local (addresses from the node's pod CIDR), loopback (each pod's lo) and portmap
# (hostPort, chained after bridge). CGO_ENABLED=0, as the project's release builds them.
#
# Environment: CNI_PLUGINS_VERSION (default v1.10.0), GO.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
[[ $CNI_PLUGINS_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CNI_PLUGINS_VERSION must look like v1.10.0"
NAME="cni-plugins-${CNI_PLUGINS_VERSION}"
DEST="$IMAGEPOLICY_CACHE/$NAME"
# plugin name -> package directory inside the module
declare -A PLUGINS=(
  [bridge]=plugins/main/bridge
  [host-local]=plugins/ipam/host-local
  [loopback]=plugins/main/loopback
  [portmap]=plugins/meta/portmap
)
RECIPE=1

complete() {
  local p
  [[ $(cat "$DEST/recipe" 2>/dev/null) == "$RECIPE" ]] || return 1
  for p in "${!PLUGINS[@]}"; do [[ -x $DEST/bin/$p ]] || return 1; done
}

build() {
  complete && return 0
  local go tmp start=$SECONDS
  go=$(go_binary)
  export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod"
  tmp=$(mktemp -d "$IMAGEPOLICY_CACHE/.$NAME.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  log "downloading github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION"
  local src
  src=$(cd "$tmp" && "$go" mod download -json "github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $src && -d $src ]] || die "cannot download github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION"
  # A writable copy, so the module's own go.mod (and vendor/, when present) apply.
  cp -r "$src" "$tmp/plugins"
  chmod -R u+w "$tmp/plugins"
  mkdir -p "$tmp/out/bin"
  local p flags=()
  [[ -d $tmp/plugins/vendor ]] && flags=(-mod=vendor)
  log "building ${!PLUGINS[*]} $CNI_PLUGINS_VERSION"
  for p in "${!PLUGINS[@]}"; do
    (cd "$tmp/plugins" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$go" build "${flags[@]}" -trimpath \
      -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
      -o "$tmp/out/bin/$p" "./${PLUGINS[$p]}") >&2 || die "building CNI plugin $p failed"
  done
  # A CNI plugin answers VERSION on stdin/env without a network: proves the binary runs.
  for p in "${!PLUGINS[@]}"; do
    CNI_COMMAND=VERSION "$tmp/out/bin/$p" </dev/null >/dev/null || die "the built CNI plugin $p does not run"
  done
  echo "$RECIPE" >"$tmp/out/recipe"
  chmod 755 "$tmp/out"
  local old="$DEST.old.$$"
  [[ ! -e $DEST ]] || mv "$DEST" "$old"
  mv "$tmp/out" "$DEST"
  rm -rf "$tmp" "$old"
  trap - EXIT
  log "built $NAME in $((SECONDS - start))s"
}

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi
if ! complete; then
  with_lock "$NAME" "$here/cni.sh" --locked
fi
complete || die "CNI plugins missing under $DEST/bin"
echo "$DEST/bin"

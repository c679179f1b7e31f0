#!/usr/bin/env bash
# Provide a real CRI-O (crio + pinns), crictl, and the runtime pieces CRI-O needs (an OCI runtime
# and conmon) for the end-to-end tests. crio and pinns are built from the cri-o module zip served
# by the Go module proxy, crictl from sigs.k8s.io/cri-tools, runc from
# github.com/opencontainers/runc; all cached under $IMAGEPOLICY_CACHE/crio-<version>/bin.
# conmon (2.1.6) and crun (1.8.1) come from Debian 12 (apt) and are symlinked into the same
# directory. Debian 12's crun passes CRI-O's startup checks but cannot create containers from the
# OCI runtime-spec 1.3.0 that CRI-O 1.36 writes ("unknown version specified"), so runc 1.4
# (spec 1.3.0) is the runtime that actually runs containers. Prints the bin directory on stdout.
#
# Idempotent: a second run only checks the binaries. Concurrent runs serialise on a lock; the
# build happens in a temp directory that is renamed into place, so a half-built cache never
# looks complete.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# The newest cri-o version the module proxy serves here (v1.36.4, v1.37.x are not served).
CRIO_VERSION=${CRIO_VERSION:-v1.36.3}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
RUNC_VERSION=${RUNC_VERSION:-v1.4.1}
# Bump when the build recipe or the bin layout changes.
CRIO_RECIPE=2
CRIO_TAGS="seccomp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper containers_image_openpgp containers_image_ostree_stub"

dest="$IMAGEPOLICY_CACHE/crio-${CRIO_VERSION#v}"
bin="$dest/bin"

export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS=${GOFLAGS:--mod=mod}

complete() {
  [[ -f "$dest/.recipe-$CRIO_RECIPE-crictl-$CRICTL_VERSION-runc-$RUNC_VERSION" ]] || return 1
  local b
  for b in crio pinns crictl runc crun conmon; do [[ -x "$bin/$b" ]] || return 1; done
}

ensure_apt() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
}

# module_dir MODULE VERSION: download the module zip, print its (read-only) directory.
module_dir() {
  go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

module_commit() {
  go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' | head -n1
}

build() {
  complete && return 0
  ensure_apt libseccomp-dev crun conmon gcc make libc6-dev pkg-config
  mkdir -p "$IMAGEPOLICY_CACHE"
  local tmp
  tmp=$(mktemp -d "$IMAGEPOLICY_CACHE/.crio-build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/bin"

  log "downloading github.com/cri-o/cri-o@$CRIO_VERSION"
  local src commit
  src=$(module_dir github.com/cri-o/cri-o "$CRIO_VERSION")
  [[ -n "$src" && -d "$src" ]] || die "could not download github.com/cri-o/cri-o@$CRIO_VERSION"
  commit=$(module_commit github.com/cri-o/cri-o "$CRIO_VERSION")
  # Build inside a writable copy of the module, so its own go.mod (and any replace lines) apply.
  cp -r "$src" "$tmp/cri-o"
  chmod -R u+w "$tmp/cri-o"

  log "building crio $CRIO_VERSION (cgo, tags: $CRIO_TAGS; several minutes on 2 cores)"
  (
    cd "$tmp/cri-o"
    CGO_ENABLED=1 go build -trimpath -tags "$CRIO_TAGS" \
      -ldflags "-s -w -X github.com/cri-o/cri-o/internal/version.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ) -X github.com/cri-o/cri-o/internal/version.buildCommit=$commit" \
      -o "$tmp/bin/crio" ./cmd/crio
  ) >&2 || die "building crio failed"

  log "building pinns"
  make -C "$tmp/cri-o/pinns" >&2 || die "building pinns failed"
  cp "$tmp/cri-o/bin/pinns" "$tmp/bin/pinns"

  log "downloading and building sigs.k8s.io/cri-tools@$CRICTL_VERSION (crictl)"
  local tsrc
  tsrc=$(module_dir sigs.k8s.io/cri-tools "$CRICTL_VERSION")
  [[ -n "$tsrc" && -d "$tsrc" ]] || die "could not download sigs.k8s.io/cri-tools@$CRICTL_VERSION"
  cp -r "$tsrc" "$tmp/cri-tools"
  chmod -R u+w "$tmp/cri-tools"
  (
    cd "$tmp/cri-tools"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
      -o "$tmp/bin/crictl" ./cmd/crictl
  ) >&2 || die "building crictl failed"

  log "downloading and building github.com/opencontainers/runc@$RUNC_VERSION"
  local rsrc
  rsrc=$(module_dir github.com/opencontainers/runc "$RUNC_VERSION")
  [[ -n "$rsrc" && -d "$rsrc" ]] || die "could not download github.com/opencontainers/runc@$RUNC_VERSION"
  cp -r "$rsrc" "$tmp/runc"
  chmod -R u+w "$tmp/runc"
  (
    cd "$tmp/runc"
    CGO_ENABLED=1 go build -trimpath -tags seccomp \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v} -X main.gitCommit=$(module_commit github.com/opencontainers/runc "$RUNC_VERSION")" \
      -o "$tmp/bin/runc" .
  ) >&2 || die "building runc failed"

  ln -s "$(command -v crun)" "$tmp/bin/crun"
  ln -s "$(command -v conmon)" "$tmp/bin/conmon"

  "$tmp/bin/crio" --version >/dev/null || die "built crio does not run"
  "$tmp/bin/crictl" --version >/dev/null || die "built crictl does not run"
  "$tmp/bin/runc" --version >/dev/null || die "built runc does not run"
  "$tmp/bin/pinns" -h >/dev/null 2>&1 || [[ -x "$tmp/bin/pinns" ]] || die "built pinns missing"

  # Only bin/ and the marker are kept; sources are dropped.
  mkdir -p "$tmp/out"
  mv "$tmp/bin" "$tmp/out/bin"
  touch "$tmp/out/.recipe-$CRIO_RECIPE-crictl-$CRICTL_VERSION-runc-$RUNC_VERSION"
  # Swap in the new cache; an older recipe is moved aside first, then removed.
  if [[ -e "$dest" ]]; then mv "$dest" "$tmp/old"; fi
  mv "$tmp/out" "$dest"
  log "crio $CRIO_VERSION, crictl $CRICTL_VERSION, runc $RUNC_VERSION ready in $bin"
}

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi

if ! complete; then
  with_lock "crio-${CRIO_VERSION#v}" "$here/crio.sh" --locked >/dev/null
fi
complete || die "crio cache $dest incomplete"
echo "$bin"

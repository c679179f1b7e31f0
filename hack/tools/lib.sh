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

# go_binary: the Go toolchain (GO, else go on PATH, else /usr/local/go/bin/go), with the settings
# every build here uses (the local toolchain, no VCS stamping).
go_binary() {
  local go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
  [[ -x $go ]] || die "go not found (set GO or put go on PATH)"
  printf '%s\n' "$go"
}

# k8s_build_commands WORK OUT VERSION CMD...: builds the commands CMD (e.g. kube-apiserver,
# kubelet: each k8s.io/kubernetes/cmd/CMD) of Kubernetes VERSION (v1.X.Y) into OUT, from a
# wrapper module created under WORK (never in the repository). The wrapper requires
# k8s.io/kubernetes and replaces each of its staging modules (k8s.io/api, k8s.io/client-go, ...)
# with the matching v0.X.Y release; the staging list is read from k8s.io/kubernetes's own go.mod
# because it changes between minor releases. The version ldflags are set as the Kubernetes release
# build sets them, so `--version` and the Node's kubeletVersion read VERSION. Shared by
# control-plane.sh and kubelet.sh, so both build from the same module graph and share Go's build
# cache.
k8s_build_commands() {
  local work=$1 out=$2 version=$3
  shift 3
  local go
  go=$(go_binary)
  [[ $version =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "Kubernetes version must look like v1.37.2, got $version"
  local minor=${BASH_REMATCH[1]} patch=${BASH_REMATCH[2]}
  local staging_version="v0.${minor}.${patch}"
  local mod="$work/kubernetes"
  mkdir -p "$mod"
  log "fetching k8s.io/kubernetes@$version metadata"
  local download gomod infofile
  download=$(cd "$work" && GOTOOLCHAIN=local "$go" mod download -json "k8s.io/kubernetes@$version") ||
    die "cannot download k8s.io/kubernetes@$version"
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")
  infofile=$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")
  [[ -f $gomod && -f $infofile ]] || die "no go.mod/.info for k8s.io/kubernetes@$version in: $download"
  # The .info file holds the release time, and the commit only when the proxy recorded an Origin
  # (the public Go module proxy does not for k8s.io/kubernetes): gitCommit is then "unknown".
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
    echo "module imagepolicy.dev/kubernetes-wrapper"
    echo
    echo "go ${goline:-1.26.0}"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$mod/go.mod"
  local cmd pkgs=()
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the commands built from this wrapper module."
    echo "package tools"
    echo
    echo "import ("
    for cmd in "$@"; do
      echo "	_ \"k8s.io/kubernetes/cmd/$cmd\""
      pkgs+=("k8s.io/kubernetes/cmd/$cmd")
    done
    echo ")"
  } >"$mod/tools.go"
  log "resolving Kubernetes dependencies ($(wc -w <<<"$staging") staging modules at $staging_version)"
  (cd "$mod" && GOTOOLCHAIN=local "$go" mod tidy) >&2 || die "go mod tidy failed for the Kubernetes wrapper module"

  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version"
    ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=$vtime"
  done
  log "building $* $version"
  (cd "$mod" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$go" build -trimpath \
    -ldflags "$ldflags" -o "$out/" "${pkgs[@]}") >&2 || die "building $* $version failed"
}

# ensure_apt PACKAGE...: installs the Debian packages that are missing (apt-get update only when
# the first attempt fails).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
}

#!/usr/bin/env bash
# Builds helm from the Go module proxy and caches it by version:
#   $IMAGEPOLICY_CACHE/helm-<version>/bin/helm
# Prints the bin directory on stdout; everything else goes to stderr.
#
# Helm 4 (helm.sh/helm/v4), not 3: it is the current major release, it applies with server-side
# apply by default (as docs/install.md does with kubectl) and its --wait reads readiness with
# kstatus, the rules test/apiserver/kstatus.test.ts checks our status against. The chart itself is
# apiVersion v2 and stays installable with Helm 3 (docs/operate.md).
#
# `go install module/cmd@version` builds with helm's own go.mod and go.sum (verified against the
# checksum database), so the dependency versions are exactly the release's.
#
# Environment: HELM_VERSION (default v4.3.1), GO (default go on PATH, else /usr/local/go/bin/go).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/go-tool.sh"

HELM_VERSION="${HELM_VERSION:-v4.3.1}"
[[ $HELM_VERSION =~ ^v4\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION must look like v4.3.1, got $HELM_VERSION"
export HELM_VERSION
# Bump when a change to this script changes the binary it produces.
RECIPE=1

build_helm() {
  local bin=$1
  log "building helm $HELM_VERSION (helm.sh/helm/v4/cmd/helm)"
  local v=helm.sh/helm/v4/internal/version
  GOBIN=$bin CGO_ENABLED=0 "$GO" install -trimpath \
    -ldflags "-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2 || die "building helm $HELM_VERSION failed"
  "$bin/helm" version >&2 || die "the built helm does not run"
}

go_tool_cached "helm-$HELM_VERSION" "$RECIPE" build_helm helm

#!/usr/bin/env bash
# Builds promtool (github.com/prometheus/prometheus/cmd/promtool) from the Go module proxy, and
# hack/tools/promql-metrics (the metric names of PromQL expressions, with the same release's
# parser), and caches both by version:
#   $IMAGEPOLICY_CACHE/promtool-<version>-<tags>-<hash>/bin/{promtool,promql-metrics}
# Prints the bin directory on stdout; everything else goes to stderr.
#
# promtool is built with `go install module/cmd@version`, so with the release's own go.mod and
# go.sum; promql-metrics with the go.sum committed next to it.
#
# PROMTOOL_TAGS (default remove_all_sd): promtool links every service discovery plugin of
# Prometheus (AWS, Azure, GCE, Kubernetes, ...) through github.com/prometheus/prometheus/plugins;
# the upstream build tag remove_all_sd leaves them out (plugins/plugin_*.go). `promtool test
# rules` and `check rules` use none of them. docs/operate.md says what is known of its build time.
#
# Environment: PROMETHEUS_VERSION (default from hack/tools/promql-metrics/go.mod), PROMTOOL_TAGS,
# GO (default go on PATH, else /usr/local/go/bin/go).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/go-tool.sh"

SRC="$(cd "$(dirname "$0")/promql-metrics" && pwd)"
PINNED=$(sed -n 's/^require github\.com\/prometheus\/prometheus \(v[0-9.]*\)$/\1/p' "$SRC/go.mod")
[[ -n $PINNED ]] || die "no github.com/prometheus/prometheus requirement in $SRC/go.mod"
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-$PINNED}"
[[ $PROMETHEUS_VERSION == "$PINNED" ]] ||
  die "PROMETHEUS_VERSION=$PROMETHEUS_VERSION but $SRC/go.mod pins $PINNED: change both"
# v0.3XX.Y is Prometheus 3.XX.Y (the Go module keeps a v0 major).
[[ $PROMETHEUS_VERSION =~ ^v0\.3([0-9]{2})\.([0-9]+)$ ]] || die "unexpected Prometheus module version $PROMETHEUS_VERSION"
RELEASE="3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}"
PROMTOOL_TAGS="${PROMTOOL_TAGS-remove_all_sd}"
HASH=$(cd "$SRC" && inputs_hash main.go go.mod go.sum)
export SRC PROMETHEUS_VERSION RELEASE PROMTOOL_TAGS
RECIPE=1

build_promtool() {
  local bin=$1
  log "building promtool $RELEASE ($PROMETHEUS_VERSION, tags '${PROMTOOL_TAGS}')"
  local v=github.com/prometheus/common/version
  GOBIN=$bin CGO_ENABLED=0 "$GO" install -trimpath -tags "$PROMTOOL_TAGS" \
    -ldflags "-s -w -X $v.Version=$RELEASE -X $v.Branch=HEAD" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >&2 ||
    die "building promtool $PROMETHEUS_VERSION failed"
  "$bin/promtool" --version >&2 || die "the built promtool does not run"
  log "building promql-metrics from $SRC"
  (cd "$SRC" && CGO_ENABLED=0 "$GO" build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin/promql-metrics" .) >&2 ||
    die "building promql-metrics failed"
  echo '["rate(up[5m])"]' | "$bin/promql-metrics" >&2 || die "the built promql-metrics does not run"
}

go_tool_cached "promtool-$PROMETHEUS_VERSION-${PROMTOOL_TAGS:-none}-$HASH" "$RECIPE" build_promtool promtool promql-metrics

#!/usr/bin/env bash
# Build (or find in the cache) every component the tests need, before vitest runs. Each component
# script is idempotent and cached by version under $IMAGEPOLICY_CACHE; other engineers add their
# component scripts here.
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/tools/evaluator.sh >/dev/null
hack/tools/fixtures.sh >/dev/null
hack/tools/control-plane.sh >/dev/null
hack/tools/crio.sh >/dev/null
hack/tools/helm.sh >/dev/null
hack/tools/promtool.sh >/dev/null
hack/tools/kstatus.sh >/dev/null

#!/usr/bin/env bash
# Build (or find in the cache) every component the tests need, before vitest runs. Each component
# script is idempotent and cached by version under $IMAGEPOLICY_CACHE (or by input hash under
# $IMAGEPOLICY_CHEAP_CACHE); other engineers add their component scripts here.
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/tools/evaluator.sh >/dev/null
hack/tools/fixtures.sh >/dev/null
hack/tools/malloc-trim.sh >/dev/null
hack/tools/control-plane.sh >/dev/null
hack/tools/crio.sh >/dev/null
hack/tools/helm.sh >/dev/null
hack/tools/promtool.sh >/dev/null
hack/tools/kstatus.sh >/dev/null
# The local node (test/node): kubelet, kube-scheduler, kube-proxy after the control plane, whose
# Go build cache they share; CNI plugins; the operator image and the pause and test images.
hack/tools/kubelet.sh >/dev/null
hack/tools/cni.sh >/dev/null
hack/tools/operator-image.sh >/dev/null
hack/tools/node-images.sh >/dev/null

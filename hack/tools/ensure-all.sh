#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.."
hack/tools/control-plane.sh >/dev/null

#!/usr/bin/env bash
# Regenerates test/golden/*/expected from the compiler's current output. Review the diff: the
# matrices (checked with the real evaluator) are the oracle, the expected files are the record.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/tools/evaluator.sh >/dev/null
UPDATE_GOLDEN=1 npx vitest run --project evaluator test/evaluator/golden.test.ts "$@"
git status --short test/golden

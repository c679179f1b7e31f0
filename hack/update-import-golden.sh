#!/usr/bin/env bash
# Regenerates test/import/*/want.{yaml,stderr,exit} from `imagepolicy import`'s current output.
# Review the diff: every refusal and warning in want.stderr is a claim docs/import.md makes.
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATE_IMPORT_GOLDEN=1 npx vitest run --project unit test/unit/import/golden.test.ts "$@"
git status --short test/import

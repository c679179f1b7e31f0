#!/usr/bin/env bash
# npm ci when node_modules is missing or older than package-lock.json. The pinned `node` package
# puts Node 24 first on the PATH of every npm script (its install script is allowed explicitly in
# package.json's allowScripts; .npmrc makes any other install script an error).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
version=$(node_modules/.bin/node -v)
case "$version" in
  v24.*) ;;
  *) echo "error: expected Node 24 from the npm registry, got $version" >&2; exit 1 ;;
esac

#!/bin/sh
# native/build.sh INCLUDE_DIR OUT: builds the agent's malloc_trim addon (native/malloc-trim.c) into
# OUT, against the Node-API headers in INCLUDE_DIR (node_api.h: /usr/local/include/node in Node's
# official images, include/node of the npm `node` package). One C file, no node-gyp: the shared
# object's Node-API symbols resolve against the node binary that loads it. Used by the Dockerfile,
# hack/tools/malloc-trim.sh and hack/tools/operator-image.sh, so all three build it alike.
set -eu
[ $# -eq 2 ] || { echo "usage: native/build.sh INCLUDE_DIR OUT" >&2; exit 2; }
[ -f "$1/node_api.h" ] || { echo "error: no node_api.h in $1" >&2; exit 1; }
"${CC:-cc}" -O2 -Wall -Wextra -Werror -shared -fPIC -I"$1" \
  -o "$2" "$(dirname "$0")/malloc-trim.c"

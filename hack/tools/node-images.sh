#!/usr/bin/env bash
# Builds the images the local node runs besides the operator's, as one OCI layout, and prints it:
#   $IMAGEPOLICY_CHEAP_CACHE/node-images-<hash>/oci
# Tags:
#   app    Debian's busybox-static (/bin/busybox with a few applet links), CMD sleep: a workload
#          that really runs a process. The tests push it under several repositories and sign
#          each one differently (test/support/nodeImages.ts).
#   pause  the sandbox ("pause") image CRI-O's pause_image names: a static C program that waits
#          for a signal and reaps children, built here with gcc (no image is pulled from a public
#          registry).
# Both come from Debian 12 packages of this machine (busybox-static through `apt-get download`,
# gcc and libc6-dev); umoci from hack/tools/evaluator.sh.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

BUSYBOX_PACKAGE=busybox-static
APPLETS=(sh sleep true cat echo ls id wget)
key=$(cd "$here/../.." && inputs_hash hack/tools/node-images.sh)
dest="$IMAGEPOLICY_CHEAP_CACHE/node-images-$key"

build() {
  [[ -f $dest/complete ]] && return 0
  ensure_apt gcc libc6-dev
  local umoci tmp
  umoci="$("$here/evaluator.sh")/umoci"
  rm -rf "$dest".tmp.*
  tmp="$dest.tmp.$$"
  mkdir -p "$tmp/deb" "$tmp/app/bin" "$tmp/pause"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT

  log "apt-get download $BUSYBOX_PACKAGE"
  (cd "$tmp/deb" && { apt-get download "$BUSYBOX_PACKAGE" >&2 || { apt-get update >&2 && apt-get download "$BUSYBOX_PACKAGE" >&2; }; }) ||
    die "cannot download $BUSYBOX_PACKAGE"
  dpkg-deb -x "$tmp"/deb/*.deb "$tmp/deb/root"
  install -m 0755 "$tmp/deb/root/bin/busybox" "$tmp/app/bin/busybox"
  local a
  for a in "${APPLETS[@]}"; do ln -s busybox "$tmp/app/bin/$a"; done

  # The pause program: PID 1 of a pod sandbox. It exits on SIGINT/SIGTERM and reaps any child.
  cat >"$tmp/pause.c" <<'EOC'
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  if (getpid() != 1) return 1;
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
EOC
  gcc -static -Os -s -o "$tmp/pause/pause" "$tmp/pause.c" >&2 || die "compiling pause failed"

  "$umoci" init --layout "$tmp/oci" >&2
  local name
  for name in app pause; do
    (cd "$tmp/$name" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$tmp/$name.tar" .)
    "$umoci" new --image "$tmp/oci:$name" >&2
    "$umoci" raw add-layer --image "$tmp/oci:$name" "$tmp/$name.tar" >&2
  done
  "$umoci" config --image "$tmp/oci:app" --created 1970-01-01T00:00:00Z \
    --config.env PATH=/bin --config.cmd /bin/sleep --config.cmd 86400 \
    --config.label dev.imagepolicy.test-image=app >&2
  "$umoci" config --image "$tmp/oci:pause" --created 1970-01-01T00:00:00Z \
    --config.entrypoint /pause --config.user 65535:65535 \
    --config.label dev.imagepolicy.test-image=pause >&2
  "$umoci" gc --layout "$tmp/oci" >&2
  rm -rf "$tmp/deb" "$tmp/app" "$tmp/pause" "$tmp"/*.tar "$tmp/pause.c"
  touch "$tmp/complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
}

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi
[[ -f $dest/complete ]] || with_lock "node-images-$key" "$here/node-images.sh" --locked
[[ -f $dest/complete ]] || die "node images missing under $dest"
echo "$dest/oci"

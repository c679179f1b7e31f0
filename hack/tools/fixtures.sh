#!/usr/bin/env bash
# Build the evaluator-test fixtures and print their directory on stdout:
#   $IMAGEPOLICY_CHEAP_CACHE/fixtures-<hash of the inputs>
#
#   oci/                 one OCI layout; one tiny image per tag (see IMAGES), built with umoci
#                        from a file, never pulled; each holds different bytes, so digests differ
#   keys/passphrase      passphrase of every private key below
#   keys/{a,b,c}.pub     sigstore key pairs A, B, C
#   keys/{a,b,c}.private
#   keys/cosign.{key,pub} cosign key pair
#   gnupg/               GNUPGHOME holding one RSA signing key without passphrase
#   gpg/fingerprint      its fingerprint
#   gpg/pubring.gpg      its public key, binary (accepted by both the gpgme and the openpgp
#                        signing mechanisms of containers-image in signedBy keyData)
#   gpg/pubring.asc      the same, armored
#
# Every key comes from test/fixtures/keys (committed, test-only): golden files compare the
# compiler's output byte for byte and the compiler orders keys by their bytes, so keys generated
# per machine would make the goldens differ between machines. The images are rebuilt in seconds;
# they live in the cheap cache, which .ci/run empties on every run (hack/tools/lib.sh).
#
# The registry, pushing and signing are per test run (test/evaluator/globalSetup.ts): signatures
# name the registry's host:port, which is chosen per run.
#
# GPG: skopeo's gpgme runs the host's gpg (gpgme looks for /usr/bin/gpgconf), so the key is
# imported with the host's gpg too.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

repo=$(cd "$here/../.." && pwd)
KEYS_DIR="$repo/test/fixtures/keys"
KEY_FILES=(a.pub a.private b.pub b.private c.pub c.private cosign.pub cosign.key passphrase gpg-secret.asc)
# OCI tags made in oci/. Keep in sync with `pushes` in test/evaluator/seed.ts.
IMAGES=(
  signed-app-v1
  signed-app-v2
  signed-team-app-v1
  unsigned-app-v1
  wrong-app-v1
  cosign-app-v1
  gpg-app-v1
  mirror-app-v1
  base-pause-3.10
)

inputs=(hack/tools/fixtures.sh)
for f in "${KEY_FILES[@]}"; do
  [[ -f "$KEYS_DIR/$f" ]] || die "test key $KEYS_DIR/$f is missing"
  inputs+=("test/fixtures/keys/$f")
done
# The cache key: this script (IMAGES, the recipe) and every key file.
FIXTURES_KEY="fixtures-$(cd "$repo" && inputs_hash "${inputs[@]}")"
dest="$IMAGEPOLICY_CHEAP_CACHE/$FIXTURES_KEY"

build() {
  [[ -f "$dest/complete" ]] && return 0
  local bin
  bin=$("$here/evaluator.sh")
  if ! command -v gpg >/dev/null; then
    log "installing gnupg (skopeo's gpgme uses the host's gpg)"
    apt-get install -y gnupg >&2 || { apt-get update >&2 && apt-get install -y gnupg >&2; }
  fi

  local tmp="$dest.tmp.$$"
  # Left over by an interrupted build; we hold the lock, so nobody else is writing them.
  rm -rf "$dest".tmp.*
  mkdir -p "$tmp/keys" "$tmp/gpg" "$tmp/files"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT

  log "building fixture images"
  "$bin/umoci" init --layout "$tmp/oci"
  local name
  for name in "${IMAGES[@]}"; do
    "$bin/umoci" new --image "$tmp/oci:$name"
    printf 'imagepolicy-operator test image %s\n' "$name" >"$tmp/files/$name"
    "$bin/umoci" insert --image "$tmp/oci:$name" "$tmp/files/$name" /etc/image-name
    "$bin/umoci" config --image "$tmp/oci:$name" --config.cmd /bin/true \
      --config.label "dev.imagepolicy.fixture=$name"
  done
  "$bin/umoci" gc --layout "$tmp/oci"
  rm -rf "$tmp/files"

  log "copying the test keys from test/fixtures/keys"
  local f
  for f in "${KEY_FILES[@]}"; do
    [[ $f == gpg-secret.asc ]] || install -m 0600 "$KEYS_DIR/$f" "$tmp/keys/$f"
  done

  mkdir -m 0700 "$tmp/gnupg"
  GNUPGHOME="$tmp/gnupg" gpg --batch --quiet --import "$KEYS_DIR/gpg-secret.asc"
  GNUPGHOME="$tmp/gnupg" gpg --batch --with-colons --list-secret-keys \
    | awk -F: '$1 == "fpr" { print $10; exit }' >"$tmp/gpg/fingerprint"
  [[ -s "$tmp/gpg/fingerprint" ]] || die "importing the test gpg key produced no fingerprint"
  GNUPGHOME="$tmp/gnupg" gpg --batch --export >"$tmp/gpg/pubring.gpg"
  GNUPGHOME="$tmp/gnupg" gpg --batch --armor --export >"$tmp/gpg/pubring.asc"
  GNUPGHOME="$tmp/gnupg" gpgconf --kill all
  # The agent's sockets must not be copied around with the home.
  rm -f "$tmp/gnupg"/S.* "$tmp/gnupg"/*.lock

  touch "$tmp/complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
}

if [[ "${1:-}" == --locked ]]; then
  build
  exit 0
fi
with_lock "$FIXTURES_KEY" "$here/fixtures.sh" --locked
printf '%s\n' "$dest"

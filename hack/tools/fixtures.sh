#!/usr/bin/env bash
# Build the evaluator-test fixtures once, cached under $IMAGEPOLICY_CACHE/fixtures-v1, and print
# that directory on stdout:
#
#   oci/                 one OCI layout; one tiny image per tag (see IMAGES), built with umoci
#                        from a file, never pulled; each holds different bytes, so digests differ
#   keys/passphrase      passphrase of every private key below
#   keys/{a,b,c}.pub     sigstore key pairs A, B, C (skopeo generate-sigstore-key)
#   keys/{a,b,c}.private
#   keys/cosign.{key,pub} cosign key pair (cosign generate-key-pair)
#   gnupg/               GNUPGHOME holding one RSA signing key without passphrase
#   gpg/fingerprint      its fingerprint
#   gpg/pubring.gpg      its public key, binary (accepted by both the gpgme and the openpgp
#                        signing mechanisms of containers-image in signedBy keyData)
#   gpg/pubring.asc      the same, armored
#
# The registry, pushing and signing are per test run (test/evaluator/globalSetup.ts): signatures
# name the registry's host:port, which is chosen per run.
#
# GPG: skopeo's gpgme runs the host's gpg (gpgme looks for /usr/bin/gpgconf), so the key is
# made with the host's gpg too. RSA, not EdDSA, because CRI-O built with
# containers_image_openpgp cannot read EdDSA keys.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

FIXTURES_KEY=fixtures-v1
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

dest="$IMAGEPOLICY_CACHE/$FIXTURES_KEY"

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

  log "generating sigstore, cosign and gpg keys"
  # Test-only passphrase; the keys sign nothing but these fixtures.
  printf 'imagepolicy-test\n' >"$tmp/keys/passphrase"
  local k
  for k in a b c; do
    "$bin/skopeo" generate-sigstore-key --output-prefix "$tmp/keys/$k" \
      --passphrase-file "$tmp/keys/passphrase" >&2
  done
  (cd "$tmp/keys" && COSIGN_PASSWORD=imagepolicy-test "$bin/cosign" generate-key-pair \
    --output-key-prefix cosign >&2)

  mkdir -m 0700 "$tmp/gnupg"
  GNUPGHOME="$tmp/gnupg" gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-generate-key 'imagepolicy-operator test <test@imagepolicy.invalid>' rsa2048 sign never
  GNUPGHOME="$tmp/gnupg" gpg --batch --with-colons --list-secret-keys \
    | awk -F: '$1 == "fpr" { print $10; exit }' >"$tmp/gpg/fingerprint"
  [[ -s "$tmp/gpg/fingerprint" ]] || die "gpg key generation produced no fingerprint"
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

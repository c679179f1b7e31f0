// Fingerprints of the key and certificate data a requirement carries, for people to compare with
// the keys they hold: never the data itself (an explanation goes onto pods and into records that
// namespace users read, and must not become a way to copy key material around).
//
// - PEM (sigstore keys, Fulcio and PKI certificates, Rekor keys): `sha256:` and the first 16 hex
//   digits of the SHA-256 of each block's DER, which does not depend on how the PEM is wrapped:
//   `openssl pkey -pubin -in cosign.pub -outform DER | sha256sum` for a key,
//   `openssl x509 -in ca.pem -outform DER | sha256sum` for a certificate.
// - A binary OpenPGP keyring (what the compiler publishes for GPG keys): the v4 fingerprint of
//   each primary key (RFC 4880 12.2: SHA-1 of 0x99, the two-byte length and the public-key packet
//   body), as `gpg --fingerprint` prints it without spaces.
// Anything else gets `sha256:` of its bytes.

import { createHash } from "node:crypto";

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g;
const PUBLIC_KEY_TAG = 6;

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** The packets' [tag, body] in order; stops at anything it cannot frame. */
function packets(bytes: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let i = 0;
  while (i < bytes.length) {
    const header = bytes[i] ?? 0;
    if ((header & 0x80) === 0) break;
    let tag: number;
    let length: number;
    let start: number;
    if ((header & 0x40) !== 0) {
      tag = header & 0x3f;
      const o1 = bytes[i + 1];
      if (o1 === undefined) break;
      if (o1 < 192) {
        length = o1;
        start = i + 2;
      } else if (o1 < 224) {
        length = ((o1 - 192) << 8) + (bytes[i + 2] ?? 0) + 192;
        start = i + 3;
      } else if (o1 === 255 && i + 6 <= bytes.length) {
        length = bytes.readUInt32BE(i + 2);
        start = i + 6;
      } else break; // partial lengths never frame key packets
    } else {
      tag = (header >> 2) & 0x0f;
      const lengthType = header & 0x03;
      const size = lengthType === 0 ? 1 : lengthType === 1 ? 2 : lengthType === 2 ? 4 : 0;
      if (size === 0 || i + 1 + size > bytes.length) break;
      length = bytes.readUIntBE(i + 1, size);
      start = i + 1 + size;
    }
    if (start + length > bytes.length) break;
    out.push([tag, bytes.subarray(start, start + length)]);
    i = start + length;
  }
  return out;
}

function openPgpFingerprints(bytes: Buffer): string[] {
  const out: string[] = [];
  for (const [tag, body] of packets(bytes)) {
    if (tag !== PUBLIC_KEY_TAG || body[0] !== 4 || body.length > 0xffff) continue;
    const prefix = Buffer.from([0x99, body.length >> 8, body.length & 0xff]);
    out.push(
      `openpgp:${createHash("sha1").update(prefix).update(body).digest("hex").toUpperCase()}`,
    );
  }
  return out;
}

/** The fingerprints of base64 key, certificate or keyring data: one per PEM block or primary
 * OpenPGP key, or one of the bytes. Never any part of the data. */
export function fingerprints(b64: string): string[] {
  const bytes = Buffer.from(b64, "base64");
  const text = bytes.toString("latin1");
  if (text.includes("-----BEGIN ")) {
    const blocks = [...text.matchAll(PEM_BLOCK)].map(
      (m) =>
        `sha256:${sha256(Buffer.from((m[2] ?? "").replace(/\s+/g, ""), "base64")).slice(0, 16)}`,
    );
    if (blocks.length > 0) return blocks;
  } else {
    const pgp = openPgpFingerprints(bytes);
    if (pgp.length > 0) return pgp;
  }
  return [`sha256:${sha256(bytes).slice(0, 16)}`];
}

/** fingerprints() joined into one string. */
export function fingerprint(b64: string): string {
  return fingerprints(b64).join("+");
}

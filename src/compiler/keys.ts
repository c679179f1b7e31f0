// Key material before it reaches a policy: parsed, checked and re-encoded. Pure: node:crypto
// parses, nothing is read or fetched.
//
// Only what a check returns as `canonical` is ever published (layer ConfigMaps, node files):
// - a sigstore public key: the SPKI "PUBLIC KEY" PEM re-exported by node:crypto from the parsed
//   key, never the input text;
// - certificates: each "CERTIFICATE" block re-encoded from its parsed DER;
// - a GPG keyring: the public packets alone, binary, each packet's bytes as they were (so a
//   `gpg --export` round-trips byte for byte); armour, armour headers and trust packets dropped.
// Anything that is not exactly that refuses the input, with a reason that never quotes it:
// a private or encrypted key, text around the PEM block (an `openssl ec -pubout -text` dump puts
// the private scalar in hex there), PEM headers, a GPG secret-key or secret-subkey packet anywhere
// in the keyring, any packet a public keyring does not hold (compressed data could hide a secret
// key). Unsupported curves and short RSA keys are refused because containers/image would refuse
// them at pull time, failing every pull of the scope.
//
// Formats relied on: RFC 7468 (PEM: textual encoding, no headers for these labels), RFC 4880
// sections 4.2 (packet headers), 4.3 (packet tags) and 6 (ASCII armour with its CRC-24).

import { createPublicKey, X509Certificate, type KeyObject } from "node:crypto";

export type KeyCheck = { ok: true; canonical: string } | { ok: false; reason: string };

const ALLOWED_CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);
const MIN_RSA_BITS = 2048;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function refuse(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

function fromBase64(b64: string): Buffer | undefined {
  const compact = b64.replace(/\s+/g, "");
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) return undefined;
  return Buffer.from(compact, "base64");
}

interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

type PemParse = { ok: true; blocks: PemBlock[] } | { ok: false; reason: string };

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----$/;

/** Strict RFC 7468 parse: only PEM blocks and blank lines; no headers, no text between. */
function parsePem(text: string): PemParse {
  const lines = text.split(/\r?\n/);
  const blocks: PemBlock[] = [];
  let label: string | undefined;
  let body: string[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (label === undefined) {
      if (line === "") continue;
      const m = BEGIN.exec(line);
      if (m === null) {
        return refuse(
          "text outside the PEM block (only the PEM block itself is allowed; an OpenSSL " +
            "-text dump, for instance, carries the private key there)",
        );
      }
      label = m[1] ?? "";
      if (label.includes("PRIVATE")) {
        return refuse(`this holds a ${label}; only public key material belongs in a policy`);
      }
      body = [];
      continue;
    }
    if (line === `-----END ${label}-----`) {
      const b64 = body.join("");
      const der = fromBase64(b64);
      if (der === undefined || der.length === 0) {
        return refuse(`the PEM block "${label}" is not base64`);
      }
      blocks.push({ label, der });
      label = undefined;
      continue;
    }
    if (line.includes(":")) {
      return refuse(`the PEM block "${label}" has headers (an encrypted key?); none are allowed`);
    }
    if (line.startsWith("-----")) return refuse(`the PEM block "${label}" is not closed`);
    body.push(line);
  }
  if (label !== undefined) return refuse(`the PEM block "${label}" is not closed`);
  return { ok: true, blocks };
}

function decodeText(b64: string): { ok: true; text: string } | { ok: false; reason: string } {
  const bytes = fromBase64(b64);
  if (bytes === undefined) return refuse("not base64");
  return { ok: true, text: bytes.toString("utf8") };
}

function pemText(label: string, der: Buffer): string {
  const b64 = der.toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function checkKeyType(key: KeyObject): string | undefined {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "ec":
      return ALLOWED_CURVES.has(details.namedCurve ?? "")
        ? undefined
        : `unsupported elliptic curve ${details.namedCurve ?? "unknown"} (P-256, P-384 or P-521)`;
    case "rsa":
      return (details.modulusLength ?? 0) >= MIN_RSA_BITS
        ? undefined
        : `RSA key of ${details.modulusLength ?? 0} bits is too short (at least ${MIN_RSA_BITS})`;
    case "ed25519":
      return undefined;
    default:
      return `unsupported key type ${key.asymmetricKeyType ?? "unknown"}`;
  }
}

/** A sigstore public key (cosign or `skopeo generate-sigstore-key`), base64 of one PEM
 * "PUBLIC KEY" block: ECDSA P-256/P-384/P-521, RSA >= 2048 bits, or Ed25519. The canonical form
 * is base64 of the SPKI PEM node:crypto exports from the parsed key. */
export function checkPublicKey(b64: string): KeyCheck {
  const decoded = decodeText(b64);
  if (!decoded.ok) return decoded;
  const pem = parsePem(decoded.text);
  if (!pem.ok) return pem;
  const block = pem.blocks[0];
  if (pem.blocks.length !== 1 || block?.label !== "PUBLIC KEY") {
    return refuse(
      `expected exactly one PEM "PUBLIC KEY" block, found ${
        pem.blocks.length === 0 ? "none" : pem.blocks.map((b) => `"${b.label}"`).join(", ")
      }`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: block.der, format: "der", type: "spki" });
  } catch {
    return refuse("unreadable public key (not a DER SubjectPublicKeyInfo)");
  }
  const problem = checkKeyType(key);
  if (problem !== undefined) return refuse(problem);
  const spki = key.export({ type: "spki", format: "der" });
  if (!spki.equals(block.der)) {
    return refuse("the public key has bytes beyond its SubjectPublicKeyInfo");
  }
  return { ok: true, canonical: Buffer.from(pemText("PUBLIC KEY", spki)).toString("base64") };
}

/** Base64 of one or more PEM "CERTIFICATE" blocks (Fulcio CA, PKI roots and intermediates). The
 * canonical form is each certificate re-encoded from its parsed DER, in the input order. */
export function checkCertificates(b64: string): KeyCheck {
  const decoded = decodeText(b64);
  if (!decoded.ok) return decoded;
  const pem = parsePem(decoded.text);
  if (!pem.ok) return pem;
  if (pem.blocks.length === 0 || pem.blocks.some((b) => b.label !== "CERTIFICATE")) {
    return refuse('expected one or more PEM "CERTIFICATE" blocks and nothing else');
  }
  const out: string[] = [];
  for (const block of pem.blocks) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block.der);
    } catch {
      return refuse("unreadable certificate (not DER X.509)");
    }
    if (!cert.raw.equals(block.der)) {
      return refuse("a certificate has bytes beyond its DER encoding");
    }
    out.push(pemText("CERTIFICATE", cert.raw));
  }
  return { ok: true, canonical: Buffer.from(out.join("")).toString("base64") };
}

// OpenPGP packet tags (RFC 4880 section 4.3).
const TAG_SIGNATURE = 2;
const TAG_SECRET_KEY = 5;
const TAG_PUBLIC_KEY = 6;
const TAG_SECRET_SUBKEY = 7;
const TAG_TRUST = 12;
const TAG_USER_ID = 13;
const TAG_PUBLIC_SUBKEY = 14;
const TAG_USER_ATTRIBUTE = 17;
/** What a transferable public key holds (RFC 4880 section 11.1); trust packets are dropped. */
const PUBLIC_TAGS = new Set([
  TAG_SIGNATURE,
  TAG_PUBLIC_KEY,
  TAG_USER_ID,
  TAG_PUBLIC_SUBKEY,
  TAG_USER_ATTRIBUTE,
]);

interface Packet {
  readonly tag: number;
  /** Header and body, as in the input. */
  readonly bytes: Buffer;
}

type PacketParse = { ok: true; packets: Packet[] } | { ok: false; reason: string };

function parsePackets(bytes: Buffer): PacketParse {
  const packets: Packet[] = [];
  let i = 0;
  while (i < bytes.length) {
    const start = i;
    const b = bytes[i++] ?? 0;
    if ((b & 0x80) === 0) return refuse(`not an OpenPGP packet at byte ${start}`);
    let tag: number;
    let length: number;
    if ((b & 0x40) === 0) {
      tag = (b >> 2) & 0x0f;
      const lengthType = b & 0x03;
      if (lengthType === 3) return refuse(`packet at byte ${start} has an indeterminate length`);
      const n = lengthType === 0 ? 1 : lengthType === 1 ? 2 : 4;
      if (i + n > bytes.length) return refuse(`truncated packet header at byte ${start}`);
      length = bytes.readUIntBE(i, n);
      i += n;
    } else {
      tag = b & 0x3f;
      const o1 = bytes[i++];
      if (o1 === undefined) return refuse(`truncated packet header at byte ${start}`);
      if (o1 < 192) length = o1;
      else if (o1 < 224) {
        const o2 = bytes[i++];
        if (o2 === undefined) return refuse(`truncated packet header at byte ${start}`);
        length = ((o1 - 192) << 8) + o2 + 192;
      } else if (o1 === 255) {
        if (i + 4 > bytes.length) return refuse(`truncated packet header at byte ${start}`);
        length = bytes.readUInt32BE(i);
        i += 4;
      } else {
        return refuse(`packet at byte ${start} has a partial length (not in a public keyring)`);
      }
    }
    if (i + length > bytes.length) return refuse(`truncated packet at byte ${start}`);
    i += length;
    packets.push({ tag, bytes: bytes.subarray(start, i) });
  }
  return { ok: true, packets };
}

/** CRC-24 of RFC 4880 section 6.1. */
function crc24(data: Buffer): number {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let k = 0; k < 8; k++) {
      crc <<= 1;
      if ((crc & 0x1000000) !== 0) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

const ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----";

/** One armoured "PGP PUBLIC KEY BLOCK" and nothing else (armour headers are dropped). */
function dearmor(text: string): { ok: true; bytes: Buffer } | { ok: false; reason: string } {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  while (lines.length > 0 && lines[0] === "") lines.shift();
  if (lines[0] !== ARMOR_BEGIN || lines[lines.length - 1] !== ARMOR_END) {
    if (text.includes("PRIVATE KEY BLOCK")) {
      return refuse("this is a PRIVATE GPG key; only public keyrings belong in a policy");
    }
    return refuse(`expected one armoured "PGP PUBLIC KEY BLOCK" and nothing around it`);
  }
  let i = 1;
  // Armour headers ("Version: ...", "Comment: ..."), then one blank line.
  while (i < lines.length - 1 && lines[i] !== "") {
    if (!/^[A-Za-z]+: /.test(lines[i] ?? "")) return refuse("malformed armour header line");
    i++;
  }
  if (lines[i] !== "") return refuse("the armour has no blank line before its body");
  const body: string[] = [];
  let checksum: string | undefined;
  for (i++; i < lines.length - 1; i++) {
    const line = lines[i] ?? "";
    if (line.startsWith("=") && i === lines.length - 2) checksum = line.slice(1);
    else if (line.startsWith("-----")) return refuse("more than one armoured block");
    else body.push(line);
  }
  const bytes = fromBase64(body.join(""));
  if (bytes === undefined) return refuse("the armoured body is not base64");
  if (checksum !== undefined) {
    const sum = fromBase64(checksum);
    if (sum?.length !== 3 || sum.readUIntBE(0, 3) !== crc24(bytes)) {
      return refuse("the armour checksum does not match its body");
    }
  }
  return { ok: true, bytes };
}

/** Base64 of a GPG public keyring, binary or ASCII-armoured. The canonical form is base64 of the
 * binary keyring holding only the public packets (each as it was), trust packets dropped. */
export function checkGpgKeyring(b64: string): KeyCheck {
  const raw = fromBase64(b64);
  if (raw === undefined) return refuse("not base64");
  let bytes = raw;
  if (raw.length > 0 && (raw[0] ?? 0) < 0x80) {
    const armored = dearmor(raw.toString("latin1"));
    if (!armored.ok) return armored;
    bytes = armored.bytes;
  }
  const parsed = parsePackets(bytes);
  if (!parsed.ok) return parsed;
  const { packets } = parsed;
  if (packets.some((p) => p.tag === TAG_SECRET_KEY || p.tag === TAG_SECRET_SUBKEY)) {
    return refuse(
      "this keyring holds a GPG secret key or secret subkey; only public keyrings belong in a policy",
    );
  }
  if (packets[0]?.tag !== TAG_PUBLIC_KEY) {
    return refuse("not a GPG public keyring (the first packet is not a public key)");
  }
  const other = packets.find((p) => !PUBLIC_TAGS.has(p.tag) && p.tag !== TAG_TRUST);
  if (other !== undefined) {
    return refuse(`packet of type ${other.tag} does not belong in a public keyring`);
  }
  const kept = packets.filter((p) => p.tag !== TAG_TRUST).map((p) => p.bytes);
  return { ok: true, canonical: Buffer.concat(kept).toString("base64") };
}

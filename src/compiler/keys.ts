// Validation of key material before it reaches a policy. Pure: node:crypto parses, nothing is
// read or fetched. A private key must never be accepted as a public key (it would be published
// in a ConfigMap and on every node); unsupported curves and short RSA keys are refused because
// containers/image would refuse them at pull time, failing every pull of the scope.

import { createPublicKey, X509Certificate } from "node:crypto";

export type KeyCheck = { ok: true } | { ok: false; reason: string };

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

function decode(b64: string): string {
  return Buffer.from(b64, "base64").toString("utf8");
}

function pemLabels(text: string): string[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => m[1] ?? "");
}

const ALLOWED_CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);
const MIN_RSA_BITS = 2048;

/** A sigstore public key (cosign or `skopeo generate-sigstore-key`), base64 of a PEM
 * "PUBLIC KEY" block: ECDSA P-256/P-384/P-521, RSA >= 2048 bits, or Ed25519. */
export function checkPublicKey(b64: string): KeyCheck {
  const text = decode(b64);
  const labels = pemLabels(text);
  if (labels.some((l) => l.includes("PRIVATE"))) {
    return { ok: false, reason: "this is a PRIVATE key; only public keys belong in a policy" };
  }
  if (labels.length !== 1 || labels[0] !== "PUBLIC KEY") {
    return {
      ok: false,
      reason: `expected exactly one PEM "PUBLIC KEY" block, found ${labels.length === 0 ? "none" : labels.map((l) => `"${l}"`).join(", ")}`,
    };
  }
  let key;
  try {
    key = createPublicKey({ key: text, format: "pem" });
  } catch (cause) {
    return { ok: false, reason: `unreadable public key: ${(cause as Error).message}` };
  }
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "ec":
      if (!ALLOWED_CURVES.has(details.namedCurve ?? "")) {
        return {
          ok: false,
          reason: `unsupported elliptic curve ${details.namedCurve ?? "unknown"} (P-256, P-384 or P-521)`,
        };
      }
      return { ok: true };
    case "rsa":
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS) {
        return {
          ok: false,
          reason: `RSA key of ${details.modulusLength ?? 0} bits is too short (at least ${MIN_RSA_BITS})`,
        };
      }
      return { ok: true };
    case "ed25519":
      return { ok: true };
    default:
      return { ok: false, reason: `unsupported key type ${key.asymmetricKeyType ?? "unknown"}` };
  }
}

/** Base64 of one or more PEM "CERTIFICATE" blocks (Fulcio CA, PKI roots and intermediates). */
export function checkCertificates(b64: string): KeyCheck {
  const text = decode(b64);
  const labels = pemLabels(text);
  if (labels.some((l) => l.includes("PRIVATE"))) {
    return { ok: false, reason: "this contains a PRIVATE key; only certificates belong here" };
  }
  if (labels.length === 0 || labels.some((l) => l !== "CERTIFICATE")) {
    return { ok: false, reason: 'expected one or more PEM "CERTIFICATE" blocks' };
  }
  for (const m of text.matchAll(PEM_BLOCK)) {
    try {
      new X509Certificate(m[0]);
    } catch (cause) {
      return { ok: false, reason: `unreadable certificate: ${(cause as Error).message}` };
    }
  }
  return { ok: true };
}

// OpenPGP packet tags (RFC 4880 section 4.3): 5 secret key, 6 public key.
function firstPacketTag(bytes: Buffer): number | null {
  const b = bytes[0];
  if (b === undefined || (b & 0x80) === 0) return null;
  return (b & 0x40) !== 0 ? b & 0x3f : (b >> 2) & 0x0f;
}

/** Base64 of a GPG public keyring, binary or ASCII-armoured. */
export function checkGpgKeyring(b64: string): KeyCheck {
  const bytes = Buffer.from(b64, "base64");
  const text = bytes.toString("latin1");
  if (text.includes("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
    return {
      ok: false,
      reason: "this is a PRIVATE GPG key; only public keyrings belong in a policy",
    };
  }
  if (text.startsWith("-----BEGIN")) {
    return text.startsWith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
      ? { ok: true }
      : { ok: false, reason: 'expected an armoured "PGP PUBLIC KEY BLOCK"' };
  }
  const tag = firstPacketTag(bytes);
  if (tag === 5) {
    return {
      ok: false,
      reason: "this is a GPG secret key; only public keyrings belong in a policy",
    };
  }
  if (tag !== 6)
    return { ok: false, reason: "not a GPG public keyring (first packet is not a public key)" };
  return { ok: true };
}

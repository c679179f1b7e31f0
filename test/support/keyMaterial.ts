// Key material for the tests of rule 4 (docs/security.md): a public GPG keyring built from
// synthetic packets, ASCII armour around any bytes, the fixture's GPG secret key as packets, and
// what `openssl ec -pubout -text` prints (the private scalar in hex before the public PEM).

import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";

const fixtures = path.resolve(import.meta.dirname, "../fixtures");

/** A minimal transferable public key: a v4 public-key packet (old format, 2-byte length), a user
 * ID packet and a signature packet, each with a synthetic body. No signature verifies with it. */
export function publicKeyring(): Buffer {
  const pubBody = Buffer.concat([Buffer.from([4, 0x65, 0, 0, 0, 1]), Buffer.alloc(32, 7)]);
  const uid = Buffer.from("test <test@imagepolicy.invalid>");
  const sig = Buffer.from([4, 0x13, 1, 8, 0, 0, 0, 0]);
  return Buffer.concat([
    Buffer.from([0x99, 0, pubBody.length]),
    pubBody,
    Buffer.from([0xb4, uid.length]),
    uid,
    Buffer.from([0x89, 0, sig.length]),
    sig,
  ]);
}

/** Bytes of the public-key packet alone, at the start of publicKeyring(). */
export const PUBLIC_KEY_PACKET_BYTES = 41;

/** The committed fixture GPG secret key (test/fixtures/keys/gpg-secret.asc), armoured. */
export function gpgSecretArmored(): string {
  return readFileSync(path.join(fixtures, "keys", "gpg-secret.asc"), "utf8");
}

/** The same secret key as binary packets (its armour CRC is not checked here). */
export function gpgSecretPackets(): Buffer {
  const lines = gpgSecretArmored().trim().split("\n");
  const body = lines.slice(lines.indexOf("") + 1, -1).filter((l) => !l.startsWith("="));
  return Buffer.from(body.join(""), "base64");
}

/** CRC-24 of RFC 4880 section 6.1, as 3 bytes. */
function crc24(data: Buffer): Buffer {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let k = 0; k < 8; k++) {
      crc <<= 1;
      if ((crc & 0x1000000) !== 0) crc ^= 0x1864cfb;
    }
  }
  const out = Buffer.alloc(3);
  out.writeUIntBE(crc & 0xffffff, 0, 3);
  return out;
}

/** `bytes` in a "PGP PUBLIC KEY BLOCK" armour with `headers` and its checksum. */
export function armor(bytes: Buffer, headers = "Comment: test\n"): string {
  const lines = bytes.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n${headers}\n${lines.join("\n")}\n=${crc24(bytes).toString("base64")}\n-----END PGP PUBLIC KEY BLOCK-----\n`;
}

/** What `openssl ec -in key.pem -pubout -text` prints for a fresh P-256 key, and the private
 * scalar as it appears in it. */
export function opensslTextDump(): { dump: string; publicPem: string; privateHex: string } {
  const pair = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const publicPem = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
  const d = Buffer.from(pair.privateKey.export({ format: "jwk" }).d ?? "", "base64url");
  const privateHex = (d.toString("hex").match(/../g) ?? []).join(":");
  return {
    dump: `Private-Key: (256 bit)\npriv:\n    ${privateHex}\nASN1 OID: prime256v1\nNIST CURVE: P-256\n${publicPem}`,
    publicPem,
    privateHex,
  };
}

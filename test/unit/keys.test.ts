import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  armor,
  gpgSecretArmored,
  gpgSecretPackets,
  opensslTextDump,
  PUBLIC_KEY_PACKET_BYTES,
  publicKeyring,
} from "../support/keyMaterial.ts";
import {
  checkCertificates,
  checkGpgKeyring,
  checkPublicKey,
  type KeyCheck,
} from "../../src/compiler/keys.ts";

const b64 = (s: string | Buffer): string => Buffer.from(s).toString("base64");
const unb64 = (s: string): string => Buffer.from(s, "base64").toString("utf8");
const pem = (type: "ec" | "rsa" | "ed25519", opts: object = {}) => {
  const pair = generateKeyPairSync(type as "ec", opts as { namedCurve: string });
  return {
    pub: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    priv: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    sec1: type === "ec" ? pair.privateKey.export({ type: "sec1", format: "pem" }).toString() : "",
  };
};
const fixtures = path.join(import.meta.dirname, "..", "fixtures");
const caPem = readFileSync(path.join(fixtures, "test-ca.pem"), "utf8");
const fixturePub = readFileSync(path.join(fixtures, "keys", "a.pub"), "utf8");

function canonical(r: KeyCheck): string {
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.canonical;
}
function reason(r: KeyCheck): string {
  if (r.ok) throw new Error("accepted");
  return r.reason;
}

describe("checkPublicKey", () => {
  it.each([
    ["ECDSA P-256", pem("ec", { namedCurve: "prime256v1" }).pub],
    ["ECDSA P-384", pem("ec", { namedCurve: "secp384r1" }).pub],
    ["RSA 2048", pem("rsa", { modulusLength: 2048 }).pub],
    ["Ed25519", pem("ed25519").pub],
  ])("accepts %s and publishes it as it came (already canonical)", (_name, key) => {
    expect(unb64(canonical(checkPublicKey(b64(key))))).toBe(key);
  });

  it("keeps the committed fixture keys byte for byte (the goldens depend on it)", () => {
    expect(canonical(checkPublicKey(b64(fixturePub)))).toBe(b64(fixturePub));
  });

  it("re-encodes a key with CRLF line ends, short lines and blank lines around it", () => {
    const key = pem("ec", { namedCurve: "prime256v1" }).pub;
    const body =
      key
        .split("\n")
        .slice(1, -2)
        .join("")
        .match(/.{1,20}/g) ?? [];
    const messy = `\r\n-----BEGIN PUBLIC KEY-----\r\n${body.join("\r\n")}\r\n-----END PUBLIC KEY-----\r\n\r\n`;
    expect(unb64(canonical(checkPublicKey(b64(messy))))).toBe(key);
  });

  it.each([
    ["a PKCS#8 private key", pem("ec", { namedCurve: "prime256v1" }).priv, "PRIVATE KEY"],
    ["a SEC1 private key", pem("ec", { namedCurve: "prime256v1" }).sec1, "EC PRIVATE KEY"],
    [
      "an openssl -text dump (public PEM after the private key in hex)",
      opensslTextDump().dump,
      "text outside the PEM block",
    ],
    [
      "a public key followed by a private key",
      pem("ed25519").pub + pem("ed25519").priv,
      "PRIVATE KEY",
    ],
    [
      "an encrypted (legacy) private key",
      "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
      "PRIVATE",
    ],
    [
      "a public key with PEM headers",
      pem("ed25519").pub.replace("\n", "\nComment: hello\n"),
      "headers",
    ],
    ["a comment after the block", pem("ed25519").pub + "# d=0123\n", "text outside"],
    ["secp256k1", pem("ec", { namedCurve: "secp256k1" }).pub, "unsupported elliptic curve"],
    ["RSA 1024", pem("rsa", { modulusLength: 1024 }).pub, "too short"],
    ["a certificate", caPem, '"CERTIFICATE"'],
    ["two keys", pem("ed25519").pub + pem("ed25519").pub, "exactly one"],
    ["garbage", "hello", "text outside"],
    ["nothing", "", "found none"],
  ])("refuses %s", (_name, key, expected) => {
    expect(reason(checkPublicKey(b64(key)))).toContain(expected);
  });

  it("refuses input that is not base64, and never quotes the input in its reason", () => {
    expect(reason(checkPublicKey("not base64 at all!"))).toBe("not base64");
    const dump = opensslTextDump().dump;
    const r = reason(checkPublicKey(b64(dump)));
    expect(r).not.toMatch(/[0-9a-f]{2}:[0-9a-f]{2}/);
  });

  it("refuses trailing bytes inside the DER", () => {
    const key = pem("ed25519").pub;
    const der = Buffer.from(key.split("\n").slice(1, -2).join(""), "base64");
    const padded = Buffer.concat([der, Buffer.from([0, 0])]).toString("base64");
    const text = `-----BEGIN PUBLIC KEY-----\n${padded}\n-----END PUBLIC KEY-----\n`;
    expect(checkPublicKey(b64(text)).ok).toBe(false);
  });
});

describe("checkCertificates", () => {
  it("accepts a CA certificate bundle and re-encodes it", () => {
    expect(unb64(canonical(checkCertificates(b64(caPem + caPem))))).toBe(
      caPem.trim() + "\n" + caPem.trim() + "\n",
    );
  });
  it.each([
    ["a public key", pem("ed25519").pub, "CERTIFICATE"],
    ["a private key", pem("ed25519").priv, "PRIVATE"],
    ["a certificate followed by its private key", caPem + pem("ed25519").priv, "PRIVATE"],
    ["text around the certificates", `subject=CN=test\n${caPem}`, "text outside"],
  ])("refuses %s", (_name, text, expected) => {
    expect(reason(checkCertificates(b64(text)))).toContain(expected);
  });
});

describe("checkGpgKeyring", () => {
  const keyring = publicKeyring();
  const secret = gpgSecretPackets();

  it("accepts a binary public keyring and publishes it unchanged", () => {
    expect(canonical(checkGpgKeyring(b64(keyring)))).toBe(b64(keyring));
  });

  it("de-armours an armoured keyring (headers and checksum dropped) to the same bytes", () => {
    expect(canonical(checkGpgKeyring(b64(armor(keyring))))).toBe(b64(keyring));
  });

  it("drops trust packets", () => {
    const withTrust = Buffer.concat([keyring, Buffer.from([0xb0, 2, 0, 0])]);
    expect(canonical(checkGpgKeyring(b64(withTrust)))).toBe(b64(keyring));
  });

  it.each([
    ["an armoured private key block", gpgSecretArmored(), "PRIVATE"],
    ["a binary secret key", secret, "secret key"],
    [
      "a public keyring followed by a secret-key packet",
      Buffer.concat([keyring, secret]),
      "secret",
    ],
    [
      "an armoured public block holding a secret-key packet",
      armor(Buffer.concat([keyring, secret])),
      "secret",
    ],
    [
      "a secret subkey (tag 7) after the public key",
      Buffer.concat([keyring, Buffer.from([0x9d, 0, 2, 4, 0])]),
      "secret",
    ],
    [
      "compressed data (tag 8) after the public key",
      Buffer.concat([keyring, Buffer.from([0xa0, 1, 0])]),
      "type 8",
    ],
    ["a truncated packet", keyring.subarray(0, keyring.length - 2), "truncated"],
    ["trailing garbage", Buffer.concat([keyring, Buffer.from("hi")]), "not an OpenPGP packet"],
    ["a bad armour checksum", armor(keyring).replace(/\n=.*\n/, "\n=AAAA\n"), "checksum"],
    ["text after the armour", armor(keyring) + "secret: 1234\n", "nothing around it"],
    [
      "a keyring that starts with a user ID",
      keyring.subarray(PUBLIC_KEY_PACKET_BYTES),
      "first packet",
    ],
  ])("refuses %s", (_name, input, expected) => {
    expect(reason(checkGpgKeyring(b64(input)))).toContain(expected);
  });
});

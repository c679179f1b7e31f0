import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkCertificates, checkGpgKeyring, checkPublicKey } from "../../src/compiler/keys.ts";

const b64 = (s: string | Buffer): string => Buffer.from(s).toString("base64");
const pem = (type: "ec" | "rsa" | "ed25519", opts: object = {}) => {
  const pair = generateKeyPairSync(type as "ec", opts as { namedCurve: string });
  return {
    pub: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    priv: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
};
const caPem = readFileSync(path.join(import.meta.dirname, "..", "fixtures", "test-ca.pem"), "utf8");

describe("checkPublicKey", () => {
  it.each([
    ["ECDSA P-256", pem("ec", { namedCurve: "prime256v1" }).pub],
    ["ECDSA P-384", pem("ec", { namedCurve: "secp384r1" }).pub],
    ["RSA 2048", pem("rsa", { modulusLength: 2048 }).pub],
    ["Ed25519", pem("ed25519").pub],
  ])("accepts %s", (_name, key) => {
    expect(checkPublicKey(b64(key))).toEqual({ ok: true });
  });

  it.each([
    ["a private key", pem("ec", { namedCurve: "prime256v1" }).priv, "PRIVATE"],
    ["secp256k1", pem("ec", { namedCurve: "secp256k1" }).pub, "unsupported elliptic curve"],
    ["RSA 1024", pem("rsa", { modulusLength: 1024 }).pub, "too short"],
    ["a certificate", caPem, '"CERTIFICATE"'],
    ["two keys", pem("ed25519").pub + pem("ed25519").pub, "exactly one"],
    ["garbage", "hello", "found none"],
  ])("refuses %s", (_name, key, reason) => {
    const r = checkPublicKey(b64(key));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });
});

describe("checkCertificates", () => {
  it("accepts a CA certificate bundle", () => {
    expect(checkCertificates(b64(caPem + caPem))).toEqual({ ok: true });
  });
  it("refuses a public key and a private key", () => {
    expect(checkCertificates(b64(pem("ed25519").pub)).ok).toBe(false);
    const r = checkCertificates(b64(pem("ed25519").priv));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain("PRIVATE");
  });
});

describe("checkGpgKeyring", () => {
  it("accepts armoured and binary public keyrings", () => {
    expect(checkGpgKeyring(b64("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n"))).toEqual({
      ok: true,
    });
    expect(checkGpgKeyring(b64(Buffer.from([0x99, 0x01, 0x0d, 0x04])))).toEqual({ ok: true });
    expect(checkGpgKeyring(b64(Buffer.from([0xc6, 0x33, 0x04])))).toEqual({ ok: true });
  });
  it("refuses secret keys in both forms", () => {
    expect(checkGpgKeyring(b64("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")).ok).toBe(false);
    expect(checkGpgKeyring(b64(Buffer.from([0x95, 0x01, 0x0d, 0x04]))).ok).toBe(false);
    expect(checkGpgKeyring(b64(Buffer.from([0xc5, 0x33, 0x04]))).ok).toBe(false);
  });
});

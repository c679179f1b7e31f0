// Fingerprints as the tools people hold print them: openssl's DER for PEM, gpg's for keyrings.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fingerprint, fingerprints } from "../../../src/compiler/fingerprint.ts";
import { publicKey } from "./fixtures.ts";

const fixtures = path.resolve(import.meta.dirname, "../../fixtures/keys");

describe("fingerprints", () => {
  it("gives the SHA-256 of each PEM block's DER, however the PEM is wrapped", () => {
    const a = publicKey();
    const b = publicKey();
    const rewrapped = Buffer.from(
      `${a.pem.replace(/\n(?!-----)/g, "\r\n")}junk between\n${b.pem}`,
    ).toString("base64");
    expect(fingerprints(rewrapped)).toEqual([a.fingerprint, b.fingerprint]);
    expect(fingerprint(rewrapped)).toBe(`${a.fingerprint}+${b.fingerprint}`);
  });

  it("gives gpg's v4 fingerprint of each primary key of a binary keyring", () => {
    const home = mkdtempSync(path.join(tmpdir(), "imagepolicy-gpg-"));
    try {
      const gpg = (...args: string[]): Buffer =>
        execFileSync("gpg", ["--batch", "--homedir", home, ...args], {
          stdio: ["ignore", "pipe", "ignore"],
        });
      gpg("--import", path.join(fixtures, "gpg-secret.asc"));
      const keyring = gpg("--export");
      const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(
        gpg("--with-colons", "--fingerprint").toString(),
      )?.[1];
      expect(fpr).toMatch(/^[0-9A-F]{40}$/);
      expect(fingerprints(keyring.toString("base64"))).toEqual([`openpgp:${fpr ?? ""}`]);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("falls back to the SHA-256 of the bytes, never to the bytes", () => {
    const data = Buffer.from("not a key at all");
    expect(fingerprints(data.toString("base64"))).toEqual([
      `sha256:${createHash("sha256").update(data).digest("hex").slice(0, 16)}`,
    ]);
  });
});

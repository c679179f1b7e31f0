// Key material as content-addressed files (src/agent/keyFiles.ts): what the policy files name,
// what the key files hold, when they are written and removed.

import { createHash } from "node:crypto";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { keyFileName } from "../../../src/agent/keyFiles.ts";
import { combine, indexLayer } from "../../../src/compiler/combine.ts";
import { LATEST_KNOWN } from "../../../src/compiler/crioVersion.ts";
import type { Layer } from "../../../src/compiler/layer.ts";
import type { Requirement } from "../../../src/compiler/requirements.ts";
import { parsePolicyJson } from "../../../src/policyjson/parse.ts";
import { newPublicKey } from "../../support/builders.ts";
import { keyPathsIn, keyReq, layer, PATHS, TestNode } from "./support.ts";

const b64 = (s: string | Buffer): string => Buffer.from(s).toString("base64");
const CA = b64("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n");
const INTERMEDIATE = b64("-----BEGIN CERTIFICATE-----\nMIIBinter\n-----END CERTIFICATE-----\n");
// A binary keyring: not valid UTF-8, so it survives only if written as bytes.
const KEYRING = b64(Buffer.from([0x99, 0x01, 0x0d, 0xff, 0xfe, 0x00, 0x80]));

const K1 = newPublicKey();
const K2 = newPublicKey();
const K3 = newPublicKey();
const REKOR = newPublicKey();

function compiled(...layers: Layer[]): string {
  const r = combine(layers.map(indexLayer), LATEST_KNOWN);
  if (!r.ok) throw new Error(r.problems.join("; "));
  return r.text;
}

function keyFiles(node: TestNode): string[] {
  return [...node.fs.files.keys()].filter((p) => path.dirname(p) === PATHS.keysDir).sort();
}

const keyPath = (data: string): string => path.join(PATHS.keysDir, keyFileName(data));

describe("key files", () => {
  it("every kind of key material: written once as its bytes, named by path, nothing inline", async () => {
    const every: Requirement[] = [
      { kind: "sigstoreKeys", keys: [K1] },
      { kind: "sigstoreKeys", keys: [K1, K2].sort(), rekorKeys: [REKOR] },
      {
        kind: "fulcio",
        caData: CA,
        rekorKeys: [REKOR],
        oidcIssuer: "https://issuer.example.com",
        subjectEmail: "ci@example.com",
      },
      {
        kind: "pki",
        caRootsData: CA,
        caIntermediatesData: INTERMEDIATE,
        subjectEmail: "ci@example.com",
      },
      { kind: "gpg", keyring: KEYRING },
    ];
    const cluster = layer(
      undefined,
      every.map((r, i) => [[`reg.io/kind${String(i)}`], r] as const),
    );
    const team = layer("team-a", [[["reg.io/kind0/app"], keyReq(K3)]]);
    const node = new TestNode();
    const out = await node.apply(cluster, { "team-a": team });
    expect(out.result.error).toBeUndefined();

    const material = [K1, K2, K3, REKOR, CA, INTERMEDIATE, KEYRING];
    expect(keyFiles(node)).toEqual(material.map(keyPath).sort());
    for (const data of material) {
      const bytes = node.fs.raw.get(keyPath(data));
      expect(bytes?.equals(Buffer.from(data, "base64"))).toBe(true);
      const digest = createHash("sha256").update(Buffer.from(data, "base64")).digest("hex");
      expect(path.basename(keyPath(data))).toBe(`sha256-${digest}`);
    }
    const nsFile = path.join(PATHS.policyDir, "team-a.json");
    for (const [file, expected] of [
      [PATHS.clusterJson, compiled(cluster)],
      [nsFile, compiled(cluster, team)],
    ] as const) {
      const text = node.fs.files.get(file) ?? "";
      parsePolicyJson(text); // the strict parser: every *Path field is one containers/image reads
      expect(text).not.toMatch(
        /"(keyData|keyDatas|caData|caRootsData|caIntermediatesData|rekorPublicKeyData|rekorPublicKeyDatas)"/,
      );
      for (const p of keyPathsIn(text)) expect(path.dirname(p)).toBe(PATHS.hostKeysDir);
      // Inlined again, the bytes are the compiler's.
      expect(node.fs.policy(file)).toBe(expected);
    }
    // Each key file written once although both policy files name K1.
    expect(node.fs.writes.filter((w) => w === keyPath(K1))).toHaveLength(1);
  });

  it("removes a key no file names once a change completes, keeps one a namespace still uses", async () => {
    const node = new TestNode();
    const teamA = layer("team-a", [[["reg.io/a"], keyReq(K2)]]);
    await node.apply(layer(undefined, [[["reg.io"], keyReq(K1)]]), { "team-a": teamA });
    expect(keyFiles(node)).toEqual([K1, K2].map(keyPath).sort());

    // The cluster key is replaced: K1 goes once no file names it; K2 stays.
    const c2 = layer(undefined, [[["reg.io"], keyReq(K3)]]);
    const out = await node.apply(c2, { "team-a": teamA });
    expect(out.result.error).toBeUndefined();
    expect(keyFiles(node)).toEqual([K2, K3].map(keyPath).sort());
    expect(out.result.removed).toContain(keyPath(K1));

    // A namespace that names K1 again brings it back, before its file.
    const teamB = layer("team-b", [[["reg.io/b"], keyReq(K1)]]);
    const before = node.fs.writes.length;
    await node.apply(c2, { "team-a": teamA, "team-b": teamB });
    const writes = node.fs.writes.slice(before);
    expect(writes.indexOf(keyPath(K1))).toBeGreaterThanOrEqual(0);
    expect(writes.indexOf(keyPath(K1))).toBeLessThan(
      writes.indexOf(path.join(PATHS.policyDir, "team-b.json")),
    );
    expect(keyFiles(node)).toEqual([K1, K2, K3].map(keyPath).sort());

    // A namespace change that adds a key removes nothing; one that drops K2, which no other file
    // names, removes it.
    const teamA2 = layer("team-a", [[["reg.io/a"], keyReq(K2, K1)]]);
    const added = await node.apply(c2, { "team-a": teamA2, "team-b": teamB });
    expect([added.plan.looked, added.result.removed]).toEqual([1, []]);
    expect(keyFiles(node)).toEqual([K1, K2, K3].map(keyPath).sort());
    const teamA3 = layer("team-a", [[["reg.io/a"], keyReq(K1)]]);
    const dropped = await node.apply(c2, { "team-a": teamA3, "team-b": teamB });
    expect(dropped.plan.looked).toBe(1);
    expect(dropped.result.removed).toEqual([keyPath(K2)]);
    expect(keyFiles(node)).toEqual([K1, K3].map(keyPath).sort());
  });

  it("keeps every key when a failed write leaves the change unfinished", async () => {
    const node = new TestNode();
    const teamA = layer("team-a", [[["reg.io/a"], keyReq(K2)]]);
    await node.apply(layer(undefined, [[["reg.io"], keyReq(K1)]]), { "team-a": teamA });
    node.fs.failOn = (p) => p === PATHS.clusterJson;
    const out = await node.apply(layer(undefined, [[["reg.io"], keyReq(K3)]]), { "team-a": teamA });
    expect(out.result.error).toBeDefined();
    // team-a.json may name K1 and K3 (the intersection) and cluster.json still names K1.
    expect(keyFiles(node)).toEqual([K1, K2, K3].map(keyPath).sort());
  });

  it("rewrites a key file changed on the node: at the next start, and before a file names it", async () => {
    const node = new TestNode();
    const c1 = layer(undefined, [[["reg.io"], keyReq(K1)]]);
    const teamA = layer("team-a", [[["reg.io/a"], keyReq(K2)]]);
    await node.apply(c1, { "team-a": teamA });
    const tamper = (data: string): void => {
      node.fs.files.set(keyPath(data), "tampered");
      node.fs.raw.set(keyPath(data), Buffer.from("tampered"));
    };
    // A new process with current files checks the cluster layer's keys.
    tamper(K1);
    await node.restart();
    const restart = await node.apply(c1, { "team-a": teamA });
    expect(restart.result.written).toEqual([keyPath(K1)]);
    expect(node.fs.raw.get(keyPath(K1))?.equals(Buffer.from(K1, "base64"))).toBe(true);
    // A namespace key is checked before the next file that names it is written.
    tamper(K2);
    const teamA2 = layer("team-a", [[["reg.io/a", "reg.io/a2"], keyReq(K2)]]);
    await node.apply(c1, { "team-a": teamA2 });
    expect(node.fs.raw.get(keyPath(K2))?.equals(Buffer.from(K2, "base64"))).toBe(true);
  });
});

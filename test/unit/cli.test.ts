import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { run } from "../../src/cli/main.ts";
import type { Io } from "../../src/cli/io.ts";
import { parsePolicyJson } from "../../src/policyjson/parse.ts";
import { cip, ip, newPublicKey, rejecting, withKey, withScopes } from "../support/builders.ts";

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

const K = newPublicKey();
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-cli-"));
});

async function manifest(name: string, docs: unknown[]): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, docs.map((d) => stringify(d)).join("---\n"));
  return file;
}

describe("imagepolicy compile", () => {
  it("writes cluster.json, policies/<ns>.json and registries.d, exit 0", async () => {
    const f = await manifest("p.yaml", [
      cip("deny", withScopes("*"), rejecting),
      cip("app", withScopes("reg.io/app"), withKey(K)),
      ip("team-a", "p", withScopes("reg.io"), withKey(K)),
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-a" } },
    ]);
    const io = capture();
    const out = path.join(dir, "out");
    expect(await run(["compile", "-f", f, "-o", out], io)).toBe(0);
    expect((await readdir(out)).sort()).toEqual(["cluster.json", "policies", "registries.d"]);
    expect(await readdir(path.join(out, "policies"))).toEqual(["team-a.json"]);
    parsePolicyJson(await readFile(path.join(out, "cluster.json"), "utf8"));
    parsePolicyJson(await readFile(path.join(out, "policies", "team-a.json"), "utf8"));
    expect(await readFile(path.join(out, "registries.d", "imagepolicy.yaml"), "utf8")).toContain(
      "use-sigstore-attachments: true",
    );
  });

  it("names each bad object and field, writes nothing, exit 1", async () => {
    const f = await manifest("bad.yaml", [
      cip("good", withScopes("reg.io"), withKey(K)),
      cip("bad-scope", withScopes("reg.io/UPPER")),
      ip("ns", "bad-key", withScopes("reg.io"), withKey("bm90IGEga2V5")),
      {
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ClusterImagePolicy",
        metadata: { name: "typo" },
        spec: { scopes: ["a.io"], policy: { rootOfTrust: { policyType: "Reject" } }, extra: 1 },
      },
    ]);
    const io = capture();
    const out = path.join(dir, "out");
    expect(await run(["compile", "-f", f, "-o", out], io)).toBe(1);
    expect(existsSync(out)).toBe(false);
    const text = io.stderr.join("\n");
    expect(text).toContain("ClusterImagePolicy/bad-scope: spec.scopes[0]:");
    expect(text).toContain("ImagePolicy ns/bad-key: spec.policy.rootOfTrust.publicKey.keyData:");
    expect(text).toContain('ClusterImagePolicy/typo: spec.extra: unknown field "spec.extra"');
    expect(text).not.toContain("good");
  });

  it.each([
    [["compile", "-o", "x"], "at least one -f"],
    [["compile", "-f", "p.yaml"], "-o <outdir> is required"],
    [["compile", "-f", "missing.yaml", "-o", "x"], "cannot read"],
    [["compile", "--bogus"], "Unknown option"],
    [["frobnicate", "-f", "x"], "unknown command"],
    [["compile", "-f", "p.yaml", "-o", "x", "--crio-version", "banana"], "not a CRI-O version"],
  ])("exit 2 for %j", async (args, message) => {
    await manifest("p.yaml", [cip("a", withScopes("reg.io"), rejecting)]);
    const io = capture();
    const cwdArgs = args.map((a) => (a.endsWith(".yaml") ? path.join(dir, a) : a));
    expect(await run(cwdArgs, io)).toBe(2);
    expect(io.stderr.join("\n")).toContain(message);
  });

  it("refuses duplicate YAML keys with exit 2", async () => {
    const f = path.join(dir, "dup.yaml");
    await writeFile(f, "apiVersion: v1\nkind: Secret\nkind: Secret\nmetadata: {name: a}\n");
    const io = capture();
    expect(await run(["compile", "-f", f, "-o", path.join(dir, "o")], io)).toBe(2);
    expect(io.stderr.join("\n")).toMatch(/unique|duplicate/i);
  });
});

describe("imagepolicy explain", () => {
  it("shows the deciding scopes of both layers and of the combined file", async () => {
    const f = await manifest("p.yaml", [
      cip("deny", withScopes("*"), rejecting),
      cip("app", withScopes("reg.io/app"), withKey(K)),
      ip("team-a", "reg", withScopes("reg.io"), rejecting),
    ]);
    const io = capture();
    expect(await run(["explain", "-f", f, "--image", "reg.io/app:v1", "-n", "team-a"], io)).toBe(0);
    const text = io.stdout.join("\n");
    expect(text).toContain("lookup order: reg.io/app:v1 -> reg.io/app -> reg.io -> *.io");
    expect(text).toMatch(
      /cluster layer:\n {2}deciding scope: reg.io\/app\n {2}from: ClusterImagePolicy\/app/,
    );
    expect(text).toMatch(
      /namespace layer \(team-a\):\n {2}deciding scope: reg.io\n {2}from: ImagePolicy team-a\/reg/,
    );
    expect(text).toMatch(
      /file CRI-O reads: policies\/team-a.json\n {2}deciding scope: reg.io\/app\n.*\n {4}\{ "type": "reject" \}/,
    );
  });
});

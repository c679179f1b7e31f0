// `imagepolicy import` exit codes and outputs: 0 and YAML on stdout or in -o FILE; 1 with one
// error line per refusal and nothing written; 2 for usage and I/O, duplicate YAML keys included.
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import type { Io } from "../../../src/cli/io.ts";
import { run } from "../../../src/cli/main.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const A = readFileSync(path.join(ROOT, "test/fixtures/keys/a.pub"), "utf8");

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

const policy = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: "policy.sigstore.dev/v1beta1",
  kind: "ClusterImagePolicy",
  metadata: { name },
  spec: { images: [{ glob: "ghcr.io/**" }], authorities: [{ key: { data: A } }], ...spec },
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-import-cli-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, docs: unknown[]): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, docs.map((d) => stringify(d)).join("---\n"));
  return p;
}

describe("imagepolicy import", () => {
  it("writes the objects to stdout, exit 0, and the same bytes every time", async () => {
    const f = await file("in.yaml", [
      policy("b"),
      policy("a", { images: [{ glob: "quay.io/**" }] }),
    ]);
    const first = capture();
    expect(await run(["import", "-f", f, "--no-match-policy", "allow"], first)).toBe(0);
    const names = parseAllDocuments(first.stdout.join("\n")).map((d): unknown =>
      d.getIn(["metadata", "name"]),
    );
    expect(names).toEqual(["a", "b"]);
    const second = capture();
    await run(["import", "-f", f, "--no-match-policy", "allow"], second);
    expect(second.stdout).toEqual(first.stdout);
    expect(first.stderr.at(-1)).toBe("2 object(s) written");
  });

  it("writes -o FILE instead of stdout", async () => {
    const f = await file("in.yaml", [policy("a")]);
    const out = path.join(dir, "out.yaml");
    const io = capture();
    expect(await run(["import", "-f", f, "-o", out, "--no-match-policy", "deny"], io)).toBe(0);
    expect(io.stdout).toEqual([]);
    const text = await readFile(out, "utf8");
    expect(text).toContain("name: a\n");
    expect(text).toContain("name: policy-controller-no-match\n");
  });

  it("one error line per refusal naming object and field, nothing written, exit 1", async () => {
    const f = await file("in.yaml", [
      policy("good"),
      policy("warns", { mode: "warn" }),
      policy("kms", { authorities: [{ key: { kms: "awskms:///alias/x" } }] }),
    ]);
    const out = path.join(dir, "out.yaml");
    const io = capture();
    expect(await run(["import", "-f", f, "-o", out], io)).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(io.stdout).toEqual([]);
    expect(io.stderr.filter((l) => l.startsWith("error: "))).toEqual([
      expect.stringMatching(
        /^error: policy.sigstore.dev\/v1beta1 ClusterImagePolicy warns: spec.mode: /,
      ),
      expect.stringMatching(
        /^error: policy.sigstore.dev\/v1beta1 ClusterImagePolicy kms: spec.authorities\[0\].key.kms: /,
      ),
    ]);
    expect(io.stderr.at(-1)).toBe("2 problem(s); nothing written");
  });

  it("--partial writes what converted and still exits 1", async () => {
    const f = await file("in.yaml", [policy("good"), policy("warns", { mode: "warn" })]);
    const out = path.join(dir, "out.yaml");
    const io = capture();
    expect(
      await run(["import", "-f", f, "-o", out, "--partial", "--no-match-policy", "allow"], io),
    ).toBe(1);
    expect(await readFile(out, "utf8")).toContain("name: good\n");
  });

  it("a missing trust file refuses only what needs it, with a warning", async () => {
    const keyless = policy("keyless", {
      authorities: [
        { keyless: { identities: [{ issuer: "https://i.example", subject: "a@b.example" }] } },
      ],
    });
    const f = await file("in.yaml", [policy("key"), keyless]);
    const io = capture();
    const args = ["import", "-f", f, "--sigstore-trust", path.join(dir, "none.yaml"), "--partial"];
    expect(await run([...args, "--no-match-policy", "allow"], io)).toBe(1);
    expect(io.stderr[0]).toMatch(/^warning: Sigstore trust material .*none.yaml/);
    expect(io.stdout.join("\n")).toContain("name: key\n");
    expect(io.stderr.join("\n")).toContain(
      "ClusterImagePolicy keyless: spec.authorities[0].keyless:",
    );
  });

  it.each([
    [["import"], "at least one -f"],
    [["import", "-f", "in.yaml", "--bogus"], "Unknown option"],
    [["import", "-f", "missing.yaml"], "cannot read"],
    [["import", "-f", "in.yaml", "--no-match-policy", "warn"], "cannot be expressed"],
    [["import", "-f", "in.yaml", "--no-match-policy", "maybe"], "allow or deny"],
  ])("exit 2 for %j", async (args, message) => {
    await file("in.yaml", [policy("a")]);
    const io = capture();
    expect(
      await run(
        args.map((a) => (a.endsWith(".yaml") ? path.join(dir, a) : a)),
        io,
      ),
    ).toBe(2);
    expect(io.stderr.join("\n")).toContain(message);
  });

  it("exit 2 for duplicate YAML keys and broken YAML", async () => {
    const dup = path.join(dir, "dup.yaml");
    await writeFile(dup, "apiVersion: v1\nkind: List\nkind: List\nitems: []\n");
    const io = capture();
    expect(await run(["import", "-f", dup], io)).toBe(2);
    expect(io.stderr.join("\n")).toMatch(/unique|duplicate/i);
    const broken = path.join(dir, "broken.yaml");
    await writeFile(broken, "spec: [unclosed\n");
    expect(await run(["import", "-f", broken], capture())).toBe(2);
  });

  it("--help prints the usage, exit 0", async () => {
    const io = capture();
    expect(await run(["import", "--help"], io)).toBe(0);
    expect(io.stdout.join("\n")).toContain("--widen-globs");
  });
});

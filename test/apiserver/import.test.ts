// What `imagepolicy import` writes is admitted by a real kube-apiserver with this project's CRDs
// (schema and CEL rules), and what the API server then serves back compiles with
// `imagepolicy compile`. Every case of test/import whose import succeeds (want.exit 0) is run
// through the CLI here, applied with kubectl together with the Secrets the import says to copy,
// read back, compiled, and deleted again.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { z } from "zod";
import type { Io } from "../../src/cli/io.ts";
import { run } from "../../src/cli/main.ts";
import {
  startControlPlane,
  type CommandResult,
  type ControlPlane,
} from "../support/controlPlane.ts";
import { copiedSecrets, OPERATOR_NAMESPACE } from "../import/copiedSecrets.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CASES = path.join(ROOT, "test/import");

function describeResult(r: CommandResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

async function cli(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
  const code = await run(args, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const caseNames = readdirSync(CASES)
  .filter(
    (d) =>
      existsSync(path.join(CASES, d, "want.exit")) &&
      readFileSync(path.join(CASES, d, "want.exit"), "utf8").trim() === "0",
  )
  .sort();

const listDoc = z.looseObject({ items: z.array(z.unknown()) });

function namespacesOf(yamlText: string): string[] {
  const found = new Set<string>();
  for (const doc of parseAllDocuments(yamlText)) {
    const ns: unknown = doc.getIn(["metadata", "namespace"]);
    if (typeof ns === "string") found.add(ns);
  }
  return [...found].sort();
}

describe("imported objects on a real kube-apiserver", () => {
  let dir: string;
  let plane: ControlPlane | undefined;
  const kubectl = (
    args: readonly string[],
    options?: { readonly stdin?: string },
  ): Promise<CommandResult> => {
    if (plane === undefined) throw new Error("the control plane did not start");
    return plane.kubectl(args, options);
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-import-apiserver-"));
    plane = await startControlPlane({ dir, crdDir: path.join(ROOT, "crds") });
    const r = await kubectl(["create", "namespace", OPERATOR_NAMESPACE]);
    expect(r.code, describeResult(r)).toBe(0);
  });

  afterAll(async () => {
    await plane?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("has cases to apply", () => {
    expect(caseNames.length).toBeGreaterThanOrEqual(4);
  });

  it.each(caseNames)("%s: admitted, served back, compiled", async (name) => {
    const caseDir = path.join(CASES, name);
    const argsFile = path.join(caseDir, "args");
    const extra = existsSync(argsFile)
      ? readFileSync(argsFile, "utf8")
          .split("\n")
          .filter((l) => l !== "")
      : [];
    const imported = await cli(["import", "-f", path.join(caseDir, "input"), ...extra]);
    expect(imported.code, imported.err).toBe(0);

    for (const ns of namespacesOf(imported.out)) {
      if (ns === OPERATOR_NAMESPACE) continue;
      const r = await kubectl(["create", "namespace", ns]);
      expect([0, 1], describeResult(r)).toContain(r.code);
    }
    const secrets = copiedSecrets(caseDir)
      .map((s) => stringify(s))
      .join("---\n");
    const manifest = secrets === "" ? imported.out : `${imported.out}\n---\n${secrets}`;
    const applied = await kubectl(["apply", "--server-side", "-f", "-"], { stdin: manifest });
    expect(applied.code, describeResult(applied)).toBe(0);

    try {
      // What the API server stored, read back: the objects and the copied Secrets.
      const work = path.join(dir, name);
      await mkdir(path.join(work, "in"), { recursive: true });
      const got = await kubectl([
        "get",
        "clusterimagepolicies.imagepolicy.dev,imagepolicies.imagepolicy.dev",
        "-A",
        "-o",
        "yaml",
      ]);
      expect(got.code, describeResult(got)).toBe(0);
      // `compile` reads one object per document: unwrap kubectl's Lists.
      const items = listDoc.parse(parseAllDocuments(got.stdout)[0]?.toJS()).items;
      expect(items.length).toBe(parseAllDocuments(imported.out).length);
      await writeFile(
        path.join(work, "in", "served.yaml"),
        items.map((i) => stringify(i)).join("---\n"),
      );
      const gotSecrets = await kubectl(["get", "secrets", "-n", OPERATOR_NAMESPACE, "-o", "yaml"]);
      expect(gotSecrets.code, describeResult(gotSecrets)).toBe(0);
      const secretItems = listDoc.parse(parseAllDocuments(gotSecrets.stdout)[0]?.toJS()).items;
      await writeFile(
        path.join(work, "in", "secrets.yaml"),
        secretItems.map((i) => stringify(i)).join("---\n"),
      );

      const compiled = await cli([
        "compile",
        "-f",
        path.join(work, "in"),
        "-o",
        path.join(work, "out"),
      ]);
      expect(compiled.err, "compile reports no problem").toBe("");
      expect(compiled.code).toBe(0);
      expect(compiled.out).toContain(`compiled ${items.length} policies`);
    } finally {
      const deleted = await kubectl(["delete", "--wait=true", "-f", "-"], { stdin: manifest });
      expect(deleted.code, describeResult(deleted)).toBe(0);
    }
  });
});

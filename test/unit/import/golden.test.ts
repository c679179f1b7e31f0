// The realistic manifests of test/import/<behaviour>/input through `imagepolicy import`, compared
// byte for byte with the recorded stdout (want.yaml), stderr (want.stderr) and exit code
// (want.exit); extra arguments come from `args`, one per line. Regenerate the records only with
// hack/update-import-golden.sh and review the diff.
//
// Every output is also run through `imagepolicy compile` (the CLI's compile path) with the Secrets
// the import says to copy, and must compile; the same input must give the same bytes twice.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { Io } from "../../../src/cli/io.ts";
import { run } from "../../../src/cli/main.ts";
import { parsePolicyJson } from "../../../src/policyjson/parse.ts";
import { copiedSecrets } from "../../import/copiedSecrets.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const CASES = path.join(ROOT, "test/import");
const UPDATE = process.env["UPDATE_IMPORT_GOLDEN"] === "1";

interface Outcome {
  readonly stdout: string;
  readonly stderr: string;
  readonly exit: number;
}

async function runCli(args: readonly string[]): Promise<Outcome> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: Io = { out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
  const exit = await run(args, io);
  const text = (lines: string[]): string => (lines.length === 0 ? "" : `${lines.join("\n")}\n`);
  return { stdout: text(stdout), stderr: text(stderr), exit };
}

function argsOf(dir: string): string[] {
  const file = path.join(dir, "args");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "");
}

const cases = readdirSync(CASES)
  .filter((d) => existsSync(path.join(CASES, d, "input")))
  .sort();

describe("imagepolicy import on realistic manifests (test/import)", () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), "imagepolicy-import-golden-"));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("has a case for every behaviour the docs name", () => {
    expect(cases.length).toBeGreaterThanOrEqual(7);
  });

  it.each(cases)("%s", async (name) => {
    const dir = path.join(CASES, name);
    const args = ["import", "-f", path.join(dir, "input"), ...argsOf(dir)];
    const got = await runCli(args);
    const again = await runCli(args);
    expect(again, "same input, same bytes").toEqual(got);

    const files = {
      stdout: path.join(dir, "want.yaml"),
      stderr: path.join(dir, "want.stderr"),
      exit: path.join(dir, "want.exit"),
    };
    if (UPDATE) {
      writeFileSync(files.stdout, got.stdout);
      writeFileSync(files.stderr, got.stderr);
      writeFileSync(files.exit, `${got.exit}\n`);
    }
    expect(got.stdout).toBe(readFileSync(files.stdout, "utf8"));
    expect(got.stderr).toBe(readFileSync(files.stderr, "utf8"));
    expect(`${got.exit}\n`).toBe(readFileSync(files.exit, "utf8"));

    if (got.stdout === "") {
      expect(got.exit, "no output only when something was refused").toBe(1);
      expect(got.stderr).toContain("nothing written");
      return;
    }
    // The output compiles, with the Secrets copied as the import says.
    const work = path.join(tmp, name);
    const input = path.join(work, "in");
    await mkdir(input, { recursive: true });
    await writeFile(path.join(input, "imported.yaml"), got.stdout);
    await writeFile(
      path.join(input, "secrets.yaml"),
      copiedSecrets(dir)
        .map((s) => stringify(s))
        .join("---\n"),
    );
    const compiled = await runCli(["compile", "-f", input, "-o", path.join(work, "out")]);
    expect(compiled.stderr).toBe("");
    expect(compiled.exit).toBe(0);
    parsePolicyJson(await readFile(path.join(work, "out", "cluster.json"), "utf8"));
  });
});

// The CLI's manifest reader against a hostile input tree: symbolic links out of the tree are never
// followed, and parse errors never quote the file.
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ManifestReadError, readManifests } from "../../src/cli/manifests.ts";
import { run } from "../../src/cli/main.ts";
import { cip } from "../support/builders.ts";

let dir: string;

class ExpectedFailure extends Error {
  override readonly name = "ExpectedFailure";
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-cli-"));
  await mkdir(path.join(dir, "tree", "sub"), { recursive: true });
  await mkdir(path.join(dir, "outside"));
  await writeFile(path.join(dir, "tree", "a.yaml"), stringify(cip("a")));
  await writeFile(path.join(dir, "tree", "sub", "b.yaml"), stringify(cip("b")));
  await writeFile(path.join(dir, "outside", "c.yaml"), stringify(cip("c")));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(paths: string[]): Promise<ManifestReadError> {
  try {
    await readManifests(paths);
  } catch (err) {
    if (err instanceof ManifestReadError) return err;
    throw new ExpectedFailure("not a ManifestReadError", { cause: err });
  }
  throw new ExpectedFailure("read without error");
}

describe("readManifests", () => {
  it("reads a tree, following links that stay inside it (once, even in a cycle)", async () => {
    await symlink(path.join(dir, "tree", "sub"), path.join(dir, "tree", "again"));
    await symlink(path.join(dir, "tree"), path.join(dir, "tree", "sub", "loop"));
    const m = await readManifests([path.join(dir, "tree")]);
    expect(m.policies.map((p) => p.metadata.name).sort()).toEqual(["a", "b"]);
  });

  it.each([
    ["a file", "outside/c.yaml"],
    ["a directory", "outside"],
    ["a private key elsewhere on the machine", "/etc/hostname"],
  ])("refuses a link to %s outside the tree and names the link", async (_what, target) => {
    const link = path.join(dir, "tree", "sub", "link.yaml");
    await symlink(path.isAbsolute(target) ? target : path.join(dir, target), link);
    const err = await failure([path.join(dir, "tree")]);
    expect(err.message).toContain(link);
    expect(err.message).toContain("symbolic link to outside");
  });

  it("refuses a dangling link", async () => {
    await symlink(path.join(dir, "nowhere.yaml"), path.join(dir, "tree", "gone.yaml"));
    expect((await failure([path.join(dir, "tree")])).message).toContain("dangling");
  });

  it.each([
    ["a duplicate key", "a: 1\na: s3cr3t-value-123\n", "DUPLICATE_KEY"],
    ["an unclosed flow sequence", "key: [unclosed s3cr3t-value-123\n", "line 2"],
  ])("reports %s by line and code, never quoting the file", async (_what, text, expected) => {
    await writeFile(path.join(dir, "bad.yaml"), text);
    const err = await failure([path.join(dir, "bad.yaml")]);
    expect(err.message).toContain(expected);
    expect(err.message).not.toContain("s3cr3t");
  });

  it("the compile command prints no file content on a parse error", async () => {
    await writeFile(path.join(dir, "bad.yaml"), "a: 1\na: s3cr3t-value-123\n");
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    const code = await run(
      ["compile", "-f", path.join(dir, "bad.yaml"), "-o", path.join(dir, "out")],
      io,
    );
    expect(code).toBe(2);
    expect(lines.join("\n")).toContain("line 2, column 1: DUPLICATE_KEY");
    expect(lines.join("\n")).not.toContain("s3cr3t");
  });
});

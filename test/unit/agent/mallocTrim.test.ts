// The malloc_trim addon (native/malloc-trim.c), built by hack/tools/malloc-trim.sh as the image's
// native stage builds it: it loads, and it returns free malloc pages that free() kept resident
// under a live chunk (the agent's idle memory after a reconcile's peak, docs/scale.md).

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { IMAGE_ADDON_PATH, loadMallocTrim } from "../../../src/agent/mallocTrim.ts";
import { runTool, toolBin } from "../../support/tools.ts";

const repoRoot = path.resolve(import.meta.dirname, "../../..");

let addon: string;
beforeAll(async () => {
  addon = await toolBin("malloc-trim.sh");
}, 120_000);

/** Runs `script` in a child Node (the addon's effect is on a whole process's heap). */
async function runNode(args: readonly string[], script: string): Promise<string> {
  const r = await runTool(process.execPath, [...args, "--input-type=module", "-e", script], {
    env: { ...process.env, MALLOC_ARENA_MAX: "1" },
  });
  if (r.code !== 0) throw new Error(`node exited ${String(r.code)}: ${r.stderr}`);
  return r.stdout;
}

describe("loadMallocTrim", () => {
  it("loads the addon named by IMAGEPOLICY_MALLOC_TRIM", () => {
    const m = loadMallocTrim({ IMAGEPOLICY_MALLOC_TRIM: addon });
    expect(m).toMatchObject({ ok: true, path: addon });
    if (!m.ok) throw new Error(m.reason);
    expect(typeof m.trim()).toBe("boolean");
  });

  it("reports, without throwing, an addon that cannot be loaded", () => {
    const missing = path.join(repoRoot, "no-such-dir", "malloc-trim.node");
    const m = loadMallocTrim({ IMAGEPOLICY_MALLOC_TRIM: missing });
    expect(m.ok).toBe(false);
    if (m.ok) return;
    expect(m.path).toBe(missing);
    expect(m.reason).toMatch(/no such file|cannot open/i);
  });

  it("reports a shared object that is not the addon", () => {
    // libc itself: it loads, but registers no Node module.
    const m = loadMallocTrim({ IMAGEPOLICY_MALLOC_TRIM: "libc.so.6" });
    expect(m.ok).toBe(false);
  });

  it("defaults to native/malloc-trim.node beside src/, where the Dockerfile copies it", () => {
    expect(IMAGE_ADDON_PATH).toBe(path.join(repoRoot, "native", "malloc-trim.node"));
    expect(loadMallocTrim({}).path).toBe(IMAGE_ADDON_PATH);
    expect(loadMallocTrim({ IMAGEPOLICY_MALLOC_TRIM: "" }).path).toBe(IMAGE_ADDON_PATH);
  });

  it("returns the free pages that a live chunk above them kept resident", async () => {
    // 48 MiB of 32 KiB buffers (malloc'd below the mmap threshold), every 16th kept so that the
    // heap's top stays live and free() cannot shrink it; then a full collection frees the rest.
    const out = await runNode(
      ["--expose-gc"],
      `
      import { loadMallocTrim } from ${JSON.stringify(path.join(repoRoot, "src/agent/mallocTrim.ts"))};
      const m = loadMallocTrim({ IMAGEPOLICY_MALLOC_TRIM: ${JSON.stringify(addon)} });
      if (!m.ok) throw new Error(m.reason);
      let all = [];
      for (let i = 0; i < 1536; i++) all.push(Buffer.allocUnsafeSlow(32 * 1024).fill(i & 255));
      const kept = all.filter((_, i) => i % 16 === 15);
      all = undefined;
      for (let i = 0; i < 3; i++) {
        globalThis.gc({ type: "major", execution: "sync" });
        await new Promise((r) => setTimeout(r, 50));
      }
      const before = process.memoryUsage.rss();
      const released = m.trim();
      const after = process.memoryUsage.rss();
      console.log(JSON.stringify({ released, before, after, kept: kept.length }));
      `,
    );
    const r = JSON.parse(out) as { released: boolean; before: number; after: number };
    expect(r.released).toBe(true);
    // 45 of the 48 MiB were freed; at least half of it must leave the resident set.
    expect(r.before - r.after).toBeGreaterThan(24 * 1024 * 1024);
  });
});

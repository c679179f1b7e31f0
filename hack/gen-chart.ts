// Generates the Helm chart charts/imagepolicy-operator from config/default (never edit the chart
// by hand): the objects come from `kubectl kustomize config/default`, the flags each workload can
// take from the commands' usage texts, their documentation from those texts and from the comments
// config/ writes above each flag (hack/chart/render.ts says what becomes a value).
//
//   node hack/gen-chart.ts           # rewrite charts/imagepolicy-operator
//   node hack/gen-chart.ts --check   # exit 1 when the chart is not what this script writes
//
// kubectl (with its built-in kustomize) comes from hack/tools/control-plane.sh.
// test/unit/chartDrift.test.ts fails when the chart differs from what this script writes.

import { execFile } from "node:child_process";
import { glob, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { AGENT_USAGE } from "../src/agent/config.ts";
import { USAGE as CONTROLLER_USAGE } from "../src/controller/flags.ts";
import { flagComments } from "./chart/comments.ts";
import { CHART_DIR, renderChart, type ChartInput } from "./chart/render.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");

export class GenChartError extends Error {
  override readonly name = "GenChartError";
}

/** The kubectl binary of hack/tools/control-plane.sh (built on first use). */
export async function kubectlPath(root = ROOT): Promise<string> {
  try {
    const { stdout } = await run(path.join(root, "hack/tools/control-plane.sh"), {
      maxBuffer: 1 << 20,
    });
    return path.join(stdout.trim(), "kubectl");
  } catch (cause) {
    throw new GenChartError("hack/tools/control-plane.sh failed (it builds kubectl)", { cause });
  }
}

/** What renderChart needs, read from the repository at `root`. */
export async function chartInput(root = ROOT): Promise<ChartInput> {
  const kubectl = await kubectlPath(root);
  let kustomizeOutput: string;
  try {
    ({ stdout: kustomizeOutput } = await run(
      kubectl,
      ["kustomize", path.join(root, "config/default")],
      { maxBuffer: 64 << 20 },
    ));
  } catch (cause) {
    throw new GenChartError("kubectl kustomize config/default failed", { cause });
  }
  const manifests: { path: string; text: string }[] = [];
  for await (const file of glob("config/**/*.yaml", { cwd: root })) {
    manifests.push({ path: file, text: await readFile(path.join(root, file), "utf8") });
  }
  manifests.sort((a, b) => (a.path < b.path ? -1 : 1));
  const pkg = z
    .looseObject({ version: z.string(), description: z.string() })
    .parse(JSON.parse(await readFile(path.join(root, "package.json"), "utf8")));
  return {
    kustomizeOutput,
    usages: new Map([
      ["controller", CONTROLLER_USAGE],
      ["agent", AGENT_USAGE],
    ]),
    flagComments: flagComments(manifests),
    version: pkg.version,
    description: pkg.description,
  };
}

/** The chart's files on disk, by path relative to `root`. */
export async function chartOnDisk(root = ROOT): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const entry of glob(`${CHART_DIR}/**/*`, { cwd: root, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.relative(root, path.join(entry.parentPath, entry.name));
    files.set(file, await readFile(path.join(root, file), "utf8"));
  }
  return files;
}

async function main(argv: readonly string[]): Promise<number> {
  const check = argv.includes("--check");
  const want = await renderChart(await chartInput());
  const have = await chartOnDisk();
  const stale = [...have.keys()].filter((f) => !want.has(f));
  const differ = [...want].filter(([f, text]) => have.get(f) !== text).map(([f]) => f);
  if (check) {
    for (const f of [...differ, ...stale]) console.error(`stale: ${f}`);
    return differ.length + stale.length === 0 ? 0 : 1;
  }
  for (const f of stale) await rm(path.join(ROOT, f));
  for (const f of differ) {
    await mkdir(path.dirname(path.join(ROOT, f)), { recursive: true });
    await writeFile(path.join(ROOT, f), want.get(f) ?? "");
  }
  console.error(`${CHART_DIR}: ${differ.length} written, ${stale.length} removed`);
  return 0;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}

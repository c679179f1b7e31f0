// Compiler benchmark on a generated large fixture (`npm run bench:compile`, hack/bench-compile):
// 200 ClusterImagePolicies covering exactly 500 distinct scopes and 2,000 ImagePolicies over 500
// namespaces; validate once, then combine cluster.json and every namespace file, then registries.d.
// Prints wall time per stage, peak RSS and output bytes as a table, then one JSON line.
// Target: under 2 s and 400 MiB.
//
// The fixture (bench/fixture.ts) is a pure function of the seed, so the output bytes are identical
// on every run.
// Iteration 1 of a fresh process is the cold run; the median is over all iterations.

import { createHash } from "node:crypto";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { AnyImagePolicy } from "../src/api/types.ts";
import { combine, indexLayer, type ScopeIndex } from "../src/compiler/combine.ts";
import { compileAll, outputFiles, type CompiledFiles } from "../src/compiler/compile.ts";
import { parseCrioVersion, type CrioVersion } from "../src/compiler/crioVersion.ts";
import { formatDiagnostic } from "../src/compiler/diagnostics.ts";
import { registriesD } from "../src/compiler/registriesD.ts";
import { secretLookupFrom, validate, type SecretLookup } from "../src/compiler/validate.ts";
import { parsePolicyJson } from "../src/policyjson/parse.ts";
import {
  at,
  BenchError,
  checkFixture,
  CLUSTER_POLICIES,
  CLUSTER_SCOPES,
  generateFixture,
  IMAGE_POLICIES,
  NAMESPACES,
} from "./fixture.ts";

const TARGET_MS = 2000;
const TARGET_MIB = 400;

// ---------------------------------------------------------------------------------------------
// Measurement

interface Sample {
  readonly validateMs: number;
  readonly registriesDMs: number;
  readonly combineMs: number;
  readonly totalMs: number;
  /** process.resourceUsage().maxRSS after this iteration: the process peak so far. */
  readonly peakRssMiB: number;
  readonly heapUsedMiB: number;
  readonly outputBytes: number;
  readonly files: number;
  readonly digest: string;
}

const MiB = 1024 * 1024;

/** The stages of compileAll, timed one by one (same calls, same order). */
function runOnce(
  objects: readonly AnyImagePolicy[],
  secrets: SecretLookup,
  target: CrioVersion,
): { sample: Sample; files: CompiledFiles; cluster: ScopeIndex } {
  const t0 = performance.now();
  const validated = validate(objects, secrets, target);
  const cluster = indexLayer(validated.cluster);
  const namespaces = new Map<string, ScopeIndex>();
  for (const [ns, layer] of validated.namespaces) namespaces.set(ns, indexLayer(layer));
  const t1 = performance.now();
  const reg = registriesD(cluster, [...namespaces.values()]);
  const t2 = performance.now();
  const clusterDoc = combine([cluster], target);
  if (!clusterDoc.ok) throw new BenchError(`cluster.json: ${clusterDoc.problems.join("; ")}`);
  const namespaceJson = new Map<string, string>();
  for (const [ns, index] of namespaces) {
    const doc = combine([cluster, index], target);
    if (!doc.ok) throw new BenchError(`${ns}.json: ${doc.problems.join("; ")}`);
    namespaceJson.set(ns, doc.text);
  }
  const t3 = performance.now();
  const heapUsedMiB = process.memoryUsage().heapUsed / MiB;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;

  const diagnostics = [
    ...validated.diagnostics.map(formatDiagnostic),
    ...reg.conflicts.map((c) => `lookaside conflict on ${JSON.stringify(c.scope)}`),
  ];
  if (diagnostics.length > 0) {
    throw new BenchError(`the fixture does not compile:\n${diagnostics.slice(0, 20).join("\n")}`);
  }
  const files: CompiledFiles = {
    clusterJson: clusterDoc.text,
    namespaceJson,
    registriesDYaml: reg.text,
  };
  const hash = createHash("sha256");
  let outputBytes = 0;
  const out = outputFiles(files);
  for (const [path, text] of out) {
    outputBytes += Buffer.byteLength(text);
    hash.update(`${path}\0${text}\0`);
  }
  const sample: Sample = {
    validateMs: t1 - t0,
    registriesDMs: t2 - t1,
    combineMs: t3 - t2,
    totalMs: t3 - t0,
    peakRssMiB,
    heapUsedMiB,
    outputBytes,
    files: out.length,
    digest: hash.digest("hex"),
  };
  return { sample, files, cluster };
}

/** Every document re-parsed strictly, and the timed stages equal to compileAll itself. */
function verify(
  files: CompiledFiles,
  digest: string,
  objects: readonly AnyImagePolicy[],
  secrets: SecretLookup,
  target: CrioVersion,
): void {
  for (const [path, text] of outputFiles(files)) {
    if (!path.endsWith(".json")) continue;
    try {
      parsePolicyJson(text);
    } catch (cause) {
      throw new BenchError(`${path} fails the strict parser`, { cause });
    }
  }
  const reference = compileAll(objects, secrets, target);
  if (reference.files === undefined) throw new BenchError("compileAll reported diagnostics");
  const hash = createHash("sha256");
  for (const [path, text] of outputFiles(reference.files)) hash.update(`${path}\0${text}\0`);
  if (hash.digest("hex") !== digest) {
    throw new BenchError("the timed stages do not produce what compileAll produces");
  }
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? at(s, mid) : (at(s, mid - 1) + at(s, mid)) / 2;
}

const ms = (v: number): string => `${v.toFixed(0)} ms`.padStart(9);
const mib = (v: number): string => `${v.toFixed(0)} MiB`.padStart(9);

function main(): void {
  const { values } = parseArgs({
    options: {
      iterations: { type: "string", default: "5" },
      seed: { type: "string", default: "20240601" },
    },
    strict: true,
  });
  const iterations = Number(values.iterations);
  const seed = Number(values.seed);
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new BenchError(`--iterations must be a positive integer, got ${values.iterations}`);
  }
  if (!Number.isInteger(seed))
    throw new BenchError(`--seed must be an integer, got ${values.seed}`);

  const target = parseCrioVersion("1.34");
  const secrets = secretLookupFrom([]);
  const g0 = performance.now();
  const fixture = generateFixture(seed);
  const generateMs = performance.now() - g0;

  const samples: Sample[] = [];
  let last: ReturnType<typeof runOnce> | undefined;
  for (let i = 0; i < iterations; i++) {
    const run = runOnce(fixture.objects, secrets, target);
    samples.push(run.sample);
    // Keep only the last output (for verification); earlier ones must not inflate the peak.
    last = i === iterations - 1 ? run : undefined;
  }
  if (last === undefined) throw new BenchError("no iteration ran");
  // Before verification allocates. A one-shot compile (the CLI) peaks at the cold figure; later
  // iterations add the garbage V8 has not collected yet, so this one only bounds a long process.
  const peakRssAllMiB = process.resourceUsage().maxRSS / 1024;
  const cold = at(samples, 0);
  for (const s of samples) {
    if (s.digest !== cold.digest) throw new BenchError("output differs between iterations");
  }
  checkFixture(fixture, last.cluster, last.files.namespaceJson.size);
  const v0 = performance.now();
  verify(last.files, cold.digest, fixture.objects, secrets, target);
  const verifyMs = performance.now() - v0;

  const med = (pick: (s: Sample) => number): number => median(samples.map(pick));
  const min = (pick: (s: Sample) => number): number => Math.min(...samples.map(pick));
  const rows: [string, (s: Sample) => number][] = [
    ["validate + index", (s) => s.validateMs],
    ["registries.d", (s) => s.registriesDMs],
    ["combine (all files)", (s) => s.combineMs],
    ["total", (s) => s.totalMs],
  ];
  const cpu = cpus();
  const lines = [
    `compile benchmark: ${CLUSTER_POLICIES} ClusterImagePolicies (${CLUSTER_SCOPES} scopes), ` +
      `${IMAGE_POLICIES} ImagePolicies in ${NAMESPACES} namespaces, ${fixture.keys} P-256 keys, ` +
      `CRI-O 1.34, seed ${seed}`,
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model.trim() ?? "unknown cpu"}; ` +
      `fixture generated in ${generateMs.toFixed(0)} ms, outputs verified in ${verifyMs.toFixed(0)} ms`,
    "",
    `${"stage".padEnd(20)}${"cold".padStart(9)}${"min".padStart(9)}${"median".padStart(9)}`,
    ...rows.map(
      ([label, pick]) => `${label.padEnd(20)}${ms(pick(cold))}${ms(min(pick))}${ms(med(pick))}`,
    ),
    `${"heap used after".padEnd(20)}${mib(cold.heapUsedMiB)}${"".padStart(9)}${mib(med((s) => s.heapUsedMiB))}`,
    `${"peak RSS".padEnd(20)}${mib(cold.peakRssMiB)}${"".padStart(9)}${mib(peakRssAllMiB)}  ` +
      `(cold: fresh process, one compile; right: process peak after ${iterations} iterations)`,
    "",
    `output: ${cold.files} files, ${cold.outputBytes} bytes (${(cold.outputBytes / MiB).toFixed(1)} MiB), sha256 ${cold.digest.slice(0, 16)}`,
    `target: total < ${TARGET_MS} ms: ${med((s) => s.totalMs) < TARGET_MS ? "ok" : "OVER"}; ` +
      `cold peak RSS < ${TARGET_MIB} MiB: ${cold.peakRssMiB < TARGET_MIB ? "ok" : "OVER"}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
  const round = (v: number): number => Math.round(v * 10) / 10;
  // The fields first (medians; peak RSS of the cold, one-compile run), then the rest.
  const summary = {
    validateMs: round(med((s) => s.validateMs)),
    combineMs: round(med((s) => s.combineMs)),
    totalMs: round(med((s) => s.totalMs)),
    peakRssMiB: round(cold.peakRssMiB),
    outputBytes: cold.outputBytes,
    files: cold.files,
    registriesDMs: round(med((s) => s.registriesDMs)),
    coldTotalMs: round(cold.totalMs),
    minTotalMs: round(min((s) => s.totalMs)),
    peakRssMiBAllIterations: round(peakRssAllMiB),
    heapUsedMiB: round(med((s) => s.heapUsedMiB)),
    iterations,
  };
  process.stdout.write(JSON.stringify(summary) + "\n");
}

main();

// Agent benchmark (hack/bench-agent): the REAL agent process against a REAL kube-apiserver with the
// large fixture's layers (bench/fixture.ts, published as the controller publishes them:
// bench/world.ts), on one simulated node. It measures, from /proc and the node's files:
//
// - first start on an empty node: time to the node status, CPU, files and bytes written;
// - idle RSS (after the first start, once quiet) and peak RSS (VmHWM over the whole run);
// - one namespace's ImagePolicy changes; nothing changes (a layer ConfigMap touched without a
//   new revision); a restart with current files; one ClusterImagePolicy changes: agent CPU
//   seconds, bytes read (rchar: files compared and API traffic), bytes passed to write(2)
//   (wchar), files replaced and their bytes;
// - with --cgroup, the whole run inside a cgroup v1 memory cgroup limited to the DaemonSet's
//   memory limit: a kill by the OOM killer fails the run.
//
// --tree runs the agent of another checkout (hack/bench-agent uses it for "before"); the
// DaemonSet of that tree says which NODE_OPTIONS / NODE_COMPILE_CACHE the agent runs with.
// Prints a table next to the targets and writes every figure as JSON (--out).

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { parseCrioVersion } from "../src/compiler/crioVersion.ts";
import { BenchError } from "./fixture.ts";
import {
  compareNodeFiles,
  delta,
  diffTrees,
  fmtBytes,
  fmtMiB,
  MemoryCgroup,
  procStats,
  repoRoot,
  shippedAgent,
  snapshot,
  startAgent,
  startBenchCluster,
  waitQuiet,
  waitReported,
  agentEnvironment,
  prepareNodeRoot,
  type AgentProcess,
  type ProcStats,
} from "./harness.ts";
import { expectedFiles, layerChanges, OPERATOR_NAMESPACE, publish, World } from "./world.ts";

const NODE = "bench-node";
const RUNTIME = "cri-o://1.34.0";
const TARGET = parseCrioVersion("1.34.0");

export interface StepFigures {
  readonly seconds: number;
  readonly cpuSeconds: number;
  /** The system part of cpuSeconds (absent in runs saved before it was kept). */
  readonly sysSeconds?: number;
  readonly readBytes: number;
  readonly writeBytes: number;
  readonly filesReplaced: number;
  readonly fileBytes: number;
  readonly filesRemoved: number;
  readonly replaced: readonly string[];
}

export interface AgentFigures {
  readonly tree: string;
  readonly env: Readonly<Record<string, string>>;
  readonly cgroupLimitBytes: number | undefined;
  readonly firstStart: StepFigures;
  readonly idleRssKiB: number;
  readonly peakRssKiB: number;
  readonly namespaceChange: StepFigures;
  readonly unchanged: StepFigures;
  readonly restart: StepFigures & { readonly idleRssKiB: number };
  readonly clusterChange: StepFigures;
  readonly nodeFiles: { readonly count: number; readonly bytes: number };
  readonly filesMatchCompiler: boolean;
  readonly cgroup?: {
    readonly maxUsageBytes: number;
    readonly failcnt: number;
    readonly oomKills: number;
  };
}

function step(
  before: ProcStats,
  after: ProcStats,
  ms: number,
  diff: ReturnType<typeof diffTrees>,
): StepFigures {
  const d = delta(before, after);
  return {
    seconds: ms / 1000,
    cpuSeconds: d.cpuSeconds,
    sysSeconds: d.sysSeconds,
    readBytes: d.rchar,
    writeBytes: d.wchar,
    filesReplaced: diff.changed.length,
    fileBytes: diff.changedBytes,
    filesRemoved: diff.removed.length,
    replaced: diff.changed.length <= 5 ? diff.changed : [...diff.changed.slice(0, 5), "..."],
  };
}

export async function runAgentBenchmark(options: {
  readonly tree: string;
  readonly dir: string;
  readonly seed: number;
  readonly cgroup: boolean;
  readonly log: (line: string) => void;
  /** Replaces the DaemonSet's NODE_OPTIONS (to try other settings). */
  readonly nodeOptions?: string | undefined;
  /** Stops after the idle measurement (to try settings quickly): the other rows stay empty. */
  readonly idleOnly?: boolean;
}): Promise<AgentFigures | undefined> {
  const { tree, dir, log } = options;
  const shipped = await shippedAgent(tree);
  // The compile cache is warmed with the NODE_OPTIONS the agent runs with: V8's flags name its
  // directory, so a cache warmed with others would be missed.
  const env = await agentEnvironment(
    tree,
    options.nodeOptions === undefined
      ? shipped.env
      : { ...shipped.env, NODE_OPTIONS: options.nodeOptions },
    path.join(dir, "compile-cache"),
  );
  const world = new World(options.seed);
  const p0 = publish(world.objects, TARGET, undefined);
  log(`starting a control plane in ${dir}`);
  const cluster = await startBenchCluster(path.join(dir, "cp"), tree);
  let cgroup: MemoryCgroup | undefined;
  const agents: AgentProcess[] = [];
  try {
    await cluster.applyLayers(layerChanges(undefined, p0));
    const kubeconfig = await cluster.addNode(NODE, RUNTIME);
    const root = path.join(dir, "root");
    await prepareNodeRoot(root);
    if (options.cgroup) {
      if (shipped.memoryLimitBytes === undefined)
        throw new BenchError("the DaemonSet sets no limit");
      cgroup = await MemoryCgroup.create("imagepolicy-bench-agent", shipped.memoryLimitBytes);
    }
    const start = (): AgentProcess => {
      const a = startAgent({
        tree,
        node: NODE,
        kubeconfig,
        root,
        logPath: path.join(dir, "agent.log"),
        env,
        ...(cgroup === undefined ? {} : { cgroup }),
      });
      agents.push(a);
      return a;
    };
    const context = async (): Promise<string> =>
      (await agents.at(-1)?.logTail()) ?? "(no agent log)";
    const waitNode = (revisions: Readonly<Record<string, string>>): Promise<number> =>
      waitReported(cluster.admin, NODE, revisions, 900_000, context);
    const measure = async (
      a: AgentProcess,
      what: string,
      change: () => Promise<Readonly<Record<string, string>> | undefined>,
      base?: ProcStats,
    ): Promise<StepFigures> => {
      const files0 = await snapshot(root);
      const s0 = base ?? (await procStats(a.pid));
      const t0 = Date.now();
      const want = await change();
      if (want !== undefined) await waitNode(want);
      else await delay(1000);
      const ms = Date.now() - t0;
      await waitQuiet(a.pid);
      const s1 = await procStats(a.pid);
      const figures = step(s0, s1, ms, diffTrees(files0, await snapshot(root)));
      log(
        `${what}: ${figures.seconds.toFixed(1)} s, ${figures.cpuSeconds.toFixed(2)} s CPU ` +
          `(${(figures.sysSeconds ?? 0).toFixed(2)} s system), ` +
          `${figures.filesReplaced} files replaced (${fmtBytes(figures.fileBytes)})`,
      );
      return figures;
    };
    const zero: ProcStats = {
      rssKiB: 0,
      hwmKiB: 0,
      cpuSeconds: 0,
      sysSeconds: 0,
      rchar: 0,
      wchar: 0,
    };

    // First start: everything is written.
    let agent = start();
    const firstStart = await measure(
      agent,
      "first start",
      () => Promise.resolve(p0.revisions),
      zero,
    );
    await delay(10_000);
    await waitQuiet(agent.pid);
    const idleRssKiB = (await procStats(agent.pid)).rssKiB;
    log(
      `idle RSS ${fmtMiB(idleRssKiB)}, peak so far ${fmtMiB((await procStats(agent.pid)).hwmKiB)}`,
    );
    if (options.idleOnly === true) return undefined;

    // One namespace's ImagePolicy.
    let current = p0;
    const namespaceChange = await measure(agent, "namespace change", async () => {
      world.editNamespace();
      const next = publish(world.objects, TARGET, current.plan);
      const changes = layerChanges(current, next);
      if (changes.length !== 1) throw new BenchError(`${changes.length} layers changed, not 1`);
      await cluster.applyLayers(changes);
      current = next;
      return next.revisions;
    });

    // A layer ConfigMap event without a new revision (what a resync or an unrelated metadata
    // change delivers).
    const unchanged = await measure(agent, "unchanged layers", async () => {
      for (const name of ["imagepolicy-layer-cluster", [...current.texts.keys()][1] ?? ""]) {
        await cluster.kubectl([
          "annotate",
          "configmap",
          name,
          "-n",
          OPERATOR_NAMESPACE,
          `bench.imagepolicy.dev/touched=${Date.now()}`,
          "--overwrite",
        ]);
      }
      return undefined;
    });
    const firstPeak = (await procStats(agent.pid)).hwmKiB;

    // Restart with current files: the new process from its first instruction.
    if ((await agent.stop()) !== 0)
      throw new BenchError(`the agent exited badly: ${await context()}`);
    const restartFiles = await snapshot(root);
    const t0 = Date.now();
    agent = start();
    await delay(1000);
    await waitQuiet(agent.pid, 3000);
    const restartStats = await procStats(agent.pid);
    const restartDiff = diffTrees(restartFiles, await snapshot(root));
    const restart = {
      ...step(zero, restartStats, Date.now() - t0, restartDiff),
      idleRssKiB: restartStats.rssKiB,
    };
    log(
      `restart: ${restart.cpuSeconds.toFixed(2)} s CPU, ${restart.filesReplaced} files replaced, ` +
        `RSS ${fmtMiB(restart.idleRssKiB)}`,
    );

    // One ClusterImagePolicy: every namespace file changes.
    const clusterChange = await measure(agent, "cluster change", async () => {
      world.editCluster();
      const next = publish(world.objects, TARGET, current.plan);
      await cluster.applyLayers(layerChanges(current, next));
      current = next;
      return next.revisions;
    });
    const peakRssKiB = Math.max(firstPeak, (await procStats(agent.pid)).hwmKiB);

    const expected = expectedFiles(world.objects, TARGET);
    const problems = await compareNodeFiles(root, expected);
    if (problems.length > 0) log(`node files differ: ${problems.slice(0, 5).join("; ")}`);
    let bytes = 0;
    for (const t of expected.values()) bytes += Buffer.byteLength(t);

    let cg: AgentFigures["cgroup"];
    if (cgroup !== undefined) {
      cg = {
        maxUsageBytes: await cgroup.maxUsageBytes(),
        failcnt: await cgroup.failcnt(),
        oomKills: await cgroup.oomKills(),
      };
    }
    if (!agent.running()) throw new BenchError(`the agent died: ${await context()}`);
    return {
      tree,
      env,
      cgroupLimitBytes: cgroup === undefined ? undefined : shipped.memoryLimitBytes,
      firstStart,
      idleRssKiB,
      peakRssKiB,
      namespaceChange,
      unchanged,
      restart,
      clusterChange,
      nodeFiles: { count: expected.size, bytes },
      filesMatchCompiler: problems.length === 0,
      ...(cg === undefined ? {} : { cgroup: cg }),
    };
  } finally {
    for (const a of agents) await a.stop("SIGTERM");
    await cluster.stop();
    await cgroup?.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const TARGETS = {
  idleMiB: 80,
  peakMiB: 160,
  clusterCpu: 2,
};

function verdict(ok: boolean): string {
  return ok ? "ok" : "MISSED";
}

export function report(after: AgentFigures, before: AgentFigures | undefined): string {
  const rows: [string, (f: AgentFigures) => string, string][] = [
    ["idle RSS", (f) => fmtMiB(f.idleRssKiB), `<= ${TARGETS.idleMiB} MiB`],
    ["idle RSS after a restart", (f) => fmtMiB(f.restart.idleRssKiB), `<= ${TARGETS.idleMiB} MiB`],
    ["peak RSS (VmHWM)", (f) => fmtMiB(f.peakRssKiB), `<= ${TARGETS.peakMiB} MiB`],
    ["first start: CPU", (f) => `${f.firstStart.cpuSeconds.toFixed(2)} s`, "-"],
    ["first start: to node status", (f) => `${f.firstStart.seconds.toFixed(1)} s`, "-"],
    ["first start: files, bytes", (f) => files(f.firstStart), "-"],
    ["namespace change: CPU", (f) => `${f.namespaceChange.cpuSeconds.toFixed(2)} s`, "-"],
    ["namespace change: files, bytes", (f) => files(f.namespaceChange), "1 policy file"],
    ["namespace change: bytes read", (f) => fmtBytes(f.namespaceChange.readBytes), "-"],
    ["namespace change: write(2) bytes", (f) => fmtBytes(f.namespaceChange.writeBytes), "-"],
    ["unchanged layers: CPU", (f) => `${f.unchanged.cpuSeconds.toFixed(2)} s`, "parsing only"],
    ["unchanged layers: files", (f) => files(f.unchanged), "none"],
    ["unchanged layers: bytes read", (f) => fmtBytes(f.unchanged.readBytes), "-"],
    ["restart, files current: CPU", (f) => `${f.restart.cpuSeconds.toFixed(2)} s`, "parsing only"],
    ["restart, files current: files", (f) => files(f.restart), "none"],
    ["restart: bytes read", (f) => fmtBytes(f.restart.readBytes), "-"],
    [
      "cluster change: CPU",
      (f) => `${f.clusterChange.cpuSeconds.toFixed(2)} s`,
      `<= ${TARGETS.clusterCpu} s`,
    ],
    ["cluster change: files, bytes", (f) => files(f.clusterChange), "tighten-only minimum"],
    ["cluster change: write(2) bytes", (f) => fmtBytes(f.clusterChange.writeBytes), "-"],
    ["cluster change: bytes read", (f) => fmtBytes(f.clusterChange.readBytes), "-"],
    ["cluster change: to node status", (f) => `${f.clusterChange.seconds.toFixed(1)} s`, "-"],
    [
      "policy files on the node",
      (f) => `${f.nodeFiles.count}, ${fmtBytes(f.nodeFiles.bytes)}`,
      "-",
    ],
    ["node files = offline compiler", (f) => String(f.filesMatchCompiler), "true"],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  const lines = [`${"".padEnd(width)}  ${"before".padStart(18)}  ${"after".padStart(18)}  target`];
  for (const [name, get, target] of rows) {
    lines.push(
      `${name.padEnd(width)}  ${(before === undefined ? "-" : get(before)).padStart(18)}  ${get(after).padStart(18)}  ${target}`,
    );
  }
  lines.push("");
  lines.push(
    `idle <= ${TARGETS.idleMiB} MiB: ${verdict(after.idleRssKiB / 1024 <= TARGETS.idleMiB && after.restart.idleRssKiB / 1024 <= TARGETS.idleMiB)}; ` +
      `peak <= ${TARGETS.peakMiB} MiB: ${verdict(after.peakRssKiB / 1024 <= TARGETS.peakMiB)}; ` +
      `cluster change <= ${TARGETS.clusterCpu} s CPU: ${verdict(after.clusterChange.cpuSeconds <= TARGETS.clusterCpu)}; ` +
      `namespace change touches one policy file: ${verdict(policyFiles(after.namespaceChange) === 1)}; ` +
      `unchanged and restart write nothing: ${verdict(after.unchanged.filesReplaced + after.restart.filesReplaced === 0)}`,
  );
  if (after.cgroup !== undefined) {
    lines.push(
      `cgroup v1 memory limit ${fmtBytes(after.cgroupLimitBytes ?? 0)} (the DaemonSet's): ` +
        `max usage ${fmtBytes(after.cgroup.maxUsageBytes)} (page cache included), ` +
        `limit hits ${after.cgroup.failcnt}, OOM kills ${after.cgroup.oomKills}: ${verdict(after.cgroup.oomKills === 0)}`,
    );
  }
  return lines.join("\n");
}

function policyFiles(s: StepFigures): number {
  return s.replaced.filter((p) => p.endsWith(".json")).length;
}

function files(s: StepFigures): string {
  return `${s.filesReplaced}, ${fmtBytes(s.fileBytes)}${s.filesRemoved > 0 ? ` (-${s.filesRemoved})` : ""}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tree: { type: "string" },
      "before-tree": { type: "string" },
      dir: { type: "string" },
      seed: { type: "string" },
      cgroup: { type: "boolean" },
      out: { type: "string" },
      keep: { type: "boolean" },
      "node-options": { type: "string" },
      "idle-only": { type: "boolean" },
    },
    strict: true,
  });
  const seed = Number(values.seed ?? "20240601");
  const dir = values.dir ?? (await mkdtemp(path.join(tmpdir(), "imagepolicy-bench-agent-")));
  const log = (line: string): void => {
    process.stderr.write(`[bench-agent ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  };
  const run = (tree: string, sub: string): Promise<AgentFigures | undefined> =>
    runAgentBenchmark({
      tree: path.resolve(tree),
      dir: path.join(dir, sub),
      seed,
      cgroup: values.cgroup === true,
      nodeOptions: values["node-options"],
      idleOnly: values["idle-only"] === true,
      log: (line) => {
        log(`${sub}: ${line}`);
      },
    });
  try {
    const beforeTree = values["before-tree"];
    const before = beforeTree === undefined ? undefined : await run(beforeTree, "before");
    const after = await run(values.tree ?? repoRoot, "after");
    if (after === undefined) return;
    if (values.out !== undefined) {
      await writeFile(values.out, `${JSON.stringify({ before, after })}\n`);
    }
    console.log(report(after, before));
    console.log(JSON.stringify({ before, after }));
  } finally {
    if (values.keep !== true && values.dir === undefined) {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

if (import.meta.main) await main();

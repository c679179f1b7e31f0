// Fault-injection benchmark (hack/bench-faults), not part of the default test run (a bounded
// version is in test/apiserver/faults.test.ts):
//
// 1. kill -9: the REAL agent process on one node, against a REAL kube-apiserver with the large
//    fixture's layers (bench/world.ts), is killed at random points while it moves the node from
//    one cluster layer to the next (and while it recovers from the previous kill), --kills times
//    (default 1,000). After each kill, with the agent dead: cluster.json exists, every file parses
//    strictly, and no namespace file allows what the cluster.json on disk refuses
//    (bench/invariants.ts). After the last kill of each change the restarted agent converges: the
//    files equal the offline compiler's output for the objects.
// 2. API server restarts and controller failovers: the REAL controller (two replicas, Lease
//    election) and --nodes agents, while a stream of --changes ImagePolicy and ClusterImagePolicy
//    changes is applied with kubectl; meanwhile kube-apiserver is restarted and the leading
//    controller killed (-9) at random. At the end every node's files equal the offline compiler's
//    output for the final objects.

import { mkdir, mkdtemp, readFile, rm, watch } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import type { AnyImagePolicy } from "../src/api/types.ts";
import { MANIFEST_FILE } from "../src/agent/hostPaths.ts";
import { parseManifest, type Manifest } from "../src/agent/manifest.ts";
import { realNodeFs } from "../src/agent/nodeFs.ts";
import { appliedRevisions } from "../src/agent/plan.ts";
import { parseCrioVersion } from "../src/compiler/crioVersion.ts";
import { Resources } from "../src/kube/index.ts";
import { freePort } from "../test/support/operatorProcess.ts";
import { BenchError, Rng } from "./fixture.ts";
import {
  agentEnvironment,
  compareNodeFiles,
  prepareNodeRoot,
  repoRoot,
  reportedRevisions,
  sameRevisions,
  shippedAgent,
  startAgent,
  startBenchCluster,
  startController,
  type AgentProcess,
  type BenchCluster,
} from "./harness.ts";
import { NodeInvariants } from "./invariants.ts";
import {
  acceptedImage,
  expectedFiles,
  layerChanges,
  OPERATOR_NAMESPACE,
  publish,
  World,
  type Published,
} from "./world.ts";

const TARGET = parseCrioVersion("1.34.0");
/** Kills per node between two cluster changes (each node restarts and is killed this often while
 * it moves to the new layer, then converges undisturbed). */
const KILLS_PER_ROUND = 4;

export interface KillFigures {
  readonly kills: number;
  /** Kills after which the node's manifest recorded neither the old layers nor the new ones (a
   * transition was cut). */
  readonly midTransition: number;
  readonly clusterChanges: number;
  /** Rounds that changed namespace layers alone (every third): the restarted agent replaces
   * those files in place, without marking them first (src/agent/manifest.ts). */
  readonly namespaceChanges: number;
  /** Kills after which a namespace file no longer had the identity the manifest recorded for it:
   * a replacement in place was cut (the next start must rewrite that file). */
  readonly inPlaceCuts: number;
  readonly violations: readonly string[];
  readonly convergedEveryTime: boolean;
  readonly distinctFilesChecked: number;
  readonly seconds: number;
}

/** kill -9 at random points of changes, `kills` in all, on `nodes` nodes at once (each node its
 * own agent and kill loop; the layers change for all in rounds: the cluster layer, and every
 * third round three namespace layers alone). */
export async function runKills(options: {
  readonly dir: string;
  readonly kills: number;
  readonly nodes: number;
  readonly seed: number;
  /** The world: the large fixture by default; tests pass a smaller one. */
  readonly world?: World;
  readonly log: (s: string) => void;
}): Promise<KillFigures> {
  const { dir, log } = options;
  const t0 = Date.now();
  const world = options.world ?? new World(options.seed);
  const rng = new Rng(options.seed ^ 0x4b111);
  const shipped = await shippedAgent(repoRoot);
  const env = await agentEnvironment(repoRoot, shipped.env, path.join(dir, "compile-cache"));
  const cluster = await startBenchCluster(path.join(dir, "cp"), repoRoot);
  const invariants = new NodeInvariants();
  const violations: string[] = [];
  const agents = new Map<string, AgentProcess>();
  let kills = 0;
  let mid = 0;
  let changes = 0;
  let namespaceChanges = 0;
  let inPlaceCuts = 0;
  let converged = true;
  try {
    let current: Published = publish(world.objects, TARGET, undefined);
    await cluster.applyLayers(layerChanges(undefined, current));
    const nodes: { name: string; root: string; kubeconfig: string }[] = [];
    for (let i = 0; i < options.nodes; i++) {
      const name = `fault-${i + 1}`;
      const root = path.join(dir, "nodes", name);
      await prepareNodeRoot(root);
      nodes.push({ name, root, kubeconfig: await cluster.addNode(name, "cri-o://1.34.0") });
    }
    const start = (n: (typeof nodes)[number]): AgentProcess => {
      const a = startAgent({
        tree: repoRoot,
        node: n.name,
        kubeconfig: n.kubeconfig,
        root: n.root,
        logPath: path.join(dir, `agent-${n.name}.log`),
        env,
      });
      agents.set(n.name, a);
      return a;
    };
    const converge = async (p: Published): Promise<void> => {
      await Promise.all(
        nodes.map(async (n) => {
          const a = start(n);
          try {
            await waitConverged(cluster, n.name, p, 900_000, a);
          } finally {
            await a.stop("SIGKILL");
          }
        }),
      );
    };
    // The first start, undisturbed; then one undisturbed change: how long a start and a
    // transition take here, with every node at work.
    await converge(current);
    let expected = expectedFiles(world.objects, TARGET);
    world.editCluster();
    let next = publish(world.objects, TARGET, current.plan);
    await cluster.applyLayers(layerChanges(current, next));
    const t1 = Date.now();
    await converge(next);
    const window = Date.now() - t1;
    log(
      `${nodes.length} nodes: a restart and a cluster change take ${window} ms here; killing at random within it`,
    );
    current = next;
    expected = expectedFiles(world.objects, TARGET);

    while (kills < options.kills) {
      const namespaceRound = (changes + namespaceChanges) % 3 === 2;
      if (namespaceRound) {
        for (let i = 0; i < 3; i++) world.editNamespace();
        namespaceChanges += 1;
      } else {
        world.editCluster();
        changes += 1;
      }
      const previous = current;
      const following = publish(world.objects, TARGET, current.plan);
      next = following;
      expected = expectedFiles(world.objects, TARGET);
      await cluster.applyLayers(layerChanges(current, next));
      current = next;
      await Promise.all(
        nodes.map(async (n) => {
          // The same number of kills on every node: a round lasts as long as its slowest node,
          // so uneven counts left the other nodes idle (1-6 kills per node ran ~12 s per kill).
          // A restart that replaces three namespace files takes part of that window.
          const delays = Array.from({ length: KILLS_PER_ROUND }, () =>
            Math.floor(rng.next() * window * (namespaceRound ? 0.6 : 1.2)),
          );
          for (const [i, d] of delays.entries()) {
            const a = start(n);
            // The first kill of a namespace round lands as the first policy file is renamed
            // into place: SIGSTOP at once, then SIGKILL (before the manifest records it, mostly;
            // random times rarely hit that window of a few milliseconds).
            if (namespaceRound && i === 0) {
              await stopAtFirstFile(a, path.join(n.root, "etc/crio/policies"), window * 2);
            } else await delay(d);
            await a.stop("SIGKILL");
            kills += 1;
            for (const p of await invariants.check(n.root))
              violations.push(`${n.name} kill ${kills}: ${p}`);
            // Where the kill left the node, by its manifest (what the agent recorded as done):
            // comparing every file with both compiler outputs cost ~8 s per kill here.
            const manifest = await readManifest(n.root);
            const recorded = manifest === undefined ? undefined : appliedRevisions(manifest);
            const cut =
              !sameRevisions(recorded, previous.revisions) &&
              !sameRevisions(recorded, following.revisions);
            if (cut) mid += 1;
            if (manifest !== undefined && (await replacedInPlace(n.root, manifest)))
              inPlaceCuts += 1;
          }
        }),
      );
      log(
        `${kills} kills (${mid} mid-transition, ${inPlaceCuts} in-place replacements cut), ${changes} cluster and ${namespaceChanges} namespace changes, ${violations.length} violations`,
      );
      // Every restarted agent converges with no lost change.
      try {
        await converge(current);
      } catch (err) {
        converged = false;
        violations.push(
          `round ${changes + namespaceChanges}: did not converge: ${(err as Error).message}`,
        );
      }
      for (const n of nodes) {
        const differ = await compareNodeFiles(n.root, expected);
        if (differ.length > 0) {
          converged = false;
          violations.push(
            `${n.name} round ${changes + namespaceChanges}: files differ from the offline compiler's: ${differ.slice(0, 3).join("; ")}`,
          );
        }
        for (const p of await invariants.check(n.root))
          violations.push(`${n.name} round ${changes + namespaceChanges}: ${p}`);
      }
    }
  } finally {
    await Promise.all([...agents.values()].map((a) => a.stop("SIGKILL")));
    await cluster.stop();
  }
  return {
    kills,
    midTransition: mid,
    clusterChanges: changes,
    namespaceChanges,
    inPlaceCuts,
    violations,
    convergedEveryTime: converged,
    distinctFilesChecked: invariants.parsed,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Stops `a` (SIGSTOP) as soon as a policy file is renamed into `dir`, or after `timeoutMs`. */
async function stopAtFirstFile(a: AgentProcess, dir: string, timeoutMs: number): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => {
    abort.abort();
  }, timeoutMs);
  try {
    for await (const e of watch(dir, { signal: abort.signal })) {
      const name = e.filename ?? "";
      if (name.endsWith(".json") && !name.startsWith(".")) {
        process.kill(a.pid, "SIGSTOP");
        return;
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) throw new BenchError(`watching ${dir}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a namespace file's identity differs from the one the manifest records for it. */
async function replacedInPlace(root: string, manifest: Manifest): Promise<boolean> {
  const fs = realNodeFs();
  for (const [ns, id] of Object.entries(manifest.identities)) {
    if ((await fs.identity(path.join(root, "etc/crio/policies", `${ns}.json`))) !== id) return true;
  }
  return false;
}

/** The node's manifest (what the agent recorded as done), or undefined without one. */
async function readManifest(root: string): Promise<Manifest | undefined> {
  const text = await readFile(path.join(root, "etc/crio/imagepolicy", MANIFEST_FILE), "utf8").catch(
    () => undefined,
  );
  return text === undefined ? undefined : parseManifest(text).manifest;
}

async function waitConverged(
  cluster: BenchCluster,
  node: string,
  p: Published,
  timeoutMs: number,
  agent: AgentProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await reportedRevisions(cluster.admin, node).catch(() => undefined);
    if (sameRevisions(got, p.revisions)) return;
    if (!agent.running()) throw new BenchError(`the agent exited: ${await agent.logTail(10)}`);
    if (Date.now() > deadline) throw new BenchError(`no convergence: ${await agent.logTail(10)}`);
    await delay(100);
  }
}

// ---------------------------------------------------------------------------------------------
// API server restarts and controller failovers

export interface ChaosFigures {
  readonly changes: number;
  readonly apiServerRestarts: number;
  readonly controllerKills: number;
  readonly nodes: number;
  readonly filesMatchCompiler: boolean;
  readonly problems: readonly string[];
  readonly convergeSeconds: number;
  readonly seconds: number;
}

export async function runChaos(options: {
  readonly dir: string;
  readonly nodes: number;
  readonly changes: number;
  readonly seed: number;
  readonly world?: World;
  readonly log: (s: string) => void;
}): Promise<ChaosFigures> {
  const { dir, log } = options;
  const t0 = Date.now();
  const world = options.world ?? new World(options.seed);
  const rng = new Rng(options.seed ^ 0xc4a05);
  const shipped = await shippedAgent(repoRoot);
  const env = await agentEnvironment(repoRoot, shipped.env, path.join(dir, "compile-cache"));
  const cluster = await startBenchCluster(path.join(dir, "cp"), repoRoot);
  const agents: AgentProcess[] = [];
  const controllers = new Map<string, AgentProcess>();
  const roots: string[] = [];
  let restarts = 0;
  let controllerKills = 0;
  const problems: string[] = [];
  const kubectl = async (args: readonly string[], stdin?: string): Promise<void> => {
    // The API server may be down: try again until it answers.
    for (let attempt = 0; ; attempt++) {
      try {
        await cluster.kubectl(args, stdin);
        return;
      } catch (cause) {
        if (attempt > 600)
          throw new BenchError(`kubectl ${args.join(" ")} kept failing`, { cause });
        await delay(500);
      }
    }
  };
  try {
    const namespaces = [
      ...new Set(
        world.objects.flatMap((o) =>
          o.metadata.namespace === undefined ? [] : [o.metadata.namespace],
        ),
      ),
    ];
    const applyAll = async (items: readonly unknown[]): Promise<void> => {
      for (let i = 0; i < items.length; i += 200) {
        await kubectl(
          ["apply", "--server-side", "--field-manager=bench", "-f", "-"],
          JSON.stringify({ apiVersion: "v1", kind: "List", items: items.slice(i, i + 200) }),
        );
      }
    };
    await applyAll(
      namespaces.map((name) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } })),
    );
    await applyAll(world.objects.map(forApply));
    const controllerKubeconfig = await cluster.cp.serviceAccountKubeconfig(
      OPERATOR_NAMESPACE,
      "imagepolicy-controller",
    );
    const pauseImage = acceptedImage(publish(world.objects, TARGET, undefined));
    const startReplica = async (identity: string): Promise<void> => {
      controllers.set(
        identity,
        startController({
          tree: repoRoot,
          kubeconfig: controllerKubeconfig,
          metricsPort: await freePort(),
          healthPort: await freePort(),
          logPath: path.join(dir, `controller-${identity}.log`),
          identity,
          pauseImage,
        }),
      );
    };
    await startReplica("replica-a");
    await startReplica("replica-b");
    for (let i = 0; i < options.nodes; i++) {
      const name = `chaos-${i + 1}`;
      const kc = await cluster.addNode(name, "cri-o://1.34.0");
      const root = path.join(dir, "nodes", name);
      await mkdir(root, { recursive: true });
      await prepareNodeRoot(root);
      roots.push(root);
      agents.push(
        startAgent({
          tree: repoRoot,
          node: name,
          kubeconfig: kc,
          root,
          logPath: path.join(dir, `agent-${name}.log`),
          env,
        }),
      );
    }

    // Chaos, concurrently with the stream of changes.
    const stream = { on: true };
    const chaos = (async (): Promise<void> => {
      while (stream.on) {
        await delay(3000 + rng.int(8000));
        if (!isOn(stream)) break;
        if (rng.chance(0.5)) {
          log("restarting kube-apiserver");
          await cluster.cp.stopApiServer();
          await delay(rng.int(4000));
          await cluster.cp.startApiServer();
          restarts += 1;
        } else {
          const leader = await leaderOf(cluster);
          const proc = leader === undefined ? undefined : controllers.get(leader);
          if (proc !== undefined && leader !== undefined) {
            log(`killing the leading controller ${leader}`);
            await proc.stop("SIGKILL");
            controllerKills += 1;
            await delay(rng.int(3000));
            await startReplica(leader);
          }
        }
      }
    })();
    for (let i = 0; i < options.changes; i++) {
      if (rng.chance(0.3)) world.editCluster();
      else world.editNamespace();
      await kubectl(
        ["apply", "--server-side", "--field-manager=bench", "-f", "-"],
        JSON.stringify(forApply(world.lastEdited())),
      );
      await delay(rng.int(2500));
    }
    stream.on = false;
    await chaos;
    log(
      `${options.changes} changes applied (${restarts} API server restarts, ${controllerKills} controller kills); waiting for the nodes`,
    );
    const expected = expectedFiles(world.objects, TARGET);
    const t1 = Date.now();
    let match = false;
    while (Date.now() - t1 < 1_200_000) {
      const differ = await Promise.all(roots.map((r) => compareNodeFiles(r, expected)));
      if (differ.every((d) => d.length === 0)) {
        match = true;
        break;
      }
      await delay(1000);
    }
    const convergeSeconds = (Date.now() - t1) / 1000;
    if (!match) {
      for (const [i, r] of roots.entries()) {
        const d = await compareNodeFiles(r, expected);
        if (d.length > 0) problems.push(`node ${i + 1}: ${d.slice(0, 3).join("; ")}`);
      }
    }
    const invariants = new NodeInvariants();
    for (const r of roots) problems.push(...(await invariants.check(r)));
    return {
      changes: options.changes,
      apiServerRestarts: restarts,
      controllerKills,
      nodes: options.nodes,
      filesMatchCompiler: match,
      problems,
      convergeSeconds,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await Promise.all(agents.map((a) => a.stop("SIGKILL")));
    await Promise.all([...controllers.values()].map((c) => c.stop("SIGKILL")));
    await cluster.stop();
  }
}

async function leaderOf(cluster: BenchCluster): Promise<string | undefined> {
  const lease = await cluster.admin
    .get(Resources.leases, { name: "imagepolicy-controller", namespace: OPERATOR_NAMESPACE })
    .catch(() => undefined);
  const spec: unknown = lease?.["spec"];
  const holder: unknown =
    typeof spec === "object" && spec !== null ? Reflect.get(spec, "holderIdentity") : undefined;
  return typeof holder === "string" && holder !== "" ? holder : undefined;
}

/** Read through a call: TypeScript narrows a field after one check, but it changes. */
function isOn(s: { readonly on: boolean }): boolean {
  return s.on;
}

function forApply(o: AnyImagePolicy): unknown {
  const { generation: _g, ...metadata } = o.metadata;
  return { ...o, metadata };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kills: { type: "string" },
      nodes: { type: "string" },
      "chaos-nodes": { type: "string" },
      changes: { type: "string" },
      seed: { type: "string" },
      only: { type: "string" },
      dir: { type: "string" },
      namespaces: { type: "string" },
    },
    strict: true,
  });
  const seed = Number(values.seed ?? "20240601");
  // A smaller world (fewer namespaces, the whole cluster layer) for a quick run.
  const world = (): World | undefined =>
    values.namespaces === undefined
      ? undefined
      : new World(seed, { namespaces: Number(values.namespaces) });
  const dir = values.dir ?? (await mkdtemp(path.join(tmpdir(), "imagepolicy-bench-faults-")));
  const log = (line: string): void => {
    process.stderr.write(`[bench-faults ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  };
  let failed = false;
  try {
    if (values.only !== "chaos") {
      const k = await runKills({
        dir: path.join(dir, "kills"),
        kills: Number(values.kills ?? "1000"),
        nodes: Number(values.nodes ?? "4"),
        seed,
        log,
      });
      console.log(
        `kill -9 during changes: ${k.kills} kills over ${k.clusterChanges} cluster changes and ${k.namespaceChanges} of namespace layers alone, ` +
          `${k.midTransition} in the middle of a transition, ${k.inPlaceCuts} in a replacement in place; ${k.distinctFilesChecked} distinct files parsed; ${k.seconds.toFixed(0)} s`,
      );
      console.log(
        `  invariants violated: ${k.violations.length} (target 0); converged after every change to the offline compiler's files: ${k.convergedEveryTime}`,
      );
      for (const v of k.violations.slice(0, 20)) console.log(`  ${v}`);
      failed ||= k.violations.length > 0 || !k.convergedEveryTime;
    }
    if (values.only !== "kills") {
      const w = world();
      const c = await runChaos({
        dir: path.join(dir, "chaos"),
        nodes: Number(values["chaos-nodes"] ?? "3"),
        changes: Number(values.changes ?? "40"),
        seed,
        log,
        ...(w === undefined ? {} : { world: w }),
      });
      console.log(
        `API server restarts and controller failovers (large fixture, ${c.nodes} nodes, 2 controller replicas): ` +
          `${c.changes} changes, ${c.apiServerRestarts} API server restarts, ${c.controllerKills} leader kills; ${c.seconds.toFixed(0)} s`,
      );
      console.log(
        `  final node files = offline compiler's output for the final objects: ${c.filesMatchCompiler} ` +
          `(${c.convergeSeconds.toFixed(0)} s after the last change); problems: ${c.problems.length}`,
      );
      for (const p of c.problems.slice(0, 20)) console.log(`  ${p}`);
      failed ||= !c.filesMatchCompiler || c.problems.length > 0;
    }
  } finally {
    if (values.dir === undefined) await rm(dir, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

if (import.meta.main) await main();

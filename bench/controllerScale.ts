// The controller at the designed scale against a REAL API server (hack/bench-controller-scale):
// a local control plane (test/support/controlPlane.ts) with config/default installed, the large
// fixture (bench/fixture.ts: 200 ClusterImagePolicies, 2,000 ImagePolicies in 500 namespaces),
// 5,000 Node objects and their ImagePolicyNodeStatus reports written by a simulated reporter (this
// process, with the admin credentials: what 5,000 agents would write, not 5,000 agent processes),
// and the controller as a real process (`imagepolicy controller`) with its ServiceAccount's token.
//
// Phases, each measured on the controller process: status reconciles and status writes (its
// /metrics), layers reconciles, CPU seconds (utime + stime of /proc/<pid>/stat), peak RSS
// (VmHWM, reset at the start of each phase through /proc/<pid>/clear_refs), and the time from the
// change to every policy status being correct (observedGeneration, rollout revision and node
// counts equal to what the reporter wrote):
// - start: the controller starts with every object and report in place (restart);
// - cip: one ClusterImagePolicy changes; the reporter writes the new cluster revision to every
//   node's report, in random node order;
// - ip: one ImagePolicy changes; the reporter writes that namespace's new revision everywhere;
// - wave: every node re-reports what it reported (an agent restart: new conditions and
//   lastUpdateTime), nothing a policy status depends on.
// --controller-root DIR runs the controller of another checkout (e.g. main, for "before").
// The controller runs with the Deployment's literal environment (config/manager/deployment.yaml:
// NODE_OPTIONS, ...); --node-options replaces its NODE_OPTIONS. With --cgroup it runs inside a
// cgroup v1 memory cgroup limited to the Deployment's memory limit, as the kubelet would run it:
// the cgroup's peak usage is reported per phase, and an OOM kill fails the run.
// Prints one line per figure next to its target, then one JSON line.

import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { z } from "zod";
import type { AnyImagePolicy } from "../src/api/types.ts";
import { startControlPlane } from "../test/support/controlPlane.ts";
import { freePort } from "../test/support/operatorProcess.ts";
import { waitFor } from "../test/support/waitFor.ts";
import { BenchError, generateFixture, Rng } from "./fixture.ts";
import { MemoryCgroup, shippedController } from "./harness.ts";
import {
  ROLLOUT_BACKOFF_MS,
  ROLLOUT_MAX_BACKOFF_MS,
  ROLLOUT_PROGRESS_STEPS,
} from "../src/controller/controller.ts";

const repo = path.resolve(import.meta.dirname, "..");
const NS = "imagepolicy-system";
const GROUP = "/apis/imagepolicy.dev/v1alpha1";
const CLUSTER_LAYER = "imagepolicy-layer-cluster";
const NS_LAYER_PREFIX = "imagepolicy-layer-ns-";
const REVISION = "imagepolicy.dev/revision";
const NOT_ENFORCING = 0.01;

/** Targets (docs/scale.md, "Controller"). The cip and ip phases' status work is bounded per
 * object of the changed layer (rolloutBound in main): their 50 is what they may cost besides. */
const TARGETS = {
  cip: { statusReconciles: 50, statusWrites: 50, cpuSeconds: 15, settleSeconds: 10 },
  ip: { statusReconciles: 50, statusWrites: 50, cpuSeconds: 5, settleSeconds: 10 },
  wave: { statusReconciles: 10, statusWrites: 0, cpuSeconds: 5, settleSeconds: 10 },
  start: { statusReconciles: 2_300, statusWrites: 0, cpuSeconds: 30, settleSeconds: 60 },
} as const;

const { values } = parseArgs({
  options: {
    "controller-root": { type: "string", default: repo },
    nodes: { type: "string", default: "5000" },
    seed: { type: "string", default: "20240601" },
    concurrency: { type: "string", default: "16" },
    keep: { type: "boolean", default: false },
    cgroup: { type: "boolean", default: false },
    "node-options": { type: "string" },
  },
  strict: true,
});
const NODES = Number(values.nodes);
const SEED = Number(values.seed);
const CONCURRENCY = Number(values.concurrency);
const CONTROLLER_ROOT = path.resolve(values["controller-root"]);

// ---------------------------------------------------------------------------------------------
// A small HTTPS client with the admin kubeconfig's client certificate (JSON in, JSON out)

const kubeconfigSchema = z.looseObject({
  clusters: z.array(
    z.looseObject({
      cluster: z.looseObject({ server: z.string(), "certificate-authority-data": z.string() }),
    }),
  ),
  users: z.array(
    z.looseObject({
      user: z.looseObject({
        "client-certificate-data": z.string(),
        "client-key-data": z.string(),
      }),
    }),
  ),
});

interface Reply {
  readonly status: number;
  readonly body: unknown;
}

class Api {
  readonly #server: URL;
  readonly #agent: Agent;

  private constructor(server: URL, agent: Agent) {
    this.#server = server;
    this.#agent = agent;
  }

  static async fromKubeconfig(file: string): Promise<Api> {
    const k = kubeconfigSchema.parse(JSON.parse(await readFile(file, "utf8")));
    const cluster = k.clusters[0]?.cluster;
    const user = k.users[0]?.user;
    if (cluster === undefined || user === undefined) throw new BenchError(`${file}: no cluster`);
    const b = (s: string): Buffer => Buffer.from(s, "base64");
    return new Api(
      new URL(cluster.server),
      new Agent({
        keepAlive: true,
        maxSockets: CONCURRENCY + 4,
        ca: b(cluster["certificate-authority-data"]),
        cert: b(user["client-certificate-data"]),
        key: b(user["client-key-data"]),
      }),
    );
  }

  request(
    method: string,
    pathname: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<Reply> {
    const url = new URL(pathname, this.#server);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent: this.#agent,
          headers: {
            accept: "application/json",
            ...(data === undefined
              ? {}
              : { "content-type": contentType, "content-length": data.length }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // keep the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  }

  /** The request, failing unless the answer is 2xx (or one of `ok`). */
  async must(
    method: string,
    pathname: string,
    body?: unknown,
    contentType?: string,
    ok: readonly number[] = [],
  ): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.request(method, pathname, body, contentType);
      if ((r.status >= 200 && r.status < 300) || ok.includes(r.status)) return r.body;
      // The API server sheds load with 429 and a busy etcd answers 5xx: retry those.
      if ((r.status === 429 || r.status >= 500) && attempt < 20) {
        await delay(200 * (attempt + 1));
        continue;
      }
      throw new BenchError(
        `${method} ${pathname}: HTTP ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`,
      );
    }
  }

  destroy(): void {
    this.#agent.destroy();
  }
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await fn(item);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

// ---------------------------------------------------------------------------------------------
// The controller process

interface Proc {
  readonly pid: number;
  readonly metricsPort: number;
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

function startController(
  kubeconfig: string,
  logPath: string,
  metricsPort: number,
  health: number,
  env: Readonly<Record<string, string>>,
  cgroup: MemoryCgroup | undefined,
): Proc {
  const node = path.join(CONTROLLER_ROOT, "node_modules/.bin/node");
  const main = path.join(CONTROLLER_ROOT, "src/cli/main.ts");
  const fd = openSync(logPath, "a");
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  if (env["NODE_OPTIONS"] === undefined) delete childEnv["NODE_OPTIONS"];
  // The Deployment's flags (config/manager/deployment.yaml), addresses on loopback.
  const child = spawn(
    "setpriv",
    [
      "--pdeathsig",
      "SIGKILL",
      "--",
      ...(cgroup?.joinArgs() ?? []),
      node,
      main,
      "controller",
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${NS}`,
      "--operator-image=ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0",
      "--pause-image=registry.k8s.io/pause:3.10",
      "--protected-namespace=kube-system",
      "--namespace-max-policies=256",
      "--namespace-max-scopes=1024",
      "--namespace-max-bytes=262144",
      `--metrics-addr=127.0.0.1:${String(metricsPort)}`,
      `--health-addr=127.0.0.1:${String(health)}`,
      "--log-level=warn",
    ],
    { cwd: CONTROLLER_ROOT, env: childEnv, stdio: ["ignore", fd, fd] },
  );
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new BenchError("the controller did not start");
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return {
    pid,
    metricsPort,
    exited,
    stop: async () => {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** utime + stime of a process, in seconds (clock ticks of 1/100 s, as on Linux x86-64). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${String(pid)}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function memory(pid: number): Promise<{ rssMiB: number; hwmMiB: number }> {
  const status = await readFile(`/proc/${String(pid)}/status`, "utf8");
  const kb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

/** Resets VmHWM to the current RSS (proc(5), clear_refs value 5). */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${String(pid)}/clear_refs`, "5");
}

interface Counters {
  readonly statusReconciles: number;
  readonly layersReconciles: number;
  readonly otherReconciles: number;
  readonly statusWrites: number;
}

/** Whether the controller holds the leader Lease (its is_leader gauge). */
async function leading(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${String(port)}/metrics`);
  return /^imagepolicy_controller_is_leader 1$/m.test(await res.text());
}

async function counters(port: number): Promise<Counters> {
  const res = await fetch(`http://127.0.0.1:${String(port)}/metrics`);
  const text = await res.text();
  let status = 0;
  let layers = 0;
  let other = 0;
  let writes = 0;
  for (const line of text.split("\n")) {
    const m = /^imagepolicy_controller_reconcile_total\{([^}]*)\} (\S+)$/.exec(line);
    if (m !== null) {
      const kind = /kind="([^"]*)"/.exec(m[1] ?? "")?.[1];
      const v = Number(m[2]);
      if (kind === "status") status += v;
      else if (kind === "layers") layers += v;
      else other += v;
    }
    const w = /^imagepolicy_controller_status_writes_total (\S+)$/.exec(line);
    if (w !== null) writes = Number(w[1]);
  }
  return {
    statusReconciles: status,
    layersReconciles: layers,
    otherReconciles: other,
    statusWrites: writes,
  };
}

// ---------------------------------------------------------------------------------------------
// What the reporter wrote, and what every status must then say

interface NodeState {
  readonly name: string;
  readonly uid: string;
  readonly enforcing: boolean;
  cluster: string;
  readonly namespaces: Map<string, string>;
}

interface Layers {
  readonly cluster: string;
  readonly namespaces: ReadonlyMap<string, string>;
}

const configMapSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
});
const listSchema = z.looseObject({ items: z.array(z.unknown()) });

async function publishedLayers(api: Api): Promise<Layers | undefined> {
  const list = listSchema.parse(
    await api.must(
      "GET",
      `/api/v1/namespaces/${NS}/configmaps?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dimagepolicy-operator`,
    ),
  );
  let cluster: string | undefined;
  const namespaces = new Map<string, string>();
  for (const item of list.items) {
    const cm = configMapSchema.parse(item);
    const rev = cm.metadata.annotations?.[REVISION];
    if (rev === undefined) continue;
    if (cm.metadata.name === CLUSTER_LAYER) cluster = rev;
    else if (cm.metadata.name.startsWith(NS_LAYER_PREFIX)) {
      namespaces.set(cm.metadata.name.slice(NS_LAYER_PREFIX.length), rev);
    }
  }
  return cluster === undefined ? undefined : { cluster, namespaces };
}

const policyStatusSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    generation: z.number().optional(),
  }),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      conditions: z
        .array(z.looseObject({ type: z.string(), status: z.string(), reason: z.string() }))
        .optional(),
      rollout: z
        .looseObject({
          nodesApplied: z.number(),
          nodesEnforcing: z.number(),
          nodesTotal: z.number(),
          revision: z.string(),
        })
        .optional(),
    })
    .optional(),
});

/** Why the statuses are not all correct yet (undefined: they are). */
/** The first object of `plural` (sorted by name) whose current generation is published (Compiled
 * True) and that trusts a public key: adding a scope to it changes its layer. The fixture also
 * holds policies the controller refuses (a deny-all that would reject the pause image), and a
 * change to one of those publishes nothing. */
async function publishedKeyPolicy(
  api: Api,
  plural: "clusterimagepolicies" | "imagepolicies",
  objects: readonly AnyImagePolicy[],
): Promise<AnyImagePolicy> {
  const list = listSchema.parse(await api.must("GET", `${GROUP}/${plural}`));
  const compiled = new Set<string>();
  for (const item of list.items) {
    const p = policyStatusSchema.parse(item);
    const c = p.status?.conditions?.find((x) => x.type === "Compiled");
    if (c?.status === "True" && p.status?.observedGeneration === p.metadata.generation) {
      compiled.add(`${p.metadata.namespace ?? ""}/${p.metadata.name}`);
    }
  }
  const kind = plural === "clusterimagepolicies" ? "ClusterImagePolicy" : "ImagePolicy";
  const pick = objects
    .filter(
      (o) =>
        o.kind === kind &&
        o.spec.policy.rootOfTrust.policyType === "PublicKey" &&
        compiled.has(`${o.kind === "ImagePolicy" ? o.metadata.namespace : ""}/${o.metadata.name}`),
    )
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))[0];
  if (pick === undefined) throw new BenchError(`no published ${kind} with a public key`);
  return pick;
}

/** Why `o` at its new generation publishes nothing (the controller refused it), or undefined. */
async function refusal(api: Api, path: string): Promise<string | undefined> {
  const p = policyStatusSchema.parse(await api.must("GET", path));
  const c = p.status?.conditions?.find((x) => x.type === "Compiled");
  return p.status?.observedGeneration === p.metadata.generation && c?.status === "False"
    ? `${p.metadata.name}: ${c.reason}`
    : undefined;
}

async function statusProblem(
  api: Api,
  layers: Layers,
  nodes: readonly NodeState[],
): Promise<string | undefined> {
  const tally = new Map<string, { applied: number; enforcing: number }>();
  const count = (key: string, n: NodeState): void => {
    const t = tally.get(key) ?? { applied: 0, enforcing: 0 };
    t.applied += 1;
    if (n.enforcing) t.enforcing += 1;
    tally.set(key, t);
  };
  for (const n of nodes) {
    if (n.cluster === layers.cluster) count("", n);
    for (const [ns, rev] of n.namespaces) if (layers.namespaces.get(ns) === rev) count(ns, n);
  }
  let accepted = 0;
  for (const plural of ["clusterimagepolicies", "imagepolicies"]) {
    const list = listSchema.parse(await api.must("GET", `${GROUP}/${plural}`));
    for (const item of list.items) {
      const p = policyStatusSchema.parse(item);
      const what = `${plural} ${p.metadata.namespace ?? ""}/${p.metadata.name}`;
      const s = p.status;
      if (s?.observedGeneration !== p.metadata.generation) return `${what}: observedGeneration`;
      const compiled = s?.conditions?.find((c) => c.type === "Compiled");
      if (compiled?.status !== "True") continue;
      accepted += 1;
      const layer = p.metadata.namespace ?? "";
      const revision = layer === "" ? layers.cluster : layers.namespaces.get(layer);
      const r = s?.rollout;
      const want = tally.get(layer) ?? { applied: 0, enforcing: 0 };
      if (r === undefined) return `${what}: no rollout`;
      if (r.revision !== revision)
        return `${what}: rollout revision ${r.revision}, layer ${String(revision)}`;
      if (r.nodesTotal !== nodes.length) return `${what}: nodesTotal ${r.nodesTotal}`;
      if (r.nodesApplied !== want.applied || r.nodesEnforcing !== want.enforcing) {
        return `${what}: rollout ${r.nodesApplied}/${r.nodesEnforcing}, reported ${want.applied}/${want.enforcing}`;
      }
    }
  }
  return accepted === 0 ? "no policy accepted" : undefined;
}

function appliedRevisions(n: NodeState): Record<string, string> {
  const out: Record<string, string> = { "cluster.json": n.cluster };
  for (const [ns, rev] of n.namespaces) out[`${ns}.json`] = rev; // short, as the agent reports
  return out;
}

function reportStatus(n: NodeState, at: string, generation: number): Record<string, unknown> {
  return {
    runtime: { name: "cri-o", version: "1.34.0" },
    enforcing: n.enforcing,
    enforcingReason: n.enforcing ? "CRI-O reads the files" : "CrioNotConfigured",
    appliedRevisions: appliedRevisions(n),
    lastError: "",
    lastUpdateTime: at,
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "Applied",
        message: `applied (agent generation ${String(generation)})`,
        lastTransitionTime: at,
      },
    ],
  };
}

const nodeStatusPath = (name: string): string => `${GROUP}/imagepolicynodestatuses/${name}/status`;
const MERGE = "application/merge-patch+json";

// ---------------------------------------------------------------------------------------------
// Main

interface PhaseResult {
  readonly name: string;
  readonly statusReconciles: number;
  readonly layersReconciles: number;
  readonly otherReconciles: number;
  readonly statusWrites: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
  readonly rssEndMiB: number;
  /** The cgroup's peak usage in the phase (--cgroup), page cache included. */
  readonly cgroupPeakMiB: number | undefined;
  /** From the change to every status correct. */
  readonly correctSeconds: number;
  /** From the reporter's last write to every status correct. */
  readonly afterLastReportSeconds: number;
  readonly reporterSeconds: number;
}

/** How many times the controller may write one object's status during a rollout of its layer
 * lasting `seconds` (src/controller/controller.ts): once for the new revision, once per progress
 * step (a new quarter of the nodes, no sooner than the backoff allows: 5 s, then doubling, at
 * most 60 s apart), once at its end. The reporter writes without pause, so no quiet write. */
function rolloutWritesPerObject(seconds: number): number {
  let writes = 2;
  let backoff = ROLLOUT_BACKOFF_MS;
  for (let at = backoff; at < seconds * 1000; at += backoff) {
    writes += 1;
    backoff = Math.min(2 * backoff, ROLLOUT_MAX_BACKOFF_MS);
  }
  return Math.min(writes, ROLLOUT_PROGRESS_STEPS + 1);
}

/** The published (Compiled True, current generation) ImagePolicies of `namespace`, or the
 * ClusterImagePolicies: the objects whose status shows that layer's rollout. */
async function publishedIn(api: Api, namespace: string | undefined): Promise<number> {
  const list = listSchema.parse(
    await api.must(
      "GET",
      namespace === undefined
        ? `${GROUP}/clusterimagepolicies`
        : `${GROUP}/namespaces/${namespace}/imagepolicies`,
    ),
  );
  let n = 0;
  for (const item of list.items) {
    const p = policyStatusSchema.parse(item);
    const c = p.status?.conditions?.find((x) => x.type === "Compiled");
    if (c?.status === "True" && p.status?.observedGeneration === p.metadata.generation) n += 1;
  }
  return n;
}

const isoNow = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

async function main(): Promise<void> {
  for (const [flag, v] of [
    ["--nodes", NODES],
    ["--seed", SEED],
    ["--concurrency", CONCURRENCY],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new BenchError(`${flag} must be a positive integer`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-bench-scale-"));
  const log = (s: string): void => {
    process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  };
  log(`work dir ${dir}; controller from ${CONTROLLER_ROOT}`);
  const shipped = await shippedController(CONTROLLER_ROOT);
  const env: Record<string, string> = { ...shipped.env };
  if (values["node-options"] !== undefined) env["NODE_OPTIONS"] = values["node-options"];
  const limitBytes = shipped.memoryLimitBytes;
  if (limitBytes === undefined) throw new BenchError("the Deployment sets no memory limit");
  const limitMiB = limitBytes / 1024 ** 2;
  log(`NODE_OPTIONS=${env["NODE_OPTIONS"] ?? "(none)"}; Deployment memory limit ${limitMiB} MiB`);
  let cgroup: MemoryCgroup | undefined;
  if (values.cgroup) {
    cgroup = await MemoryCgroup.create("imagepolicy-bench-controller", limitBytes);
    log(`controller in cgroup ${cgroup.dir} (limit ${limitMiB} MiB)`);
  }
  const launch = (logPath: string, metricsPort: number, healthPort: number, kc: string): Proc =>
    startController(kc, logPath, metricsPort, healthPort, env, cgroup);
  /** `work`, failing as soon as the controller exits (an OOM kill under --cgroup). */
  const alive = async <T>(c: Proc, work: Promise<T>): Promise<T> => {
    const died = c.exited.then(async (code) => {
      const kills = (await cgroup?.oomKills()) ?? 0;
      throw new BenchError(
        `the controller exited (code ${String(code)})` +
          (kills > 0 ? `: OOM-killed in its ${String(limitMiB)} MiB cgroup` : ""),
      );
    });
    return Promise.race([work, died]);
  };
  const cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  const api = await Api.fromKubeconfig(cp.kubeconfigPath);
  let controller: Proc | undefined;
  try {
    const k = await cp.kubectl(["apply", "--server-side", "-k", path.join(repo, "config/default")]);
    if (k.code !== 0) throw new BenchError(`kubectl apply -k config/default: ${k.stderr}`);
    await cp.kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);

    // The fixture: namespaces, policies, Nodes.
    const fixture = generateFixture(SEED);
    const namespaces = [
      ...new Set(
        fixture.objects.flatMap((o) => (o.kind === "ImagePolicy" ? [o.metadata.namespace] : [])),
      ),
    ].sort();
    log(
      `creating ${namespaces.length} namespaces, ${fixture.objects.length} policies, ${NODES} nodes`,
    );
    await pool(namespaces, CONCURRENCY, async (ns) => {
      await api.must(
        "POST",
        "/api/v1/namespaces",
        { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
        undefined,
        [409],
      );
    });
    await pool(fixture.objects, CONCURRENCY, async (o) => {
      const where =
        o.kind === "ClusterImagePolicy"
          ? `${GROUP}/clusterimagepolicies`
          : `${GROUP}/namespaces/${o.metadata.namespace}/imagepolicies`;
      await api.must("POST", where, o);
    });
    const rng = new Rng(SEED ^ 0x7e57);
    const nodeNames = Array.from(
      { length: NODES },
      (_, i) => `node-${String(i + 1).padStart(5, "0")}`,
    );
    const uids = new Map<string, string>();
    await pool(nodeNames, CONCURRENCY, async (name) => {
      const created = z.looseObject({ metadata: z.looseObject({ uid: z.string() }) }).parse(
        await api.must("POST", "/api/v1/nodes", {
          apiVersion: "v1",
          kind: "Node",
          metadata: { name },
        }),
      );
      uids.set(name, created.metadata.uid);
      await api.must(
        "PATCH",
        `/api/v1/nodes/${name}/status`,
        { status: { nodeInfo: { containerRuntimeVersion: "cri-o://1.34.0" } } },
        MERGE,
      );
    });

    // The controller's ServiceAccount (config/rbac), as the Deployment runs it.
    const kubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller");
    const logPath = path.join(dir, "controller.log");
    const ports = async (): Promise<[number, number]> => [await freePort(), await freePort()];
    let [metricsPort, healthPort] = await ports();
    controller = launch(logPath, metricsPort, healthPort, kubeconfig);
    const first = controller;

    log("waiting for the layers to be published");
    const layers0 = await alive(
      first,
      waitUntil("the layers published", 600_000, async () => {
        const l = await publishedLayers(api);
        return l !== undefined && l.namespaces.size >= namespaces.length ? l : undefined;
      }),
    );

    // The reports: what every agent writes once it applied the published layers.
    const nodes: NodeState[] = nodeNames.map((name) => ({
      name,
      uid: uids.get(name) ?? "",
      enforcing: !rng.chance(NOT_ENFORCING),
      cluster: layers0.cluster,
      namespaces: new Map(layers0.namespaces),
    }));
    log(`writing ${nodes.length} node reports`);
    let generation = 1;
    await pool(nodes, CONCURRENCY, async (n) => {
      await api.must("POST", `${GROUP}/imagepolicynodestatuses`, {
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ImagePolicyNodeStatus",
        metadata: {
          name: n.name,
          ownerReferences: [{ apiVersion: "v1", kind: "Node", name: n.name, uid: n.uid }],
        },
        spec: { nodeName: n.name },
      });
      await api.must(
        "PATCH",
        nodeStatusPath(n.name),
        { status: reportStatus(n, isoNow(), generation) },
        MERGE,
      );
    });
    await alive(
      first,
      waitUntil("every status correct after the first rollout", 900_000, async () =>
        (await statusProblem(api, layers0, nodes)) === undefined ? true : undefined,
      ),
    );
    await quiet(controller);

    const results: PhaseResult[] = [];
    const cgroupPeak = async (): Promise<number | undefined> =>
      cgroup === undefined ? undefined : (await cgroup.maxUsageBytes()) / 1024 ** 2;
    const phase = async (
      name: string,
      change: () => Promise<Layers>,
      report: (layers: Layers) => Promise<void>,
    ): Promise<void> => {
      const c = controller;
      if (c === undefined) throw new BenchError("no controller");
      log(`phase ${name}`);
      await resetPeak(c.pid);
      await cgroup?.resetMaxUsage();
      const before = await counters(c.metricsPort);
      const cpu0 = await cpuSeconds(c.pid);
      const t0 = performance.now();
      const layers = await alive(c, change());
      const r0 = performance.now();
      await alive(c, report(layers));
      const r1 = performance.now();
      await alive(
        c,
        waitUntil(`every status correct (${name})`, 900_000, async () =>
          (await statusProblem(api, layers, nodes)) === undefined ? true : undefined,
        ),
      );
      const t1 = performance.now();
      await alive(c, quiet(c));
      const after = await counters(c.metricsPort);
      const mem = await memory(c.pid);
      results.push({
        name,
        statusReconciles: after.statusReconciles - before.statusReconciles,
        layersReconciles: after.layersReconciles - before.layersReconciles,
        otherReconciles: after.otherReconciles - before.otherReconciles,
        statusWrites: after.statusWrites - before.statusWrites,
        cpuSeconds: (await cpuSeconds(c.pid)) - cpu0,
        peakRssMiB: mem.hwmMiB,
        rssEndMiB: mem.rssMiB,
        cgroupPeakMiB: await cgroupPeak(),
        correctSeconds: (t1 - t0) / 1000,
        afterLastReportSeconds: (t1 - r1) / 1000,
        reporterSeconds: (r1 - r0) / 1000,
      });
    };

    // start: a restart with every object and report in place.
    await controller.stop();
    [metricsPort, healthPort] = await ports();
    {
      await cgroup?.resetMaxUsage();
      const t0 = performance.now();
      controller = launch(logPath, metricsPort, healthPort, kubeconfig);
      const c = controller;
      await alive(
        c,
        waitUntil("the restarted controller's metrics", 120_000, async () =>
          (await counters(c.metricsPort).catch(() => undefined)) === undefined ? undefined : true,
        ),
      );
      // Statuses are correct already (the previous controller wrote them): what a restart costs
      // is the new leader's first pass, which starts with a layers reconcile once it leads.
      await alive(
        c,
        waitUntil("the restarted controller's first layers reconcile", 600_000, async () =>
          (await leading(c.metricsPort)) && (await counters(c.metricsPort)).layersReconciles >= 1
            ? true
            : undefined,
        ),
      );
      await alive(
        c,
        waitUntil("every status correct after the restart", 900_000, async () =>
          (await statusProblem(api, layers0, nodes)) === undefined ? true : undefined,
        ),
      );
      const t1 = performance.now();
      await alive(c, quiet(c));
      const after = await counters(c.metricsPort);
      const mem = await memory(c.pid);
      results.push({
        name: "start",
        ...after,
        cpuSeconds: await cpuSeconds(c.pid),
        peakRssMiB: mem.hwmMiB,
        rssEndMiB: mem.rssMiB,
        cgroupPeakMiB: await cgroupPeak(),
        correctSeconds: (t1 - t0) / 1000,
        afterLastReportSeconds: 0,
        reporterSeconds: 0,
      });
    }

    // cip: one ClusterImagePolicy gains a scope.
    const cipObject = await publishedKeyPolicy(api, "clusterimagepolicies", fixture.objects);
    const waitLayers = async (
      objectPath: string,
      pred: (l: Layers) => boolean,
    ): Promise<Layers> => {
      const got = await waitUntil("the new layer", 300_000, async () => {
        const refused = await refusal(api, objectPath);
        if (refused !== undefined) return { refused };
        const l = await publishedLayers(api);
        return l !== undefined && pred(l) ? { layers: l } : undefined;
      });
      if ("refused" in got) throw new BenchError(`the change was refused: ${got.refused}`);
      return got.layers;
    };
    let current = layers0;
    const rollout = async (
      update: (n: NodeState, l: Layers) => Record<string, string>,
    ): Promise<void> => {
      generation += 1;
      await pool(rng.shuffle(nodes), CONCURRENCY, async (n) => {
        const revisions = update(n, current);
        await api.must(
          "PATCH",
          nodeStatusPath(n.name),
          { status: { appliedRevisions: revisions, lastUpdateTime: isoNow() } },
          MERGE,
        );
      });
    };
    await phase(
      "cip",
      async () => {
        const objectPath = `${GROUP}/clusterimagepolicies/${cipObject.metadata.name}`;
        await api.must(
          "PATCH",
          objectPath,
          { spec: { scopes: [...cipObject.spec.scopes, "bench.example.com/changed"] } },
          MERGE,
        );
        const before = current.cluster;
        current = await waitLayers(objectPath, (l) => l.cluster !== before);
        return current;
      },
      async (l) => {
        await rollout((n) => {
          n.cluster = l.cluster;
          return appliedRevisions(n);
        });
      },
    );

    // ip: one ImagePolicy gains a scope.
    const ipObject = await publishedKeyPolicy(api, "imagepolicies", fixture.objects);
    if (ipObject.kind !== "ImagePolicy") throw new BenchError("no ImagePolicy");
    const ipNs = ipObject.metadata.namespace;
    await phase(
      "ip",
      async () => {
        const objectPath = `${GROUP}/namespaces/${ipNs}/imagepolicies/${ipObject.metadata.name}`;
        await api.must(
          "PATCH",
          objectPath,
          { spec: { scopes: [...ipObject.spec.scopes, "bench.example.com/changed/ns"] } },
          MERGE,
        );
        const before = current.namespaces.get(ipNs);
        current = await waitLayers(objectPath, (l) => l.namespaces.get(ipNs) !== before);
        return current;
      },
      async (l) => {
        const rev = l.namespaces.get(ipNs) ?? "";
        await rollout((n) => {
          n.namespaces.set(ipNs, rev);
          return { [`${ipNs}.json`]: rev };
        });
      },
    );

    // What the cip and ip phases may cost: per published object of the changed layer, one
    // reconcile for its outcome (the layers reconcile) and the rollout's writes, plus TARGETS.
    const rolloutBound = async (name: "cip" | "ip", namespace: string | undefined) => {
      const members = await publishedIn(api, namespace);
      const seconds = results.find((r) => r.name === name)?.correctSeconds ?? 0;
      const perObject = rolloutWritesPerObject(seconds) + 1;
      return { members, seconds, perObject, bound: members * perObject };
    };
    const bounds = {
      cip: await rolloutBound("cip", undefined),
      ip: await rolloutBound("ip", ipNs),
    };

    // wave: every agent re-reports (a restart): new conditions and lastUpdateTime only.
    await phase(
      "wave",
      () => Promise.resolve(current),
      async () => {
        generation += 1;
        await pool(rng.shuffle(nodes), CONCURRENCY, async (n) => {
          const at = isoNow();
          await api.must(
            "PATCH",
            nodeStatusPath(n.name),
            {
              status: {
                lastUpdateTime: at,
                conditions: reportStatus(n, at, generation)["conditions"],
              },
            },
            MERGE,
          );
        });
      },
    );

    const c = controller;
    const overall = await memory(c.pid);
    const lines: string[] = [
      `controller at scale (real kube-apiserver ${cp.kubernetesVersion}): ${fixture.objects.length} policies, ` +
        `${namespaces.length} namespaces, ${NODES} nodes and reports; controller from ${CONTROLLER_ROOT}`,
      "",
      `${"phase".padEnd(7)}${"status rec.".padStart(13)}${"layers rec.".padStart(13)}${"writes".padStart(9)}${"CPU s".padStart(8)}${"peak MiB".padStart(10)}${"correct s".padStart(11)}${"after last".padStart(12)}${"reporter s".padStart(12)}${cgroup === undefined ? "" : "cgroup MiB".padStart(12)}`,
      ...results.map(
        (r) =>
          `${r.name.padEnd(7)}${String(r.statusReconciles).padStart(13)}${String(r.layersReconciles).padStart(13)}${String(r.statusWrites).padStart(9)}${r.cpuSeconds.toFixed(1).padStart(8)}${r.peakRssMiB.toFixed(0).padStart(10)}${r.correctSeconds.toFixed(1).padStart(11)}${r.afterLastReportSeconds.toFixed(1).padStart(12)}${r.reporterSeconds.toFixed(1).padStart(12)}${r.cgroupPeakMiB === undefined ? "" : r.cgroupPeakMiB.toFixed(0).padStart(12)}`,
      ),
      "",
    ];
    const verdict = (ok: boolean): string => (ok ? "ok" : "OVER");
    for (const r of results) {
      const fixed = TARGETS[r.name as keyof typeof TARGETS];
      const b = r.name === "cip" || r.name === "ip" ? bounds[r.name].bound : 0;
      const t = {
        ...fixed,
        statusReconciles: fixed.statusReconciles + b,
        statusWrites: fixed.statusWrites + b,
      };
      lines.push(
        `${r.name}: status reconciles ${r.statusReconciles} (target <= ${t.statusReconciles}) ${verdict(r.statusReconciles <= t.statusReconciles)}; ` +
          `status writes ${r.statusWrites} (target <= ${t.statusWrites}) ${verdict(r.statusWrites <= t.statusWrites)}; ` +
          `CPU ${r.cpuSeconds.toFixed(1)} s (target <= ${t.cpuSeconds}) ${verdict(r.cpuSeconds <= t.cpuSeconds)}; ` +
          `statuses correct ${r.afterLastReportSeconds.toFixed(1)} s after the last report (target <= ${t.settleSeconds}) ${verdict(r.afterLastReportSeconds <= t.settleSeconds)}`,
      );
    }
    for (const name of ["cip", "ip"] as const) {
      const b = bounds[name];
      lines.push(
        `${name}: the changed layer holds ${String(b.members)} published policies; over a ${b.seconds.toFixed(0)} s rollout ` +
          `each may be reconciled and written ${String(b.perObject)} times (the layers reconcile, the new revision, ` +
          `${String(ROLLOUT_PROGRESS_STEPS - 1)} progress steps no more often than a backoff of ${String(ROLLOUT_BACKOFF_MS / 1000)} s doubling to ` +
          `${String(ROLLOUT_MAX_BACKOFF_MS / 1000)} s allows, the end), so its targets are ${String(TARGETS[name].statusWrites)} + ${String(b.members)} x ${String(b.perObject)}`,
      );
    }
    // The target is the Deployment's own limit: what the kubelet would OOM-kill above.
    const peak = Math.max(...results.map((r) => r.peakRssMiB));
    lines.push(
      `peak RSS ${peak.toFixed(0)} MiB over every phase (target <= the Deployment's limit, ${String(limitMiB)}) ${verdict(peak <= limitMiB)}; RSS at the end ${overall.rssMiB.toFixed(0)} MiB; NODE_OPTIONS=${env["NODE_OPTIONS"] ?? "(none)"}`,
    );
    if (cgroup !== undefined) {
      const kills = await cgroup.oomKills();
      lines.push(
        `in a ${String(limitMiB)} MiB memory cgroup: ${String(kills)} OOM kills (target 0) ${verdict(kills === 0)}; cgroup peak ${Math.max(...results.map((r) => r.cgroupPeakMiB ?? 0)).toFixed(0)} MiB over every phase`,
      );
    }
    process.stdout.write(`${lines.join("\n")}\n`);
    process.stdout.write(
      `${JSON.stringify({ controllerRoot: CONTROLLER_ROOT, nodes: NODES, policies: fixture.objects.length, phases: results, bounds, peakRssMiB: peak, memoryLimitMiB: limitMiB, nodeOptions: env["NODE_OPTIONS"] ?? null, cgroup: cgroup !== undefined, targets: TARGETS })}\n`,
    );
  } catch (err) {
    const tail = (await readFile(path.join(dir, "controller.log"), "utf8").catch(() => ""))
      .split("\n")
      .slice(-30)
      .join("\n");
    throw new BenchError(`the benchmark failed; controller log tail:\n${tail}`, { cause: err });
  } finally {
    await controller?.stop();
    await cgroup?.remove();
    api.destroy();
    await cp.stop();
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}

/** Polls `probe` every second until it returns a value (test/support/waitFor.ts). */
function waitUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  return waitFor(what, probe, { timeoutMs, intervalMs: 1_000 });
}

/** Waits until the controller's reconcile counters stay unchanged for 5 s: its trailing work. */
async function quiet(c: Proc): Promise<void> {
  let last = JSON.stringify(await counters(c.metricsPort));
  let stableSince = Date.now();
  const deadline = Date.now() + 300_000;
  while (Date.now() - stableSince < 5_000) {
    if (Date.now() > deadline) throw new BenchError("the controller never went quiet");
    await delay(500);
    const now = JSON.stringify(await counters(c.metricsPort));
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    }
  }
}

await main();

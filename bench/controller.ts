// Controller benchmark at the designed scale (`npm run bench:controller`, hack/bench-controller):
// the compile benchmark's fixture (bench/fixture.ts: 200 ClusterImagePolicies over 500 scopes,
// 2,000 ImagePolicies over 500 namespaces) plus 5,000 CRI-O Nodes and their 5,000
// ImagePolicyNodeStatus reports (cluster.json and the 500 namespace files each; most enforcing,
// some lagging one revision). Steady state: the layers are already published and every policy
// carries the status of an earlier round.
//
// Timed one by one (performance.now; cold first run, min and median of the iterations), the pure
// steps exactly as Controller.reconcile calls them (src/controller/controller.ts):
// - layers: readPublished of the layer ConfigMaps, plan(), isUpToDate of every wanted layer;
// - status: observedStatus, then desiredStatus (rollout over the 5,000 reports) for all 2,200
//   policies, then statusChanged for all 2,200.
// Then the real Controller on in-memory informers and a client that records writes:
// reconcile("layers") and reconcile("status/...") for a sample of the 2,200 status keys (its
// per-key node view is rebuilt from the informer caches on every key, so the total is
// extrapolated), proving the pure steps compute what the controller patches.
// Prints a table, peak RSS, then one JSON line. Target: the pure work of one full reconcile
// (layers + every status) under 1 s.

import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { canonicalJson } from "../src/canonicalJson.ts";
import { parseCrioVersion } from "../src/compiler/crioVersion.ts";
import { parseImage } from "../src/compiler/scopes.ts";
import { secretLookupFrom } from "../src/compiler/validate.ts";
import { Controller, LAYERS_KEY, type ControllerInformers } from "../src/controller/controller.ts";
import { isUpToDate, layerConfigMap, readPublished } from "../src/controller/layerConfigMaps.ts";
import {
  compactNodeStatus,
  nodeReportOf,
  RevisionsInterner,
  runtimeVersionOf,
} from "../src/controller/cache.ts";
import { ControllerMetrics } from "../src/controller/metrics.ts";
import { policyRef, refKey } from "../src/api/types.ts";
import type {
  ControllerApi,
  ControllerInformer,
  EventSink,
  ObjectAddress,
} from "../src/controller/api.ts";
import { plan, type Plan, type PlanInput } from "../src/controller/plan.ts";
import {
  desiredStatus,
  Fleet,
  observedStatus,
  statusChanged,
  type LayerRef,
  type NodeView,
  type ObservedStatus,
  type PolicyStatus,
} from "../src/controller/status.ts";
import type { AppliedObject, ListWatcher } from "../src/kube/client.ts";
import { Informer } from "../src/kube/informer.ts";
import type { KubeObject, Resource } from "../src/kube/objects.ts";
import { WorkQueue } from "../src/kube/workQueue.ts";
import { layerRevision } from "../src/layerConfigMap.ts";
import {
  at,
  BenchError,
  CLUSTER_POLICIES,
  CLUSTER_SCOPES,
  generateFixture,
  IMAGE_POLICIES,
  NAMESPACES,
  Rng,
} from "./fixture.ts";

const NODES = 5000;
/** Share of nodes whose agent reports enforcing: false (CRI-O not configured to read the files). */
const NOT_ENFORCING = 0.01;
/** Share of nodes one cluster revision behind (so every file is behind). */
const LAGGING_CLUSTER = 0.03;
/** Share of nodes one revision behind on a few namespace files only. */
const LAGGING_NAMESPACE = 0.02;
const OPERATOR_NAMESPACE = "imagepolicy-system";
const OPERATOR_IMAGE = "ghcr.io/imagepolicy/imagepolicy-operator:v0.1.0";
const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
const NOW_MS = Date.UTC(2025, 5, 1, 12, 0, 0);
const EARLIER_MS = NOW_MS - 3_600_000;
const TARGET_MS = 1000;

// ---------------------------------------------------------------------------------------------
// Fixture

interface ControllerFixture {
  readonly cips: KubeObject[];
  readonly ips: KubeObject[];
  readonly nodes: KubeObject[];
  readonly reports: KubeObject[];
  /** The reports as the controller's informer keeps them (main.ts: compactNodeStatus). */
  readonly compactReports: KubeObject[];
  readonly interner: RevisionsInterner;
  readonly layers: KubeObject[];
  readonly planInput: (layers: readonly KubeObject[]) => PlanInput;
  readonly published: Plan;
  readonly counts: {
    readonly notEnforcing: number;
    readonly laggingCluster: number;
    readonly laggingNamespace: number;
  };
}

/** As the controller formats `now` (second precision). */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function protectedImages(): PlanInput["protectedImages"] {
  const out: PlanInput["protectedImages"][number][] = [];
  for (const [image, reason, namespaces] of [
    [OPERATOR_IMAGE, "WouldRejectOperator", [OPERATOR_NAMESPACE]],
    [PAUSE_IMAGE, "WouldRejectPause", [OPERATOR_NAMESPACE]],
  ] as const) {
    const p = parseImage(image);
    if (!p.ok) throw new BenchError(`cannot parse ${image}`);
    out.push({ reference: p.reference, reason, namespaces, what: image });
  }
  return out;
}

/** The controller's default quota and lookaside settings (src/controller/flags.ts). */
const TRUST = {
  quota: { maxPolicies: 256, maxScopes: 1024, maxBytes: 262_144 },
  namespaceLookasidePrefixes: [],
} as const;

/** The status reconcile's layer reference (controller.ts #reconcileStatus). */
function layerRefOf(p: Plan, key: string): LayerRef | undefined {
  const outcome = p.outcomes.get(key);
  if (outcome === undefined || !outcome.inLayer) return undefined;
  const ns = outcome.ref.namespace;
  if (ns === undefined) return { kind: "cluster", revision: p.cluster.revision };
  const layer = p.namespaces.get(ns);
  return layer === undefined
    ? undefined
    : { kind: "namespace", namespace: ns, revision: layer.revision };
}

/** What controller.ts #nodes() builds from the Node and ImagePolicyNodeStatus caches (reports
 * compacted and their maps interned as main.ts's informers do, src/controller/cache.ts); the bench
 * checks below that desiredStatus over these equals what the real controller patches. */
function nodeViews(
  nodes: readonly KubeObject[],
  reports: readonly KubeObject[],
  interner: RevisionsInterner,
): NodeView[] {
  const byName = new Map(reports.map((r) => [r.metadata.name, r]));
  return nodes.map((node) => ({
    name: node.metadata.name,
    crio: runtimeVersionOf(node)?.startsWith("cri-o://") === true,
    report: nodeReportOf(byName.get(node.metadata.name), interner),
  }));
}

function generateControllerFixture(seed: number): ControllerFixture {
  const base = generateFixture(seed);
  const rng = new Rng(seed ^ 0x5eed);
  let rv = 1000;
  const meta = (o: { metadata: object }): KubeObject["metadata"] =>
    ({ ...o.metadata, uid: `uid-${rv}`, resourceVersion: String(rv++) }) as KubeObject["metadata"];
  const objects: KubeObject[] = base.objects.map((o) => ({ ...o, metadata: meta(o) }));
  const cips = objects.filter((o) => o.kind === "ClusterImagePolicy");
  const ips = objects.filter((o) => o.kind === "ImagePolicy");

  const patches = ["0", "1", "2", "3"];
  const nodes: KubeObject[] = Array.from({ length: NODES }, (_, i) => ({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: `node-${String(i + 1).padStart(5, "0")}`, resourceVersion: String(rv++) },
    status: {
      nodeInfo: { containerRuntimeVersion: `cri-o://1.34.${rng.pick(patches)}` },
    },
  }));

  // Publish the layers as a first reconcile would (no layer yet), then read them back: that is
  // the steady state the benchmark measures.
  const secrets = secretLookupFrom([]);
  const target = parseCrioVersion("1.34");
  const planInput = (layers: readonly KubeObject[]): PlanInput => {
    const published = readPublished(layers);
    return {
      objects: [...cips, ...ips],
      secrets,
      target,
      publishedCluster: published.cluster,
      publishedNamespaces: published.namespaces,
      operatorNamespace: OPERATOR_NAMESPACE,
      protectedImages: protectedImages(),
      ...TRUST,
    };
  };
  const first = plan(planInput([]));
  const layers: KubeObject[] = [
    [undefined, first.cluster] as const,
    ...[...first.namespaces].map(([ns, l]) => [ns, l] as const),
  ].map(([ns, l]) => ({
    ...layerConfigMap(OPERATOR_NAMESPACE, ns, l.text, l.revision),
    metadata: {
      ...layerConfigMap(OPERATOR_NAMESPACE, ns, l.text, l.revision).metadata,
      resourceVersion: String(rv++),
    },
  }));
  const published = plan(planInput(layers));

  // Reports: every node holds cluster.json and the 500 namespace files.
  const previous = (revision: string): string => layerRevision(`previous ${revision}`);
  const cluster = published.cluster.revision;
  const nsRevisions = [...published.namespaces].map(([ns, l]) => [ns, l.revision] as const);
  const counts = { notEnforcing: 0, laggingCluster: 0, laggingNamespace: 0 };
  const reports: KubeObject[] = nodes.map((node) => {
    const enforcing = !rng.chance(NOT_ENFORCING);
    const r = rng.next();
    const lagCluster = r < LAGGING_CLUSTER;
    const lagNamespaces = new Set<string>();
    if (!lagCluster && r < LAGGING_CLUSTER + LAGGING_NAMESPACE) {
      for (let k = 1 + rng.int(5); k > 0; k--) lagNamespaces.add(rng.pick(nsRevisions)[0]);
    }
    counts.notEnforcing += enforcing ? 0 : 1;
    counts.laggingCluster += lagCluster ? 1 : 0;
    counts.laggingNamespace += lagNamespaces.size > 0 ? 1 : 0;
    const c = lagCluster ? previous(cluster) : cluster;
    const appliedRevisions: Record<string, string> = { "cluster.json": c };
    for (const [ns, s] of nsRevisions) {
      // As the agent reports it: the namespace revision alone, on cluster.json's revision.
      appliedRevisions[`${ns}.json`] = lagCluster || lagNamespaces.has(ns) ? previous(s) : s;
    }
    return {
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicyNodeStatus",
      metadata: { name: node.metadata.name, resourceVersion: String(rv++) },
      status: {
        runtime: "cri-o",
        enforcing,
        ...(enforcing ? {} : { enforcingReason: "CrioNotConfigured" }),
        appliedRevisions,
      },
    };
  });

  // Every policy carries the status of an earlier round, when every node had caught up and
  // enforced: the lagging and non-enforcing nodes make most of them change now.
  const caughtUp: NodeView[] = nodes.map((n) => {
    const report: Record<string, string> = { "cluster.json": cluster };
    for (const [ns, s] of nsRevisions) report[`${ns}.json`] = s;
    return {
      name: n.metadata.name,
      crio: true,
      report: { enforcing: true, appliedRevisions: report },
    };
  });
  const caughtUpFleet = new Fleet(caughtUp);
  for (const o of objects) {
    const key = refKey(
      o.metadata.namespace === undefined
        ? { kind: "ClusterImagePolicy", name: o.metadata.name }
        : { kind: "ImagePolicy", name: o.metadata.name, namespace: o.metadata.namespace },
    );
    const outcome = published.outcomes.get(key);
    if (outcome === undefined) throw new BenchError(`no outcome for ${key}`);
    const status = desiredStatus(
      outcome,
      layerRefOf(published, key),
      caughtUpFleet,
      undefined,
      isoSeconds(EARLIER_MS),
    );
    (o as { status?: unknown }).status = JSON.parse(JSON.stringify(status)) as unknown;
  }
  const interner = new RevisionsInterner();
  const compactReports = reports.map((r) => compactNodeStatus(r, interner));
  return {
    cips,
    ips,
    nodes,
    reports,
    compactReports,
    interner,
    layers,
    planInput,
    published,
    counts,
  };
}

// ---------------------------------------------------------------------------------------------
// The pure steps, as the reconciles call them

interface Sample {
  readonly readPublishedMs: number;
  readonly planMs: number;
  readonly upToDateMs: number;
  readonly observedMs: number;
  readonly desiredMs: number;
  readonly changedMs: number;
  readonly layersMs: number;
  readonly statusMs: number;
  readonly totalMs: number;
  readonly changed: number;
  readonly layersToWrite: number;
  readonly digest: string;
  readonly desired: ReadonlyMap<string, PolicyStatus>;
}

function runOnce(f: ControllerFixture): Sample {
  // Fresh per round, as the informer caches change between rounds (status.ts indexes per list).
  const nodes = nodeViews(f.nodes, f.compactReports, f.interner);
  const objects = new Map<string, KubeObject>();
  for (const o of [...f.cips, ...f.ips]) {
    const ns = o.metadata.namespace;
    objects.set(
      refKey(
        ns === undefined
          ? { kind: "ClusterImagePolicy", name: o.metadata.name }
          : { kind: "ImagePolicy", name: o.metadata.name, namespace: ns },
      ),
      o,
    );
  }
  const layersByName = new Map(f.layers.map((cm) => [cm.metadata.name, cm]));

  const t0 = performance.now();
  const input = f.planInput(f.layers); // readPublished + the plan input, as #reconcileLayers
  const t1 = performance.now();
  const p = plan(input);
  const t2 = performance.now();
  let layersToWrite = 0;
  for (const [layerNs, layer] of [[undefined, p.cluster] as const, ...p.namespaces]) {
    const obj = layerConfigMap(OPERATOR_NAMESPACE, layerNs, layer.text, layer.revision);
    if (!isUpToDate(layersByName.get(obj.metadata.name), obj)) layersToWrite += 1;
  }
  const t3 = performance.now();

  const keys = [...p.outcomes.keys()];
  const observed = new Map<string, ObservedStatus | undefined>();
  for (const key of keys) observed.set(key, observedStatus(objects.get(key)));
  const t4 = performance.now();
  const now = isoSeconds(NOW_MS);
  const desired = new Map<string, PolicyStatus>();
  // As the controller does: one Fleet per round, shared by every policy's status.
  const fleet = new Fleet(nodes);
  for (const key of keys) {
    const outcome = p.outcomes.get(key);
    if (outcome === undefined) continue;
    desired.set(key, desiredStatus(outcome, layerRefOf(p, key), fleet, observed.get(key), now));
  }
  const t5 = performance.now();
  let changed = 0;
  for (const [key, status] of desired) if (statusChanged(status, observed.get(key))) changed += 1;
  const t6 = performance.now();

  return {
    readPublishedMs: t1 - t0,
    planMs: t2 - t1,
    upToDateMs: t3 - t2,
    observedMs: t4 - t3,
    desiredMs: t5 - t4,
    changedMs: t6 - t5,
    layersMs: t3 - t0,
    statusMs: t6 - t3,
    totalMs: t6 - t0,
    changed,
    layersToWrite,
    digest: layerRevision(
      canonicalJson({
        layers: [p.cluster.revision, ...[...p.namespaces].map(([ns, l]) => `${ns}=${l.revision}`)],
        statuses: [...desired].map(([k, s]) => [k, s]),
      }),
    ),
    desired,
  };
}

// ---------------------------------------------------------------------------------------------
// The real Controller on in-memory informers

/** Records writes instead of sending them; no request leaves the process. */
class RecordingClient implements ControllerApi, EventSink {
  readonly statusPatches = new Map<string, unknown>();
  applies = 0;
  apply(obj: KubeObject): Promise<AppliedObject> {
    this.applies += 1;
    return Promise.resolve({ ...obj.metadata, resourceVersion: "1" });
  }
  patchStatus(_resource: Resource, ref: ObjectAddress, status: unknown): Promise<AppliedObject> {
    this.statusPatches.set(refKey(policyRef(ref.name, ref.namespace)), status);
    return Promise.resolve({ name: ref.name, resourceVersion: "1" });
  }
  delete(): Promise<boolean> {
    return Promise.resolve(true);
  }
  record(): Promise<void> {
    return Promise.resolve();
  }
}

function staticSource(items: readonly KubeObject[]): ListWatcher {
  return {
    list: () => Promise.resolve({ items, resourceVersion: "1" }),
    watch: (_rv, _onEvent, signal) =>
      new Promise<void>((resolve) => {
        signal.addEventListener("abort", () => {
          resolve();
        });
      }),
  };
}

interface ControllerRun {
  readonly layersMs: number;
  readonly statusKeys: number;
  readonly statusSampleMs: number;
  readonly statusPerKeyMs: number;
  readonly checked: number;
}

async function runController(
  f: ControllerFixture,
  pure: ReadonlyMap<string, PolicyStatus>,
  sample: number,
): Promise<ControllerRun> {
  const logger = pino({ level: "silent" });
  const informer = (name: string, items: readonly KubeObject[]): Informer =>
    new Informer({ name, source: staticSource(items), logger });
  const informers: ControllerInformers = {
    clusterImagePolicies: informer("clusterimagepolicies", f.cips),
    imagePolicies: informer("imagepolicies", f.ips),
    nodes: informer("nodes", f.nodes),
    layers: informer("layers", f.layers),
    nodeStatuses: informer("imagepolicynodestatuses", f.compactReports),
    protectedPods: [],
  };
  const all: ControllerInformer[] = [
    informers.clusterImagePolicies,
    informers.imagePolicies,
    informers.nodes,
    informers.layers,
    informers.nodeStatuses,
  ];
  for (const i of all) i.start();
  await Promise.all(all.map((i) => i.waitForSync()));
  const client = new RecordingClient();
  const clock = { now: () => NOW_MS };
  const controller = new Controller(
    {
      namespace: OPERATOR_NAMESPACE,
      crioVersionOverride: undefined,
      protectedImages: protectedImages(),
      ...TRUST,
    },
    {
      api: client,
      informers,
      queue: new WorkQueue(),
      events: client,
      metrics: new ControllerMetrics(),
      clock,
      logger,
      secretInformer: ({ namespace, name }) => informer(`secret ${namespace}/${name}`, []),
      revisions: f.interner,
    },
  );
  try {
    const t0 = performance.now();
    await controller.reconcile(LAYERS_KEY);
    const t1 = performance.now();
    if (client.applies !== 0)
      throw new BenchError(`${client.applies} layers rewritten in steady state`);
    // An even spread of keys over both kinds.
    const keys = [...pure.keys()];
    const step = Math.max(1, Math.floor(keys.length / sample));
    const chosen = keys.filter((_, i) => i % step === 0).slice(0, sample);
    const t2 = performance.now();
    for (const key of chosen) await controller.reconcile(`status/${key}`);
    const t3 = performance.now();
    let checked = 0;
    for (const key of chosen) {
      const want = pure.get(key);
      const got = client.statusPatches.get(key);
      const wantPatch = want !== undefined && statusChanged(want, observedStatus(objectOf(f, key)));
      if (wantPatch !== (got !== undefined)) throw new BenchError(`${key}: patch mismatch`);
      if (got !== undefined && canonicalJson(got) !== canonicalJson(want)) {
        throw new BenchError(`${key}: the controller patched another status than the pure steps`);
      }
      checked += 1;
    }
    return {
      layersMs: t1 - t0,
      statusKeys: chosen.length,
      statusSampleMs: t3 - t2,
      statusPerKeyMs: (t3 - t2) / chosen.length,
      checked,
    };
  } finally {
    await controller.stop();
  }
}

function objectOf(f: ControllerFixture, key: string): KubeObject | undefined {
  return [...f.cips, ...f.ips].find(
    (o) =>
      refKey(
        o.metadata.namespace === undefined
          ? { kind: "ClusterImagePolicy", name: o.metadata.name }
          : { kind: "ImagePolicy", name: o.metadata.name, namespace: o.metadata.namespace },
      ) === key,
  );
}

// ---------------------------------------------------------------------------------------------
// Report

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? at(s, mid) : (at(s, mid - 1) + at(s, mid)) / 2;
}

const ms = (v: number): string => `${v.toFixed(0)} ms`.padStart(10);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iterations: { type: "string", default: "5" },
      seed: { type: "string", default: "20240601" },
      "controller-sample": { type: "string", default: "40" },
    },
    strict: true,
  });
  const iterations = Number(values.iterations);
  const seed = Number(values.seed);
  const sample = Number(values["controller-sample"]);
  for (const [flag, v] of [
    ["--iterations", iterations],
    ["--controller-sample", sample],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new BenchError(`${flag} must be an integer >= 0`);
  }
  if (iterations < 1) throw new BenchError("--iterations must be at least 1");
  if (!Number.isInteger(seed))
    throw new BenchError(`--seed must be an integer, got ${values.seed}`);

  const g0 = performance.now();
  const f = generateControllerFixture(seed);
  const generateMs = performance.now() - g0;
  const refused = [...f.published.outcomes.values()].filter((o) => o.refusals.length > 0).length;
  if (f.cips.length !== CLUSTER_POLICIES || f.ips.length !== IMAGE_POLICIES)
    throw new BenchError("bad fixture: policy counts");
  if (f.published.namespaces.size !== NAMESPACES) throw new BenchError("bad fixture: namespaces");
  if (f.published.cluster.layer.policies.length + refused < CLUSTER_POLICIES)
    throw new BenchError("bad fixture: cluster layer");

  const samples: Sample[] = [];
  for (let i = 0; i < iterations; i++) samples.push(runOnce(f));
  const peakRssPureMiB = process.resourceUsage().maxRSS / 1024;
  const cold = at(samples, 0);
  for (const s of samples)
    if (s.digest !== cold.digest) throw new BenchError("output differs between iterations");

  const c = sample > 0 ? await runController(f, cold.desired, sample) : undefined;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;

  const med = (pick: (s: Sample) => number): number => median(samples.map(pick));
  const min = (pick: (s: Sample) => number): number => Math.min(...samples.map(pick));
  const rows: [string, (s: Sample) => number][] = [
    ["readPublished (501 layers)", (s) => s.readPublishedMs],
    ["plan", (s) => s.planMs],
    ["isUpToDate (501 layers)", (s) => s.upToDateMs],
    ["= layers reconcile", (s) => s.layersMs],
    ["observedStatus x2200", (s) => s.observedMs],
    ["desiredStatus x2200", (s) => s.desiredMs],
    ["statusChanged x2200", (s) => s.changedMs],
    ["= status reconciles", (s) => s.statusMs],
    ["full reconcile (pure)", (s) => s.totalMs],
  ];
  const cpu = cpus();
  const lines = [
    `controller benchmark: ${CLUSTER_POLICIES} ClusterImagePolicies (${CLUSTER_SCOPES} scopes), ` +
      `${IMAGE_POLICIES} ImagePolicies in ${NAMESPACES} namespaces, ${NODES} CRI-O nodes and reports ` +
      `(${f.counts.notEnforcing} not enforcing, ${f.counts.laggingCluster} a cluster revision behind, ` +
      `${f.counts.laggingNamespace} a namespace revision behind), seed ${seed}`,
    `node ${process.version}, ${cpu.length} x ${cpu[0]?.model.trim() ?? "unknown cpu"}; ` +
      `fixture generated in ${generateMs.toFixed(0)} ms; ${refused} refused, ` +
      `${cold.layersToWrite} layers to write, ${cold.changed} statuses to patch`,
    "",
    `${"pure step".padEnd(28)}${"cold".padStart(10)}${"min".padStart(10)}${"median".padStart(10)}`,
    ...rows.map(
      ([label, pick]) => `${label.padEnd(28)}${ms(pick(cold))}${ms(min(pick))}${ms(med(pick))}`,
    ),
    "",
    c === undefined
      ? "real Controller: skipped (--controller-sample 0)"
      : `real Controller (in-memory informers, recording client): reconcile("layers") ${c.layersMs.toFixed(0)} ms; ` +
        `${c.statusKeys} status keys ${c.statusSampleMs.toFixed(0)} ms = ${c.statusPerKeyMs.toFixed(1)} ms/key, ` +
        `x${cold.desired.size} keys ~ ${((c.statusPerKeyMs * cold.desired.size) / 1000).toFixed(1)} s; ` +
        `${c.checked} statuses equal to the pure steps`,
    `peak RSS: ${peakRssPureMiB.toFixed(0)} MiB after the pure steps, ${peakRssMiB.toFixed(0)} MiB at the end`,
    `target: full reconcile (pure) < ${TARGET_MS} ms: ${med((s) => s.totalMs) < TARGET_MS ? "ok" : "OVER"}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
  const round = (v: number): number => Math.round(v * 10) / 10;
  const summary = {
    planMs: round(med((s) => s.planMs)),
    desiredStatusMs: round(med((s) => s.desiredMs)),
    statusChangedMs: round(med((s) => s.changedMs)),
    layersMs: round(med((s) => s.layersMs)),
    statusMs: round(med((s) => s.statusMs)),
    totalMs: round(med((s) => s.totalMs)),
    coldTotalMs: round(cold.totalMs),
    coldPlanMs: round(cold.planMs),
    coldDesiredStatusMs: round(cold.desiredMs),
    coldStatusChangedMs: round(cold.changedMs),
    readPublishedMs: round(med((s) => s.readPublishedMs)),
    isUpToDateMs: round(med((s) => s.upToDateMs)),
    observedStatusMs: round(med((s) => s.observedMs)),
    controllerLayersMs: c === undefined ? null : round(c.layersMs),
    controllerStatusMsPerKey: c === undefined ? null : round(c.statusPerKeyMs),
    controllerStatusKeysSampled: c?.statusKeys ?? 0,
    controllerStatusAllKeysMsEstimate:
      c === undefined ? null : round(c.statusPerKeyMs * cold.desired.size),
    peakRssMiB: round(peakRssMiB),
    peakRssMiBPure: round(peakRssPureMiB),
    statusesChanged: cold.changed,
    policies: cold.desired.size,
    nodes: NODES,
    digest: cold.digest,
    iterations,
  };
  process.stdout.write(JSON.stringify(summary) + "\n");
}

await main();

// The controller's imperative shell: informers in, layer ConfigMaps and policy statuses out.
//
// Level-triggered (docs/style.md habit 10): an informer event only enqueues a key; a reconcile
// recomputes from the caches. Three kinds of key, and work proportional to what changed
// (docs/scale.md, "Controller"):
// - "layers": plan every layer (plan.ts, with a cache that reuses each unchanged object's parse
//   and validation), server-side apply the ConfigMaps whose bytes changed, delete namespace layers
//   left empty; then queue the status of each object whose outcome changed, and run a rollout
//   round. Queued by a spec change (a new generation), an object added or deleted, a referenced
//   Secret, a protected pod's images, a layer ConfigMap someone else changed, a new CRI-O target;
//   never by a status write or a Node heartbeat.
// - "rollout": bring the node snapshot up to date (the nodes with an event since the last round),
//   count it (Fleet) and compare each layer's rollout (revision, publication error, node counts)
//   with the one its objects last got; queue the status of the objects of each layer whose
//   rollout changed. Node reports arrive by thousands during a rollout: they only schedule this
//   key, at most once a second. A new revision and the end of a rollout are written at once; in
//   between, progress when the applied share enters the next quarter (with backoff: 5 s, 10 s,
//   ... 60 s) or once the counts stood still for 30 s: at most five writes per object per
//   rollout.
// - "status/<ref>": compute that object's status from the last plan and snapshot, and patch it
//   when it changed (guarded by resourceVersion). Up to STATUS_CONCURRENCY run at once; the
//   layers and rollout keys run alone.
// Only the leader runs workers; every replica keeps its caches warm so a new leader starts at once.
//
// Secrets are not an informer of the whole cluster: the layers key watches exactly the Secrets
// that policies reference (secretWatches.ts). Each layer ConfigMap is published on its own: one
// that is too large or refused by the API server never holds back another, and the policies in it
// say so in their Applied condition (LayerNotPublished).

import type { Logger } from "pino";
import { refKey, refOfObject, type ObjectRef } from "../api/types.ts";
import { canonicalJson } from "../canonicalJson.ts";
import {
  LATEST_KNOWN,
  compareCrioVersions,
  formatCrioVersion,
  parseCrioVersion,
  type CrioVersion,
} from "../compiler/crioVersion.ts";
import { parseImage } from "../compiler/scopes.ts";
import {
  type Clock,
  type InformerEvent,
  isConflict,
  type KubeObject,
  Resources,
  type WorkQueue,
} from "../kube/index.ts";
import { LAYER_KEY, layerConfigMapName } from "../layerConfigMap.ts";
import type { ControllerApi, ControllerInformer, EventSink } from "./api.ts";
import { nodeReportOf, podImagesOf, RevisionsInterner, runtimeVersionOf } from "./cache.ts";
import { FIELD_MANAGER, isUpToDate, layerConfigMap, readPublished } from "./layerConfigMaps.ts";
import type { ControllerMetrics } from "./metrics.ts";
import {
  plan,
  PlanCache,
  type NamespaceQuota,
  type Outcome,
  type Plan,
  type ProtectedImage,
} from "./plan.ts";
import { referencedSecrets, SecretWatches, type SecretInformerFactory } from "./secretWatches.ts";
import {
  desiredStatus,
  Fleet,
  observedStatus,
  statusChanged,
  type LayerRef,
  type NodeView,
} from "./status.ts";

export const LAYERS_KEY = "layers";
export const ROLLOUT_KEY = "rollout";
const STATUS_PREFIX = "status/";

export interface ControllerInformers {
  readonly clusterImagePolicies: ControllerInformer;
  readonly imagePolicies: ControllerInformer;
  readonly nodes: ControllerInformer;
  /** The layer ConfigMaps in the operator namespace (label selector managed-by). */
  readonly layers: ControllerInformer;
  readonly nodeStatuses: ControllerInformer;
  /** Pods of the protected namespaces (--protected-namespace): their images stay pullable. */
  readonly protectedPods: readonly ControllerInformer[];
}

export interface ControllerOptions {
  /** The operator namespace, where the layer ConfigMaps live. */
  readonly namespace: string;
  readonly crioVersionOverride: CrioVersion | undefined;
  /** Pause, the operator's own image and --protected-image; pods' images come on top. */
  readonly protectedImages: readonly ProtectedImage[];
  readonly quota: NamespaceQuota;
  readonly namespaceLookasidePrefixes: readonly string[];
}

export interface ControllerDeps {
  readonly api: ControllerApi;
  readonly informers: ControllerInformers;
  readonly queue: WorkQueue;
  readonly events: EventSink;
  readonly metrics: ControllerMetrics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The informer of one referenced Secret (field selector metadata.name). */
  readonly secretInformer: SecretInformerFactory;
  /** The interner the node report cache shares maps through (main.ts compacts reports with
   * it); a fresh one when reports arrive uncompacted. */
  readonly revisions?: RevisionsInterner;
}

/** How long a newly watched Secret may stay unread before policies that need it say so. */
const SECRET_GRACE_MS = 10_000;

/** What a ConfigMap holds at most: the API server refuses data (keys and values) over 1 MiB. */
export const MAX_LAYER_BYTES = 1024 * 1024 - LAYER_KEY.length;

/** Node reports are counted at most once per this interval (the rollout key). */
export const ROLLOUT_MIN_INTERVAL_MS = 1_000;
/** The first wait before a layer still rolling out gets its progress written again; doubled per
 * write up to ROLLOUT_MAX_BACKOFF_MS, reset by a new revision or the end of a rollout. */
export const ROLLOUT_BACKOFF_MS = 5_000;
export const ROLLOUT_MAX_BACKOFF_MS = 60_000;
/** While a layer rolls out, its objects get their progress written only when the share of CRI-O
 * nodes that applied it enters a new step (quarters): at most ROLLOUT_PROGRESS_STEPS + 1 writes
 * per object per rollout (its start, three steps, its end) however long it lasts and however many
 * nodes report. Written per minute instead, a 12-minute rollout of the cluster layer cost its 200
 * objects ~14 writes each (docs/scale.md). */
export const ROLLOUT_PROGRESS_STEPS = 4;
/** A rollout whose counts stopped changing within a step gets them written once they have been
 * still this long: no status stays behind the reports. */
export const ROLLOUT_QUIET_MS = 30_000;

/** Status writes in flight at once. The end of a rollout rewrites the status of every object of
 * the layer (200 ClusterImagePolicies with the large fixture); one at a time, each waits for the
 * API server's round trip and etcd's commit (docs/scale.md, "Controller"). */
export const STATUS_CONCURRENCY = 4;

/** What an object's status reads of its layer's rollout, and whether it is over. */
interface LayerProgress {
  /** canonical JSON of revision, publication error and node counts. */
  readonly view: string;
  readonly revision: string;
  readonly settled: boolean;
  /** Which of the ROLLOUT_PROGRESS_STEPS the applied share is in. */
  readonly step: number;
}

/** The rollout its objects last got, per layer ("" = cluster). */
interface LayerWritten {
  readonly view: string;
  readonly revision: string;
  readonly step: number;
  readonly at: number;
  readonly backoffMs: number;
}

/** A layer's rollout as the last round saw it, and since when unchanged. */
interface LayerSeen {
  readonly view: string;
  readonly since: number;
}

export class Controller {
  readonly #o: ControllerOptions;
  readonly #d: ControllerDeps;
  readonly #secrets: SecretWatches;
  readonly #planCache = new PlanCache();
  readonly #revisions: RevisionsInterner;
  readonly #crioVersions = new Map<string, CrioVersion | null>();
  /** Every Node with its report as the last snapshot read them, by name. */
  readonly #nodeEntries = new Map<string, NodeEntry>();
  /** Nodes whose Node or report had an event since the last snapshot; all of them before the
   * first one. */
  #nodesDirty: Set<string> | "all" = "all";
  #plan: Plan | undefined;
  /** The CRI-O version the last plan was made for. */
  #plannedTarget: string | undefined;
  /** Layers whose planned revision could not be published, by "" (cluster) or namespace. */
  #publishErrors = new Map<string, { readonly revision: string; readonly error: string }>();
  /** The layer ConfigMaps the controller last applied, by name: events carrying them are its own. */
  readonly #applied = new Map<string, KubeObject>();
  /** The node snapshot of the last rollout round. */
  #fleet: Fleet = new Fleet([]);
  #lastRolloutAt: number | undefined;
  /** A Node or a report changed since the last rollout round. */
  #fleetDirty = false;
  readonly #written = new Map<string, LayerWritten>();
  readonly #seen = new Map<string, LayerSeen>();
  /** The resourceVersion each status patch produced, by refKey: events carrying it are ours. */
  readonly #ownWrites = new Map<string, string>();

  constructor(options: ControllerOptions, deps: ControllerDeps) {
    this.#o = options;
    this.#d = deps;
    this.#revisions = deps.revisions ?? new RevisionsInterner();
    this.#secrets = new SecretWatches(
      deps.secretInformer,
      () => {
        deps.queue.add(LAYERS_KEY);
      },
      deps.clock,
    );
  }

  /** Registers the event handlers and starts every informer. */
  start(): void {
    const i = this.#d.informers;
    const layers = (): void => {
      this.#d.queue.add(LAYERS_KEY);
    };
    i.clusterImagePolicies.onEvent((e) => {
      this.#onPolicy(e);
    });
    i.imagePolicies.onEvent((e) => {
      this.#onPolicy(e);
    });
    i.nodes.onEvent((e) => {
      this.#nodeMoved(e.object.metadata.name);
      if (e.type !== "updated" || runtimeVersionOf(e.old) !== runtimeVersionOf(e.object)) {
        this.#scheduleRollout();
      }
    });
    i.layers.onEvent((e) => {
      const mine = this.#applied.get(e.object.metadata.name);
      const own =
        e.type === "deleted"
          ? mine === undefined
          : mine !== undefined && isUpToDate(e.object, mine);
      if (!own) layers();
    });
    for (const pods of i.protectedPods) {
      pods.onEvent((e) => {
        if (e.type !== "updated" || podImagesOf(e.old).join() !== podImagesOf(e.object).join()) {
          layers();
        }
      });
    }
    i.nodeStatuses.onEvent((e) => {
      // Read again even when the counts cannot move: the snapshot holds no replaced object.
      this.#nodeMoved(e.object.metadata.name);
      if (e.type === "updated" && this.#sameReport(e.old, e.object)) return;
      this.#scheduleRollout();
    });
    for (const informer of this.#allInformers()) informer.start();
  }

  #onPolicy(e: InformerEvent): void {
    const ref = refOfObject(e.object);
    if (e.type !== "updated" || e.old.metadata.generation !== e.object.metadata.generation) {
      // A new generation, or an object added or deleted: what the layers hold may change.
      if (e.type === "deleted" && ref !== undefined) this.#ownWrites.delete(refKey(ref));
      this.#d.queue.add(LAYERS_KEY);
      return;
    }
    // Only status or metadata changed. The controller's own status patch needs nothing; any
    // other writer's change of the status is put right.
    if (ref === undefined) return;
    const key = refKey(ref);
    if (this.#ownWrites.get(key) === e.object.metadata.resourceVersion) return;
    this.#d.queue.add(`${STATUS_PREFIX}${key}`);
  }

  #sameReport(a: KubeObject, b: KubeObject): boolean {
    const x = nodeReportOf(a, this.#revisions);
    const y = nodeReportOf(b, this.#revisions);
    if (x === undefined || y === undefined) return x === y;
    if (x.enforcing !== y.enforcing) return false;
    if (x.appliedRevisions === y.appliedRevisions) return true;
    // Two interned maps are equal only when identical: no need to serialize 500 entries twice
    // for every report of a rollout.
    if (
      this.#revisions.interned(x.appliedRevisions) &&
      this.#revisions.interned(y.appliedRevisions)
    ) {
      return false;
    }
    return canonicalJson(x.appliedRevisions) === canonicalJson(y.appliedRevisions);
  }

  #nodeMoved(name: string): void {
    if (this.#nodesDirty !== "all") this.#nodesDirty.add(name);
  }

  /** Queues a rollout round: now, or when the last one is a second old. */
  #scheduleRollout(): void {
    this.#fleetDirty = true;
    const last = this.#lastRolloutAt;
    const wait = last === undefined ? 0 : last + ROLLOUT_MIN_INTERVAL_MS - this.#d.clock.now();
    // A wall clock that stepped back (a wait longer than the interval) never holds it off.
    if (wait <= 0 || wait > ROLLOUT_MIN_INTERVAL_MS) this.#d.queue.add(ROLLOUT_KEY);
    else this.#d.queue.addAfter(ROLLOUT_KEY, wait);
  }

  #allInformers(): ControllerInformer[] {
    const i = this.#d.informers;
    return [
      i.clusterImagePolicies,
      i.imagePolicies,
      i.nodes,
      i.layers,
      i.nodeStatuses,
      ...i.protectedPods,
    ];
  }

  get synced(): boolean {
    return this.#allInformers().every((i) => i.synced);
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.#allInformers().map((i) => i.waitForSync()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#allInformers().map((i) => i.stop()), this.#secrets.stop()]);
  }

  /** How many Secrets the controller watches (only referenced ones). */
  get watchedSecrets(): number {
    return this.#secrets.size;
  }

  /** Processes keys until `signal` aborts (leadership lost) or the queue shuts down. Status keys
   * run up to STATUS_CONCURRENCY at once (each is one object's status write, guarded by its
   * resourceVersion); a layers or rollout key waits until none is in flight and runs alone, so
   * the plan and the node snapshot never change under a status being computed. */
  async runWorker(signal: AbortSignal): Promise<void> {
    const { queue } = this.#d;
    queue.add(LAYERS_KEY);
    const inFlight = new Set<Promise<void>>();
    try {
      for (;;) {
        const key = await queue.get();
        if (key === undefined) return;
        if (signal.aborted) {
          // Not the leader any more: leave the key for the next leader's worker.
          queue.done(key);
          queue.add(key);
          return;
        }
        if (!key.startsWith(STATUS_PREFIX)) {
          await Promise.all(inFlight);
          await this.#process(key);
          continue;
        }
        const run: Promise<void> = this.#process(key).finally(() => inFlight.delete(run));
        inFlight.add(run);
        if (inFlight.size >= STATUS_CONCURRENCY) await Promise.race(inFlight);
      }
    } finally {
      await Promise.all(inFlight);
    }
  }

  /** One key: reconciled, counted, and retried with backoff on failure (never throws). */
  async #process(key: string): Promise<void> {
    const { queue, metrics, logger } = this.#d;
    const kind = key === LAYERS_KEY ? "layers" : key === ROLLOUT_KEY ? "rollout" : "status";
    const end = metrics.reconcileDuration.startTimer({ kind });
    try {
      await this.reconcile(key);
      queue.forget(key);
      metrics.reconciles.inc({ kind, result: "success" });
    } catch (err) {
      metrics.reconciles.inc({ kind, result: "error" });
      metrics.reconcileErrors.inc({ kind });
      // A 409 is a status computed from a cache that had not yet seen the last write: retry.
      if (isConflict(err)) logger.debug({ key }, "conflict; retrying");
      else logger.warn({ err, key, failures: queue.failures(key) }, "reconcile failed; retrying");
      queue.addRateLimited(key);
    } finally {
      end();
      queue.done(key);
    }
  }

  async reconcile(key: string): Promise<void> {
    if (key === LAYERS_KEY) await this.#reconcileLayers();
    else if (key === ROLLOUT_KEY) this.#reconcileRollout();
    else if (key.startsWith(STATUS_PREFIX))
      await this.#reconcileStatus(key.slice(STATUS_PREFIX.length));
  }

  /** The CRI-O version to compile for: the override, else the oldest CRI-O node, else the newest
   * known. */
  target(entries: readonly NodeEntry[] = this.#snapshot()): CrioVersion {
    if (this.#o.crioVersionOverride !== undefined) return this.#o.crioVersionOverride;
    let oldest: CrioVersion | undefined;
    for (const { crioVersion: v } of entries) {
      if (v === undefined || v === null) continue;
      if (oldest === undefined || compareCrioVersions(v, oldest) < 0) oldest = v;
    }
    return oldest ?? LATEST_KNOWN;
  }

  /** A Node's CRI-O version, parsed once per distinct string (a fleet runs a handful; target()
   * runs every rollout round); null, with one warning, when it cannot be parsed. */
  #crioVersion(version: string, node: string): CrioVersion | null {
    let parsed = this.#crioVersions.get(version);
    if (parsed !== undefined) return parsed;
    try {
      parsed = parseCrioVersion(version);
    } catch (err) {
      this.#d.logger.warn({ node, err }, "unparseable CRI-O version");
      parsed = null;
    }
    if (this.#crioVersions.size >= 256) this.#crioVersions.clear();
    this.#crioVersions.set(version, parsed);
    return parsed;
  }

  async #reconcileLayers(): Promise<void> {
    const { informers, api, logger, metrics, events } = this.#d;
    const ns = this.#o.namespace;
    const configMaps = informers.layers.list().filter((cm) => cm.metadata.namespace === ns);
    const published = readPublished(configMaps);
    for (const problem of published.problems)
      logger.warn({ problem }, "published layer unreadable");
    const objects = [...informers.clusterImagePolicies.list(), ...informers.imagePolicies.list()];
    await this.#secrets.watch(referencedSecrets(objects, ns));
    metrics.secretsWatched.set(this.#secrets.size);
    const unread = this.#secrets.unread(SECRET_GRACE_MS);
    // Settling Secrets become pending (and say so) if they are still unread after the grace.
    if (unread.settling.size > 0) this.#d.queue.addAfter(LAYERS_KEY, SECRET_GRACE_MS);
    const target = this.target();
    const p = plan({
      objects,
      secrets: this.#secrets.lookup,
      pendingSecrets: unread.pending,
      settlingSecrets: unread.settling,
      target,
      publishedCluster: published.cluster,
      publishedNamespaces: published.namespaces,
      operatorNamespace: ns,
      protectedImages: this.#protectedImages(),
      quota: this.#o.quota,
      namespaceLookasidePrefixes: this.#o.namespaceLookasidePrefixes,
      cache: this.#planCache,
    });
    for (const warning of p.warnings) logger.warn({ warning }, "policy set problem");

    // Each layer on its own: a failure is recorded for that layer's policies and retried, and
    // never stops the others (the cluster layer first, then namespaces in order).
    const errors = new Map<string, { revision: string; error: string }>();
    const wanted: [string | undefined, { text: string; revision: string }][] = [
      [undefined, p.cluster],
      ...p.namespaces,
    ];
    // How close the layers come to what a ConfigMap holds (an alert warns before the limit).
    metrics.layerLimitBytes.set(MAX_LAYER_BYTES);
    metrics.layerBytes.set({ layer: "cluster" }, Buffer.byteLength(p.cluster.text));
    let largest = 0;
    for (const [, l] of p.namespaces) largest = Math.max(largest, Buffer.byteLength(l.text));
    metrics.layerBytes.set({ layer: "largest_namespace" }, largest);
    for (const [layerNs, layer] of wanted) {
      const obj = layerConfigMap(ns, layerNs, layer.text, layer.revision);
      const name = obj.metadata.name;
      const what = layerNs === undefined ? "cluster layer" : `layer of namespace ${layerNs}`;
      const bytes = Buffer.byteLength(layer.text);
      if (bytes > MAX_LAYER_BYTES) {
        errors.set(layerNs ?? "", {
          revision: layer.revision,
          error: `the ${what} is ${bytes} bytes, more than a ConfigMap holds (${MAX_LAYER_BYTES}); the published revision stays in force`,
        });
        continue;
      }
      if (isUpToDate(informers.layers.get(name, ns), obj)) {
        this.#applied.set(name, obj);
        continue;
      }
      try {
        // Recorded first: the watch event of this very apply may arrive before it returns.
        this.#applied.set(name, obj);
        const applied = await api.apply(obj, FIELD_MANAGER);
        metrics.layersPublished.inc({ layer: layerNs === undefined ? "cluster" : "namespace" });
        logger.info(
          { configMap: name, revision: layer.revision, resourceVersion: applied.resourceVersion },
          "published layer",
        );
        await events.record(
          { apiVersion: "v1", kind: "ConfigMap", name, namespace: ns },
          "Normal",
          "LayerPublished",
          "Publish",
          `${what} at revision ${layer.revision}`,
        );
      } catch (err) {
        this.#applied.delete(name);
        errors.set(layerNs ?? "", {
          revision: layer.revision,
          error: `the API server refused it: ${(err as Error).message}`,
        });
      }
    }
    for (const [name, layerNs] of published.configMaps) {
      if (layerNs === undefined || p.namespaces.has(layerNs)) continue;
      if (name !== layerConfigMapName(layerNs)) continue;
      try {
        this.#applied.delete(name);
        await api.delete(Resources.configMaps, { name, namespace: ns });
        metrics.layersDeleted.inc();
        logger.info({ configMap: name }, "deleted the layer of a namespace without policies");
      } catch (err) {
        errors.set(layerNs, { revision: "", error: (err as Error).message });
      }
    }
    // Orphans: managed ConfigMaps that are not layers at all are left alone.

    const before = this.#plan;
    this.#plan = p;
    this.#plannedTarget = formatCrioVersion(target);
    this.#publishErrors = errors;
    metrics.objectsRefused.set(
      [...p.outcomes.values()].filter((o) => o.refusals.length > 0).length,
    );
    metrics.layersUnpublished.set(errors.size);
    // The objects whose own outcome changed; those whose layer changed follow from the rollout.
    for (const [key, outcome] of p.outcomes) {
      const old = before?.outcomes.get(key);
      if (old === undefined || outcomeJson(old) !== outcomeJson(outcome)) {
        this.#d.queue.add(`${STATUS_PREFIX}${key}`);
      }
    }
    this.#reconcileRollout();
    if (errors.size > 0) {
      for (const [layerNs, e] of errors) {
        logger.warn(
          { layer: layerNs === "" ? "cluster" : layerNs, error: e.error },
          "layer not published",
        );
      }
      throw new LayerPublishError(
        `${errors.size} layer(s) not published: ${[...errors.keys()].map((k) => (k === "" ? "cluster" : k)).join(", ")}`,
      );
    }
  }

  /** One rollout round: a new snapshot of the nodes, and the status of every object whose
   * layer's rollout changed queued (a layer still rolling out with backoff, see the top). */
  #reconcileRollout(): void {
    const { clock, queue, metrics } = this.#d;
    const now = clock.now();
    this.#lastRolloutAt = now;
    this.#fleetDirty = false;
    const entries = this.#snapshot();
    this.#fleet = new Fleet(entries.map((e) => e.view));
    const p = this.#plan;
    if (p === undefined) {
      queue.add(LAYERS_KEY);
      return;
    }
    if (
      this.#o.crioVersionOverride === undefined &&
      formatCrioVersion(this.target(entries)) !== this.#plannedTarget
    ) {
      queue.add(LAYERS_KEY);
    }
    const members = new Map<string, string[]>();
    for (const [key, outcome] of p.outcomes) {
      if (!outcome.inLayer) continue;
      const layer = outcome.ref.namespace ?? "";
      const list = members.get(layer);
      if (list === undefined) members.set(layer, [key]);
      else list.push(key);
    }
    let later: number | undefined;
    for (const [layer, keys] of members) {
      const ref = this.#layerRef(layer);
      if (ref === undefined) continue;
      const progress = layerProgress(this.#fleet, ref);
      let seen = this.#seen.get(layer);
      if (seen?.view !== progress.view) {
        seen = { view: progress.view, since: now };
        this.#seen.set(layer, seen);
      }
      const written = this.#written.get(layer);
      if (written?.view === progress.view) continue;
      const immediate =
        written === undefined || progress.settled || written.revision !== progress.revision;
      if (!immediate) {
        // Still rolling out: a new step once the backoff allows; within a step, only counts
        // that stopped changing (a stalled rollout).
        const due = written.at + written.backoffMs;
        const wake =
          progress.step !== written.step ? due : Math.max(due, seen.since + ROLLOUT_QUIET_MS);
        if (now < wake) {
          later = Math.min(later ?? wake, wake);
          continue;
        }
      }
      this.#written.set(layer, {
        view: progress.view,
        revision: progress.revision,
        step: progress.step,
        at: now,
        backoffMs: immediate
          ? ROLLOUT_BACKOFF_MS
          : Math.min(2 * written.backoffMs, ROLLOUT_MAX_BACKOFF_MS),
      });
      for (const key of keys) queue.add(`${STATUS_PREFIX}${key}`);
    }
    for (const layers of [this.#written, this.#seen]) {
      for (const layer of layers.keys()) if (!members.has(layer)) layers.delete(layer);
    }
    // A layer whose progress waits is looked at again when its wait is over.
    if (later !== undefined) queue.addAfter(ROLLOUT_KEY, later - now);
    metrics.rolloutGroups.set(this.#revisions.size);
  }

  /** Where an object of `layer` ("" = cluster) stands in the last plan. */
  #layerRef(layer: string): LayerRef | undefined {
    const p = this.#plan;
    if (p === undefined) return undefined;
    const failed = this.#publishErrors.get(layer);
    const error = failed === undefined ? {} : { publishError: failed.error };
    if (layer === "") return { kind: "cluster", revision: p.cluster.revision, ...error };
    const nsLayer = p.namespaces.get(layer);
    return nsLayer === undefined
      ? undefined
      : { kind: "namespace", namespace: layer, revision: nsLayer.revision, ...error };
  }

  /** The static list and the images of every pod in the protected namespaces. */
  #protectedImages(): ProtectedImage[] {
    const out = [...this.#o.protectedImages];
    const seen = new Set(out.map((i) => `${i.reference}\n${JSON.stringify(i.namespaces)}`));
    for (const pods of this.#d.informers.protectedPods) {
      for (const pod of pods.list()) {
        const namespace = pod.metadata.namespace;
        if (namespace === undefined) continue;
        for (const raw of podImagesOf(pod)) {
          const image = parseImage(raw);
          if (!image.ok) continue;
          const key = `${image.reference}\n${JSON.stringify([namespace])}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out.push({
            reference: image.reference,
            reason: "WouldRejectProtectedImage",
            namespaces: [namespace],
            what: `the image of pod ${namespace}/${pod.metadata.name}`,
          });
        }
      }
    }
    return out;
  }

  async #reconcileStatus(key: string): Promise<void> {
    const p = this.#plan;
    if (p === undefined) {
      this.#d.queue.add(LAYERS_KEY);
      return;
    }
    const outcome = p.outcomes.get(key);
    if (outcome === undefined) return; // not planned yet: the layers key will queue it
    const { ref } = outcome;
    const informer =
      ref.kind === "ClusterImagePolicy"
        ? this.#d.informers.clusterImagePolicies
        : this.#d.informers.imagePolicies;
    const obj = informer.get(ref.name, ref.namespace);
    if (obj === undefined) return;
    // Changed since the plan: its event queued the layers key, which queues this key again.
    if (obj.metadata.generation !== outcome.generation) return;

    // Thousands of status keys may wait in the queue ahead of the rollout key: one that runs
    // while reports changed and a round is due runs the round first, so no status is written
    // from a snapshot older than the interval (and written again right after).
    const since = this.#lastRolloutAt === undefined ? 0 : this.#d.clock.now() - this.#lastRolloutAt;
    if (this.#fleetDirty && (since >= ROLLOUT_MIN_INTERVAL_MS || since < 0)) {
      this.#reconcileRollout();
    }
    const layer = outcome.inLayer ? this.#layerRef(ref.namespace ?? "") : undefined;
    const observed = observedStatus(obj);
    const now = new Date(this.#d.clock.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    const desired = desiredStatus(outcome, layer, this.#fleet, observed, now);
    if (!statusChanged(desired, observed)) return;
    const resource =
      ref.kind === "ClusterImagePolicy" ? Resources.clusterImagePolicies : Resources.imagePolicies;
    const written = await this.#d.api.patchStatus(resource, ref, desired, {
      resourceVersion: obj.metadata.resourceVersion,
    });
    this.#ownWrites.set(key, written.resourceVersion);
    this.#d.metrics.statusWrites.inc();
    const before = observed?.conditions?.find((c) => c.type === "Compiled");
    const compiled = desired.conditions.find((c) => c.type === "Compiled");
    if (
      compiled?.status === "False" &&
      (before?.status !== "False" ||
        before.reason !== compiled.reason ||
        before.message !== compiled.message)
    ) {
      this.#d.logger.info({ object: key, reason: compiled.reason }, "refused a policy");
      await this.#d.events.record(
        eventTarget(ref, obj),
        "Warning",
        compiled.reason,
        "Compile",
        compiled.message,
      );
    }
  }

  /** Every Node with its report, as of now. A rollout round runs this every second while
   * reports stream in: only the nodes whose Node or report had an event since the last call are
   * read again; the first call reads them all. Walking every Node and report took a third of a
   * round at 20,000 nodes (docs/scale.md). The informers emit every change, a relist's deletions
   * included, so the entries stay what a full walk gives. */
  #snapshot(): NodeEntry[] {
    const nodes = this.#d.informers.nodes;
    const dirty = this.#nodesDirty;
    this.#nodesDirty = new Set();
    if (dirty === "all") {
      this.#nodeEntries.clear();
      for (const node of nodes.list()) this.#readNode(node.metadata.name, node);
    } else {
      for (const name of dirty) this.#readNode(name, nodes.get(name));
    }
    return [...this.#nodeEntries.values()];
  }

  #readNode(name: string, node: KubeObject | undefined): void {
    const entries = this.#nodeEntries;
    if (node === undefined) {
      entries.delete(name);
      return;
    }
    const report = this.#d.informers.nodeStatuses.get(name);
    const e = entries.get(name);
    if (e?.node === node && e.report === report) return;
    const version = runtimeVersionOf(node);
    const crio = version?.startsWith("cri-o://") === true ? version : undefined;
    entries.set(name, {
      node,
      report,
      view: { name, crio: crio !== undefined, report: nodeReportOf(report, this.#revisions) },
      crioVersion: crio === undefined ? undefined : this.#crioVersion(crio, name),
    });
  }
}

/** A Node as a rollout round reads it, kept while its objects stay the same. */
interface NodeEntry {
  readonly node: KubeObject;
  readonly report: KubeObject | undefined;
  readonly view: NodeView;
  /** Its CRI-O version; null when unparseable, undefined when not CRI-O. */
  readonly crioVersion: CrioVersion | null | undefined;
}

/** An outcome as its status reads it. */
function outcomeJson(o: Outcome): string {
  return canonicalJson({
    generation: o.generation,
    refusals: o.refusals,
    inLayer: o.inLayer,
    layerGeneration: o.layerGeneration,
    exposures: o.exposures.map((e) => e.message),
    reasons: o.exposures.map((e) => e.image.reason),
  });
}

/** A layer's rollout as a status reads it (src/controller/status.ts desiredStatus). */
function layerProgress(fleet: Fleet, layer: LayerRef): LayerProgress {
  const t = fleet.tally(layer);
  return {
    // Every layer, every round: a short array, not canonicalJson of an object.
    view: JSON.stringify([
      layer.revision,
      layer.publishError ?? null,
      fleet.total,
      fleet.crio,
      fleet.crioNotEnforcing,
      t.applied,
      t.enforcing,
      t.crioApplied,
    ]),
    revision: layer.revision,
    settled: layer.publishError !== undefined || t.crioApplied === fleet.crio,
    step:
      fleet.crio === 0
        ? ROLLOUT_PROGRESS_STEPS
        : Math.floor((ROLLOUT_PROGRESS_STEPS * t.crioApplied) / fleet.crio),
  };
}

/** Some layers could not be published; the reconcile is retried with backoff. */
export class LayerPublishError extends Error {
  override readonly name = "LayerPublishError";
}

function eventTarget(ref: ObjectRef, obj: KubeObject) {
  return {
    apiVersion: obj.apiVersion,
    kind: ref.kind,
    name: ref.name,
    namespace: ref.namespace,
    uid: obj.metadata.uid,
  };
}

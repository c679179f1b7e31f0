// The controller's imperative shell: informers in, layer ConfigMaps and policy statuses out.
//
// Level-triggered (docs/style.md habit 10): every informer event only enqueues a key; a reconcile
// recomputes from the caches. Two kinds of key:
// - "layers": recompute every layer (plan.ts), server-side apply the ConfigMaps whose bytes
//   changed, delete namespace layers left empty, then enqueue the status key of every object;
// - "status/<kind>/<namespace>/<name>": compute that object's status from the last plan and the
//   node reports, and patch it when it changed (guarded by resourceVersion).
// Node reports (ImagePolicyNodeStatus) only enqueue status keys. Only the leader runs workers;
// every replica keeps its caches warm so a new leader starts at once.
//
// Secrets are not an informer of the whole cluster: the layers key watches exactly the Secrets
// that policies reference (secretWatches.ts). Each layer ConfigMap is published on its own: one
// that is too large or refused by the API server never holds back another, and the policies in it
// say so in their Applied condition (LayerNotPublished).

import type { Logger } from "pino";
import { z } from "zod";
import type { ObjectRef } from "../api/types.ts";
import {
  LATEST_KNOWN,
  compareCrioVersions,
  parseCrioVersion,
  type CrioVersion,
} from "../compiler/crioVersion.ts";
import { parseImage } from "../compiler/scopes.ts";
import type { KubeClient } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import { isConflict } from "../kube/errors.ts";
import type { EventRecorder } from "../kube/events.ts";
import type { Informer } from "../kube/informer.ts";
import { Resources, type KubeObject } from "../kube/objects.ts";
import type { WorkQueue } from "../kube/workQueue.ts";
import { LAYER_KEY, layerConfigMapName } from "../layerConfigMap.ts";
import { FIELD_MANAGER, isUpToDate, layerConfigMap, readPublished } from "./layerConfigMaps.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { outcomeKey, plan, type NamespaceQuota, type Plan, type ProtectedImage } from "./plan.ts";
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
const STATUS_PREFIX = "status/";

export interface ControllerInformers {
  readonly clusterImagePolicies: Informer;
  readonly imagePolicies: Informer;
  readonly nodes: Informer;
  /** The layer ConfigMaps in the operator namespace (label selector managed-by). */
  readonly layers: Informer;
  readonly nodeStatuses: Informer;
  /** Pods of the protected namespaces (--protected-namespace): their images stay pullable. */
  readonly protectedPods: readonly Informer[];
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
  readonly client: KubeClient;
  readonly informers: ControllerInformers;
  readonly queue: WorkQueue;
  readonly events: EventRecorder;
  readonly metrics: ControllerMetrics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The informer of one referenced Secret (field selector metadata.name). */
  readonly secretInformer: SecretInformerFactory;
}

/** How long a newly watched Secret may stay unread before policies that need it say so. */
const SECRET_GRACE_MS = 10_000;

/** What a ConfigMap holds at most: the API server refuses data (keys and values) over 1 MiB. */
export const MAX_LAYER_BYTES = 1024 * 1024 - LAYER_KEY.length;

const containerImagesSchema = z.looseObject({
  spec: z
    .looseObject({
      containers: z.array(z.looseObject({ image: z.string().optional() })).optional(),
      initContainers: z.array(z.looseObject({ image: z.string().optional() })).optional(),
    })
    .optional(),
});
const nodeSchema = z.looseObject({
  status: z
    .looseObject({
      nodeInfo: z.looseObject({ containerRuntimeVersion: z.string().optional() }).optional(),
    })
    .optional(),
});
const nodeStatusSchema = z.looseObject({
  status: z
    .looseObject({
      enforcing: z.boolean().optional(),
      appliedRevisions: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
});
/** How long one snapshot of the nodes and their reports serves status computations while
 * reports keep changing (see #currentFleet). */
const FLEET_MIN_AGE_MS = 1_000;

export class Controller {
  readonly #o: ControllerOptions;
  readonly #d: ControllerDeps;
  #plan: Plan | undefined;
  /** The nodes and their reports, rebuilt only when a Node or a node status changed: one status
   * round over thousands of policies shares it (bench/controller.ts). */
  #fleet: { readonly key: string; readonly builtAt: number; readonly fleet: Fleet } | undefined;
  #fleetRefreshScheduled = false;
  readonly #secrets: SecretWatches;
  /** Layers whose planned revision could not be published, by "" (cluster) or namespace. */
  #publishErrors = new Map<string, { readonly revision: string; readonly error: string }>();

  constructor(options: ControllerOptions, deps: ControllerDeps) {
    this.#o = options;
    this.#d = deps;
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
    i.clusterImagePolicies.onEvent(layers);
    i.imagePolicies.onEvent(layers);
    i.nodes.onEvent(layers);
    i.layers.onEvent(layers);
    for (const pods of i.protectedPods) pods.onEvent(layers);
    i.nodeStatuses.onEvent(() => {
      this.#enqueueStatuses();
    });
    for (const informer of this.#allInformers()) informer.start();
  }

  #allInformers(): Informer[] {
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

  /** Processes keys until `signal` aborts (leadership lost) or the queue shuts down. */
  async runWorker(signal: AbortSignal): Promise<void> {
    const { queue, metrics, logger } = this.#d;
    queue.add(LAYERS_KEY);
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      if (signal.aborted) {
        // Not the leader any more: leave the key for the next leader's worker.
        queue.done(key);
        queue.add(key);
        return;
      }
      const kind = key === LAYERS_KEY ? "layers" : "status";
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
  }

  async reconcile(key: string): Promise<void> {
    if (key === LAYERS_KEY) await this.#reconcileLayers();
    else if (key.startsWith(STATUS_PREFIX))
      await this.#reconcileStatus(key.slice(STATUS_PREFIX.length));
  }

  /** The CRI-O version to compile for: the override, else the oldest CRI-O node, else the newest
   * known. */
  target(): CrioVersion {
    if (this.#o.crioVersionOverride !== undefined) return this.#o.crioVersionOverride;
    let oldest: CrioVersion | undefined;
    for (const node of this.#d.informers.nodes.list()) {
      const v = runtimeVersion(node);
      if (v === undefined || !v.startsWith("cri-o://")) continue;
      try {
        const parsed = parseCrioVersion(v);
        if (oldest === undefined || compareCrioVersions(parsed, oldest) < 0) oldest = parsed;
      } catch (err) {
        this.#d.logger.warn({ node: node.metadata.name, err }, "unparseable CRI-O version");
      }
    }
    return oldest ?? LATEST_KNOWN;
  }

  async #reconcileLayers(): Promise<void> {
    const { informers, client, logger, metrics, events } = this.#d;
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
    const p = plan({
      objects,
      secrets: this.#secrets.lookup,
      pendingSecrets: unread.pending,
      settlingSecrets: unread.settling,
      target: this.target(),
      publishedCluster: published.cluster,
      publishedNamespaces: published.namespaces,
      operatorNamespace: ns,
      protectedImages: this.#protectedImages(),
      quota: this.#o.quota,
      namespaceLookasidePrefixes: this.#o.namespaceLookasidePrefixes,
    });
    for (const warning of p.warnings) logger.warn({ warning }, "policy set problem");

    // Each layer on its own: a failure is recorded for that layer's policies and retried, and
    // never stops the others (the cluster layer first, then namespaces in order).
    const errors = new Map<string, { revision: string; error: string }>();
    const wanted: [string | undefined, { text: string; revision: string }][] = [
      [undefined, p.cluster],
      ...p.namespaces,
    ];
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
      if (isUpToDate(informers.layers.get(name, ns), obj)) continue;
      try {
        const applied = await client.apply(obj, FIELD_MANAGER);
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
        await client.delete(Resources.configMaps, { name, namespace: ns });
        metrics.layersDeleted.inc();
        logger.info({ configMap: name }, "deleted the layer of a namespace without policies");
      } catch (err) {
        errors.set(layerNs, { revision: "", error: (err as Error).message });
      }
    }
    // Orphans: managed ConfigMaps that are not layers at all are left alone.

    this.#plan = p;
    this.#publishErrors = errors;
    metrics.objectsRefused.set(
      [...p.outcomes.values()].filter((o) => o.refusals.length > 0).length,
    );
    metrics.layersUnpublished.set(errors.size);
    this.#enqueueStatuses();
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

  /** The static list and the images of every pod in the protected namespaces. */
  #protectedImages(): ProtectedImage[] {
    const out = [...this.#o.protectedImages];
    const seen = new Set(out.map((i) => `${i.reference}\n${JSON.stringify(i.namespaces)}`));
    for (const pods of this.#d.informers.protectedPods) {
      for (const pod of pods.list()) {
        const namespace = pod.metadata.namespace;
        const parsed = containerImagesSchema.safeParse(pod);
        if (namespace === undefined || !parsed.success) continue;
        const spec = parsed.data.spec;
        for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
          const image = c.image === undefined ? undefined : parseImage(c.image);
          if (image?.ok !== true) continue;
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

  #enqueueStatuses(afterMs = 0): void {
    const i = this.#d.informers;
    for (const o of [...i.clusterImagePolicies.list(), ...i.imagePolicies.list()]) {
      const ref = policyRef(o);
      if (ref === undefined) continue;
      const key = `${STATUS_PREFIX}${outcomeKey(ref)}`;
      if (afterMs > 0) this.#d.queue.addAfter(key, afterMs);
      else this.#d.queue.add(key);
    }
  }

  async #reconcileStatus(key: string): Promise<void> {
    const p = this.#plan;
    if (p === undefined) {
      this.#d.queue.add(LAYERS_KEY);
      return;
    }
    const outcome = p.outcomes.get(key);
    if (outcome === undefined) return; // not planned yet: the layers key will enqueue it
    const { ref } = outcome;
    const informer =
      ref.kind === "ClusterImagePolicy"
        ? this.#d.informers.clusterImagePolicies
        : this.#d.informers.imagePolicies;
    const obj = informer.get(ref.name, ref.namespace);
    if (obj === undefined) return;
    // Changed since the plan: its event queued the layers key, which queues this key again.
    if (obj.metadata.generation !== outcome.generation) return;

    let layer: LayerRef | undefined;
    if (outcome.inLayer) {
      const failed = this.#publishErrors.get(ref.namespace ?? "");
      const error = failed === undefined ? {} : { publishError: failed.error };
      if (ref.namespace === undefined) {
        layer = { kind: "cluster", revision: p.cluster.revision, ...error };
      } else {
        const nsLayer = p.namespaces.get(ref.namespace);
        if (nsLayer !== undefined) {
          layer = {
            kind: "namespace",
            namespace: ref.namespace,
            revision: nsLayer.revision,
            ...error,
          };
        }
      }
    }
    const observed = observedStatus(obj);
    const now = new Date(this.#d.clock.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    const desired = desiredStatus(outcome, layer, this.#currentFleet(), observed, now);
    if (!statusChanged(desired, observed)) return;
    const resource =
      ref.kind === "ClusterImagePolicy" ? Resources.clusterImagePolicies : Resources.imagePolicies;
    await this.#d.client.patchStatus(resource, ref, desired, {
      resourceVersion: obj.metadata.resourceVersion,
    });
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

  #currentFleet(): Fleet {
    const { nodes, nodeStatuses } = this.#d.informers;
    // Every event moves an informer's resourceVersion: same pair, same nodes and reports.
    const key = `${nodes.resourceVersion}/${nodeStatuses.resourceVersion}`;
    const now = this.#d.clock.now();
    const current = this.#fleet;
    // A wall clock that stepped back (a negative age) counts as old enough: never wait on it.
    const age = current === undefined ? 0 : now - current.builtAt;
    if (current === undefined || (current.key !== key && (age >= FLEET_MIN_AGE_MS || age < 0))) {
      this.#fleet = { key, builtAt: now, fleet: new Fleet(this.#nodes()) };
      this.#fleetRefreshScheduled = false;
      return this.#fleet.fleet;
    }
    if (current.key !== key && !this.#fleetRefreshScheduled) {
      // During a rollout thousands of agents report within seconds: rebuilding for every key
      // would cost a pass over every report per policy. Serve the fleet a moment longer and
      // compute every status again once it may be rebuilt, so the last reports are counted.
      this.#fleetRefreshScheduled = true;
      this.#enqueueStatuses(FLEET_MIN_AGE_MS - age);
    }
    return current.fleet;
  }

  #nodes(): NodeView[] {
    const reports = this.#d.informers.nodeStatuses;
    return this.#d.informers.nodes.list().map((node) => {
      const r = nodeStatusSchema.safeParse(reports.get(node.metadata.name));
      return {
        name: node.metadata.name,
        crio: runtimeVersion(node)?.startsWith("cri-o://") === true,
        report:
          r.success && r.data.status !== undefined
            ? {
                enforcing: r.data.status.enforcing === true,
                appliedRevisions: r.data.status.appliedRevisions ?? {},
              }
            : undefined,
      };
    });
  }
}

/** Some layers could not be published; the reconcile is retried with backoff. */
export class LayerPublishError extends Error {
  override readonly name = "LayerPublishError";
}

function runtimeVersion(node: KubeObject): string | undefined {
  const n = nodeSchema.safeParse(node);
  return n.success ? n.data.status?.nodeInfo?.containerRuntimeVersion : undefined;
}

function policyRef(o: KubeObject): ObjectRef | undefined {
  if (o.kind === "ClusterImagePolicy") return { kind: "ClusterImagePolicy", name: o.metadata.name };
  if (o.kind === "ImagePolicy" && o.metadata.namespace !== undefined) {
    return { kind: "ImagePolicy", name: o.metadata.name, namespace: o.metadata.namespace };
  }
  return undefined;
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

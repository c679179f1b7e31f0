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

import type { Logger } from "pino";
import { z } from "zod";
import type { ObjectRef } from "../api/types.ts";
import {
  LATEST_KNOWN,
  compareCrioVersions,
  parseCrioVersion,
  type CrioVersion,
} from "../compiler/crioVersion.ts";
import type { SecretLookup } from "../compiler/validate.ts";
import type { KubeClient } from "../kube/client.ts";
import type { Clock } from "../kube/clock.ts";
import { isConflict } from "../kube/errors.ts";
import type { EventRecorder } from "../kube/events.ts";
import type { Informer, InformerEvent } from "../kube/informer.ts";
import { Resources, type KubeObject } from "../kube/objects.ts";
import type { WorkQueue } from "../kube/workQueue.ts";
import { layerConfigMapName } from "../layerConfigMap.ts";
import { FIELD_MANAGER, isUpToDate, layerConfigMap, readPublished } from "./layerConfigMaps.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { outcomeKey, plan, type Plan, type ProtectedImage } from "./plan.ts";
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
  readonly secrets: Informer;
  readonly nodes: Informer;
  /** The layer ConfigMaps in the operator namespace (label selector managed-by). */
  readonly layers: Informer;
  readonly nodeStatuses: Informer;
}

export interface ControllerOptions {
  /** The operator namespace, where the layer ConfigMaps live. */
  readonly namespace: string;
  readonly crioVersionOverride: CrioVersion | undefined;
  readonly protectedImages: readonly ProtectedImage[];
}

export interface ControllerDeps {
  readonly client: KubeClient;
  readonly informers: ControllerInformers;
  readonly queue: WorkQueue;
  readonly events: EventRecorder;
  readonly metrics: ControllerMetrics;
  readonly clock: Clock;
  readonly logger: Logger;
}

const secretDataSchema = z.looseObject({ data: z.record(z.string(), z.string()).optional() });
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
const secretRefSchema = z.looseObject({ name: z.string(), namespace: z.string().optional() });
const keySourceSchema = z.looseObject({ keySecretRef: secretRefSchema.optional() });
const policyRefsSchema = z.looseObject({
  spec: z
    .looseObject({
      policy: z
        .looseObject({
          rootOfTrust: z
            .looseObject({
              publicKey: keySourceSchema
                .extend({ additionalKeys: z.array(keySourceSchema).optional() })
                .optional(),
            })
            .optional(),
        })
        .optional(),
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

  constructor(options: ControllerOptions, deps: ControllerDeps) {
    this.#o = options;
    this.#d = deps;
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
    i.secrets.onEvent((e) => {
      if (this.#referenced(e)) layers();
    });
    i.nodeStatuses.onEvent(() => {
      this.#enqueueStatuses();
    });
    for (const informer of this.#allInformers()) informer.start();
  }

  #allInformers(): Informer[] {
    const i = this.#d.informers;
    return [i.clusterImagePolicies, i.imagePolicies, i.secrets, i.nodes, i.layers, i.nodeStatuses];
  }

  get synced(): boolean {
    return this.#allInformers().every((i) => i.synced);
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.#allInformers().map((i) => i.waitForSync()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.#allInformers().map((i) => i.stop()));
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
    const p = plan({
      objects: [...informers.clusterImagePolicies.list(), ...informers.imagePolicies.list()],
      secrets: this.#secretLookup(),
      target: this.target(),
      publishedCluster: published.cluster,
      publishedNamespaces: published.namespaces,
      operatorNamespace: ns,
      protectedImages: this.#o.protectedImages,
    });
    for (const warning of p.warnings) logger.warn({ warning }, "policy set problem");

    const wanted: [string | undefined, { text: string; revision: string }][] = [
      [undefined, p.cluster],
      ...p.namespaces,
    ];
    for (const [layerNs, layer] of wanted) {
      const obj = layerConfigMap(ns, layerNs, layer.text, layer.revision);
      const name = obj.metadata.name;
      if (isUpToDate(informers.layers.get(name, ns), obj)) continue;
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
        `${layerNs === undefined ? "cluster layer" : `layer of namespace ${layerNs}`} at revision ${layer.revision}`,
      );
    }
    for (const [name, layerNs] of published.configMaps) {
      if (layerNs === undefined || p.namespaces.has(layerNs)) continue;
      if (name !== layerConfigMapName(layerNs)) continue;
      await client.delete(Resources.configMaps, { name, namespace: ns });
      metrics.layersDeleted.inc();
      logger.info({ configMap: name }, "deleted the layer of a namespace without policies");
    }
    // Orphans: managed ConfigMaps that are not layers at all are left alone.

    this.#plan = p;
    metrics.objectsRefused.set(
      [...p.outcomes.values()].filter((o) => o.refusals.length > 0).length,
    );
    this.#enqueueStatuses();
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
      if (ref.namespace === undefined) layer = { kind: "cluster", revision: p.cluster.revision };
      else {
        const nsLayer = p.namespaces.get(ref.namespace);
        if (nsLayer !== undefined) {
          layer = { kind: "namespace", namespace: ref.namespace, revision: nsLayer.revision };
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

  #secretLookup(): SecretLookup {
    const secrets = this.#d.informers.secrets;
    return (namespace, name, key) => {
      const s = secretDataSchema.safeParse(secrets.get(name, namespace));
      return s.success ? s.data.data?.[key] : undefined;
    };
  }

  /** Whether a Secret event can matter: some policy references that Secret. */
  #referenced(e: InformerEvent): boolean {
    const { name, namespace } = e.object.metadata;
    const i = this.#d.informers;
    const refs = (o: KubeObject, ownNamespace: string | undefined): boolean => {
      const p = policyRefsSchema.safeParse(o);
      if (!p.success) return true; // cannot tell: reconcile
      const pk = p.data.spec?.policy?.rootOfTrust?.publicKey;
      const sources = [pk, ...(pk?.additionalKeys ?? [])];
      return sources.some((s) => {
        const ref = s?.keySecretRef;
        return (
          ref !== undefined && ref.name === name && (ownNamespace ?? ref.namespace) === namespace
        );
      });
    };
    return (
      i.clusterImagePolicies.list().some((o) => refs(o, undefined)) ||
      i.imagePolicies.list().some((o) => o.metadata.namespace === namespace && refs(o, namespace))
    );
  }
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

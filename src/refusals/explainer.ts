// The imperative shell of refusal explanations, run by the controller's leader (main.ts):
// the kubelet's pod Events in (eventStream.ts, field-selected on the API server), an Event on the
// pod and an ImagePullRefusal record out.
//
// Bounded work per Event: an Event is parsed (at most MAX_MESSAGE characters), looked up in the
// dedupe map and dropped unless it is a new (pod, image, published revision); a pod in
// ImagePullBackOff, whose kubelet repeats its Event for as long as the pod lives, is explained
// once per policy revision. New ones are rate-limited overall and per namespace and wait in a
// bounded map for one worker; what is dropped (rate limit, full map, a failed write) is not lost
// for good: the kubelet repeats the Event at its next retry, and it is explained then. Memory is
// bounded by the capacities below, never by the number of pods, Events or namespaces.
//
// Why the controller and not each node's agent: the API server cannot select Events by node
// (core/v1 Event field selectors: involvedObject.*, reason, source, type, reportingComponent), so
// every agent would watch every pod Event of the cluster, and every node's credentials would need
// the right to write into every namespace. One watch in the controller, whose RBAC already spans
// the cluster, costs one stream (docs/explain.md).

import { Counter, type Registry } from "prom-client";
import { z } from "zod";
import { parseCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import type { Clock, Delay, EventSink, KubeObject, ListWatcher } from "../kube/index.ts";
import { CLUSTER_LAYER_NAME, layerConfigMapName } from "../layerConfigMap.ts";
import { streamObjects, type StreamLogger } from "./eventStream.ts";
import { explainRefusal, type NodeReport } from "./explainRefusal.ts";
import { LayerCache, type PublishedLayer } from "./layers.ts";
import { BoundedLru, RateLimiter, type Rate } from "./limits.ts";
import { parseRefusalEvent, type Refusal } from "./parse.ts";
import { recordName, recordObject, recordStatus } from "./record.ts";

export interface ExplainerLogger extends StreamLogger {
  debug(obj: object, msg: string): void;
}

/** The record writes, over KubeClient (kubeRecordStore in main.ts) or a fake. */
export interface RecordStore {
  get(namespace: string, name: string): Promise<KubeObject | undefined>;
  create(obj: KubeObject): Promise<KubeObject>;
  replace(obj: KubeObject): Promise<KubeObject>;
  patchStatus(namespace: string, name: string, status: unknown): Promise<void>;
}

export interface ExplainerDeps {
  /** core/v1 Events selected with REFUSAL_EVENT_SELECTOR, all namespaces. */
  readonly events: ListWatcher;
  /** A layer ConfigMap of the operator namespace by name (the controller's informer). */
  readonly layerConfigMap: (name: string) => KubeObject | undefined;
  /** The ImagePolicyNodeStatus of a node (the controller's informer). */
  readonly nodeStatus: (node: string) => KubeObject | undefined;
  readonly records: RecordStore;
  readonly eventSink: EventSink;
  readonly clock: Clock;
  readonly delay: Delay;
  readonly logger: ExplainerLogger;
  /** Where the counters go (the controller's /metrics registry). */
  readonly registry?: Registry;
}

export interface ExplainerLimits {
  readonly global: Rate;
  readonly perNamespace: Rate;
  /** Namespaces whose buckets are remembered. */
  readonly namespaces: number;
  /** (pod, image, revision) keys remembered as explained. */
  readonly dedupe: number;
  /** Refusals waiting for the worker. */
  readonly pending: number;
  /** Parsed layers kept (one per layer ConfigMap). */
  readonly layers: number;
}

export const DEFAULT_LIMITS: ExplainerLimits = {
  global: { perSecond: 5, burst: 50 },
  perNamespace: { perSecond: 0.5, burst: 10 },
  namespaces: 4096,
  dedupe: 10_000,
  pending: 256,
  layers: 256,
};

export const EVENT_REASON = "ImagePolicyRefused";

type Outcome =
  | "explained"
  | "deduplicated"
  | "rate_limited"
  | "dropped"
  | "no_layer"
  | "failed"
  | "not_a_refusal";

interface Job {
  readonly key: string;
  readonly refusal: Refusal;
  readonly cluster: PublishedLayer;
  readonly namespace: PublishedLayer | undefined;
}

const nodeStatusSchema = z.looseObject({
  status: z
    .looseObject({
      enforcing: z.boolean().optional(),
      appliedRevisions: z.record(z.string(), z.string()).optional(),
      runtime: z.looseObject({ version: z.string().optional() }).optional(),
    })
    .optional(),
});

/** The parts of an ImagePolicyNodeStatus an explanation uses; undefined when there is none. */
export function nodeReport(name: string, obj: KubeObject | undefined): NodeReport | undefined {
  if (obj === undefined) return undefined;
  const parsed = nodeStatusSchema.safeParse(obj);
  if (!parsed.success) return undefined;
  const s = parsed.data.status;
  let crioVersion: CrioVersion | undefined;
  try {
    crioVersion =
      s?.runtime?.version === undefined ? undefined : parseCrioVersion(s.runtime.version);
  } catch {
    crioVersion = undefined;
  }
  return {
    name,
    ...(crioVersion === undefined ? {} : { crioVersion }),
    ...(s?.enforcing === undefined ? {} : { enforcing: s.enforcing }),
    appliedRevisions: s?.appliedRevisions ?? {},
  };
}

const generationSchema = z.looseObject({
  metadata: z.looseObject({ generation: z.number().int().optional() }),
  spec: z.looseObject({ podUID: z.string().optional() }).optional(),
});

export class RefusalExplainer {
  readonly #d: ExplainerDeps;
  readonly #limits: ExplainerLimits;
  readonly #explained: BoundedLru<string, true>;
  readonly #pending = new Map<string, Job>();
  readonly #limiter: RateLimiter;
  readonly #layers: LayerCache;
  readonly #counter: Counter<"result"> | undefined;
  readonly #outcomes = new Map<Outcome, number>();
  #wake: (() => void) | undefined;

  constructor(deps: ExplainerDeps, limits: ExplainerLimits = DEFAULT_LIMITS) {
    this.#d = deps;
    this.#limits = limits;
    this.#explained = new BoundedLru(limits.dedupe);
    this.#limiter = new RateLimiter(
      deps.clock,
      limits.global,
      limits.perNamespace,
      limits.namespaces,
    );
    this.#layers = new LayerCache(limits.layers);
    this.#counter =
      deps.registry === undefined
        ? undefined
        : new Counter({
            name: "imagepolicy_controller_refusal_events_total",
            help: "Pod Events looked at for signature refusals, by result (explained, deduplicated, rate_limited, dropped, no_layer, failed, not_a_refusal).",
            labelNames: ["result"] as const,
            registers: [deps.registry],
          });
  }

  /** How many Events ended how (for tests and logs). */
  outcomes(): ReadonlyMap<string, number> {
    return new Map(this.#outcomes);
  }

  /** Refusals waiting for the worker. */
  get pending(): number {
    return this.#pending.size;
  }

  #count(o: Outcome): void {
    this.#outcomes.set(o, (this.#outcomes.get(o) ?? 0) + 1);
    this.#counter?.inc({ result: o });
  }

  /** Streams Events and explains refusals until `signal` aborts (leadership lost, shutdown). */
  async run(signal: AbortSignal): Promise<void> {
    const stream = streamObjects(
      { source: this.#d.events, delay: this.#d.delay, logger: this.#d.logger },
      (obj) => {
        this.offer(obj);
      },
      signal,
    );
    await Promise.all([stream, this.#work(signal)]);
  }

  /** One Event from the stream: bounded work, never throws, never waits. */
  offer(event: unknown): void {
    const refusal = parseRefusalEvent(event);
    if (refusal === undefined) {
      this.#count("not_a_refusal");
      return;
    }
    const layers = this.#publishedLayers(refusal.pod.namespace);
    if (layers === undefined) {
      this.#count("no_layer");
      return;
    }
    const key = [
      refusal.pod.uid,
      refusal.reference,
      layers.cluster.revision,
      layers.namespace?.revision ?? "",
    ].join("\0");
    if (this.#explained.has(key) || this.#pending.has(key)) {
      this.#count("deduplicated");
      return;
    }
    if (this.#pending.size >= this.#limits.pending) {
      this.#count("dropped");
      return;
    }
    if (!this.#limiter.tryTake(refusal.pod.namespace)) {
      this.#count("rate_limited");
      return;
    }
    this.#pending.set(key, { key, refusal, ...layers });
    this.#wake?.();
  }

  #publishedLayers(
    namespace: string,
  ): { cluster: PublishedLayer; namespace: PublishedLayer | undefined } | undefined {
    const clusterCm = this.#d.layerConfigMap(CLUSTER_LAYER_NAME);
    if (clusterCm === undefined) return undefined;
    try {
      const cluster = this.#layers.read(clusterCm, undefined);
      const nsCm = this.#d.layerConfigMap(layerConfigMapName(namespace));
      return {
        cluster,
        namespace: nsCm === undefined ? undefined : this.#layers.read(nsCm, namespace),
      };
    } catch (err) {
      this.#d.logger.warn({ err }, "a published layer is unreadable; refusals wait");
      return undefined;
    }
  }

  async #work(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const next = this.#pending.values().next();
      if (next.done === true) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.#wake = undefined;
            signal.removeEventListener("abort", done);
            resolve();
          };
          this.#wake = done;
          signal.addEventListener("abort", done, { once: true });
        });
        continue;
      }
      const job = next.value;
      try {
        await this.#explain(job);
        this.#explained.set(job.key, true);
        this.#count("explained");
      } catch (err) {
        // Not remembered: the kubelet's next repeat of the Event tries again.
        this.#count("failed");
        this.#d.logger.warn(
          { err, pod: `${job.refusal.pod.namespace}/${job.refusal.pod.name}` },
          "cannot record a refusal explanation",
        );
      } finally {
        this.#pending.delete(job.key);
      }
    }
  }

  async #explain(job: Job): Promise<void> {
    const { refusal } = job;
    const name = recordName(refusal);
    const node =
      refusal.node === undefined
        ? undefined
        : nodeReport(refusal.node, this.#d.nodeStatus(refusal.node));
    const x = explainRefusal({
      refusal,
      cluster: job.cluster,
      namespace: job.namespace,
      node,
      recordName: name,
    });
    const ns = refusal.pod.namespace;
    const records = this.#d.records;
    let current = await records.get(ns, name);
    const wanted = recordObject(refusal);
    if (current === undefined) {
      current = await records.create(wanted);
    } else if (generationSchema.safeParse(current).data?.spec?.podUID !== refusal.pod.uid) {
      // A pod of the same name, recreated: the record is about the new one now.
      current = await records.replace({
        ...wanted,
        metadata: { ...wanted.metadata, resourceVersion: current.metadata.resourceVersion },
      });
    }
    const generation = generationSchema.safeParse(current).data?.metadata.generation;
    const now = new Date(this.#d.clock.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    await records.patchStatus(ns, name, recordStatus(refusal, x, generation, now));
    await this.#d.eventSink.record(
      {
        apiVersion: "v1",
        kind: "Pod",
        name: refusal.pod.name,
        namespace: ns,
        uid: refusal.pod.uid,
      },
      "Warning",
      EVENT_REASON,
      "Explain",
      x.summary,
    );
    this.#d.logger.debug(
      { pod: `${ns}/${refusal.pod.name}`, image: refusal.reference, layer: x.decidingLayer },
      "explained a refusal",
    );
  }
}

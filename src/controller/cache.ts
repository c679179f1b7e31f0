// What the controller's informers keep of each object (docs/scale.md, "Controller"). At 5,000 nodes
// the ImagePolicyNodeStatus reports dominate its memory: each lists cluster.json and every
// namespace file (500 with the large fixture) with a revision, ~28 KB of JSON and ~50 KB of heap
// per report, 250 MB for the fleet, although nearly every node reports the same revisions. So:
// - a report is reduced to what rollout counts read (enforcing, appliedRevisions) and the runtime
//   version refusal explanations note, and its appliedRevisions map is interned: nodes that
//   report the same map share one frozen object, held weakly, so a map nobody reports any more
//   is collected (reportJson.ts finds it by its text, before the rest of the report is parsed);
// - a Node to its name and containerRuntimeVersion; a protected pod to its container images;
// - a policy object loses metadata.managedFields and the last-applied-configuration annotation
//   (which repeats the spec), nothing the plan or the status reads.
// The reduction runs on every object a list or a watch delivers, before the informer caches it
// (compactSource).

import { createHash } from "node:crypto";
import type { KubeObject, ListWatcher } from "../kube/index.ts";

/** Wraps `source` so that every object it delivers is `reduce(object)`. */
export function compactSource(
  source: ListWatcher,
  reduce: (object: KubeObject) => KubeObject,
): ListWatcher {
  return {
    // Reduced page by page: a restart at 5,000 nodes would otherwise hold every full report
    // (~28 KB of JSON each) at once before reducing any (docs/scale.md).
    list: (signal, each) =>
      source.list(signal, each === undefined ? reduce : (o) => each(reduce(o))),
    watch: (resourceVersion, onEvent, signal) =>
      source.watch(
        resourceVersion,
        (event) => {
          onEvent(
            event.type === "BOOKMARK" ? event : { type: event.type, object: reduce(event.object) },
          );
        },
        signal,
      ),
  };
}

/** `v` when it is a JSON object (not an array). */
export function record(v: unknown): object | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
}

/** `o[key]` of a JSON object, or undefined. */
export function field(o: unknown, key: string): unknown {
  const r = record(o);
  return r === undefined ? undefined : Reflect.get(r, key);
}

/** Maps compared by entries before one is hashed (intern). */
const RECENT_PER_SHAPE = 4;
/** Map texts kept for internText (~20 KB each with the large fixture). */
const RECENT_TEXTS = 16;

/** `a` (all strings) and `b` (a shared map of as many entries) hold the same entries. */
function sameEntries(a: Readonly<Record<string, unknown>>, b: Revisions): boolean {
  for (const k in a) if (!Object.hasOwn(b, k) || b[k] !== a[k]) return false;
  return true;
}

/** Only the identity of an object (what the informer keys and compares by). */
function identity(o: KubeObject): KubeObject {
  const m = o.metadata;
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: {
      name: m.name,
      ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
      ...(m.uid === undefined ? {} : { uid: m.uid }),
      ...(m.resourceVersion === undefined ? {} : { resourceVersion: m.resourceVersion }),
    },
  };
}

/** A string-to-string map as a node reports it. */
export type Revisions = Readonly<Record<string, string>>;

/** One shared, frozen object per distinct appliedRevisions map; a map no report holds any more
 * is collected with its last holder. Exact: two maps are the same object exactly when their
 * entries are equal, so a different object means different revisions. */
export class RevisionsInterner {
  readonly #byContent = new Map<string, WeakRef<Revisions>>();
  readonly #interned = new WeakSet<object>();
  readonly #finalizer = new FinalizationRegistry<{ key: string; shape: string }>((held) => {
    if (this.#byContent.get(held.key)?.deref() === undefined) this.#byContent.delete(held.key);
    const alive = this.#recent.get(held.shape)?.filter((w) => w.deref() !== undefined) ?? [];
    if (alive.length === 0) this.#recent.delete(held.shape);
    else this.#recent.set(held.shape, alive);
  });
  /** The maps last interned, by shape (entry count and cluster.json's revision), newest first:
   * a report nearly always equals one of them (the fleet converges on a few maps), and comparing
   * its entries costs a tenth of sorting and hashing them (docs/scale.md). */
  readonly #recent = new Map<string, WeakRef<Revisions>[]>();
  /** The JSON texts last interned (internText), oldest first: the API server writes a map's keys
   * in order, so the reports of one map have the same text. */
  readonly #byText = new Map<string, WeakRef<Revisions>>();

  /** The shared map equal to `value`, or undefined when `value` is not a map of strings. */
  intern(value: unknown): Revisions | undefined {
    const r = record(value) as Readonly<Record<string, unknown>> | undefined;
    if (r === undefined) return undefined;
    if (this.#interned.has(r)) return r as Revisions;
    let size = 0;
    for (const k in r) {
      if (typeof r[k] !== "string") return undefined;
      size += 1;
    }
    const cluster = r["cluster.json"];
    const shape = `${String(size)}\n${typeof cluster === "string" ? cluster : ""}`;
    const recent = this.#recent.get(shape) ?? [];
    for (let i = 0; i < recent.length; i++) {
      const candidate = recent[i]?.deref();
      if (candidate === undefined || !sameEntries(r, candidate)) continue;
      if (i > 0) recent.unshift(...recent.splice(i, 1));
      return candidate;
    }
    const shared = this.#exact(r, shape);
    recent.unshift(new WeakRef(shared));
    if (recent.length > RECENT_PER_SHAPE) recent.length = RECENT_PER_SHAPE;
    this.#recent.set(
      shape,
      recent.filter((w) => w.deref() !== undefined),
    );
    return shared;
  }

  /** The shared map whose JSON text is `text`, or undefined when `text` is not the JSON of a map
   * of strings. A text seen lately costs a lookup: no parse, no comparison of entries. */
  internText(text: string): Revisions | undefined {
    const known = this.#byText.get(text)?.deref();
    if (known !== undefined) return known;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return undefined;
    }
    const shared = this.intern(value);
    if (shared === undefined) return undefined;
    // A copy: `text` may be a slice of a whole list page, which the key would keep alive.
    this.#byText.set(Buffer.from(text).toString(), new WeakRef(shared));
    for (const key of this.#byText.keys()) {
      if (this.#byText.size <= RECENT_TEXTS) break;
      this.#byText.delete(key);
    }
    return shared;
  }

  /** The shared map for `r` (all strings), by a digest of its sorted entries. */
  #exact(r: Readonly<Record<string, unknown>>, shape: string): Revisions {
    const entries = Object.entries(r) as [string, string][];
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = createHash("sha256").update(JSON.stringify(entries)).digest("base64");
    const known = this.#byContent.get(key)?.deref();
    if (known !== undefined) return known;
    const shared: Revisions = Object.freeze(Object.fromEntries(entries));
    this.#byContent.set(key, new WeakRef(shared));
    this.#interned.add(shared);
    this.#finalizer.register(shared, { key, shape });
    return shared;
  }

  /** True when `value` is a map this interner made: two of them are equal only if identical. */
  interned(value: object): boolean {
    return this.#interned.has(value);
  }

  /** True for a map of strings: one this interner made (checked once, when it was made), or any
   * other after a check of every value. */
  isRevisions(value: object): value is Revisions {
    return this.#interned.has(value) || Object.values(value).every((v) => typeof v === "string");
  }

  /** Distinct maps alive now. */
  get size(): number {
    return this.#byContent.size;
  }
}

/** An ImagePolicyNodeStatus reduced to what rollout counts and refusal explanations read. */
export function compactNodeStatus(o: KubeObject, interner: RevisionsInterner): KubeObject {
  const status = record(field(o, "status"));
  if (status === undefined) return identity(o);
  const applied = interner.intern(field(status, "appliedRevisions"));
  // The runtime version too: the refusal explainer (src/refusals) notes a CRI-O too old for a
  // policy. A handful of distinct short strings across a cluster.
  const version = field(record(field(status, "runtime")), "version");
  return {
    ...identity(o),
    status: {
      enforcing: field(status, "enforcing") === true,
      ...(applied === undefined ? {} : { appliedRevisions: applied }),
      ...(typeof version === "string" ? { runtime: { version } } : {}),
    },
  };
}

/** What one node's agent reports, read from a (compact or full) ImagePolicyNodeStatus without
 * copying its appliedRevisions map; undefined when it reports nothing (yet). */
export function nodeReportOf(
  o: KubeObject | undefined,
  interner: RevisionsInterner,
): { readonly enforcing: boolean; readonly appliedRevisions: Revisions } | undefined {
  const status = record(field(o, "status"));
  if (status === undefined) return undefined;
  const raw = record(field(status, "appliedRevisions"));
  // A map that is not all strings counts as reporting nothing applied.
  const applied = raw !== undefined && interner.isRevisions(raw) ? raw : {};
  return { enforcing: field(status, "enforcing") === true, appliedRevisions: applied };
}

/** A Node reduced to its containerRuntimeVersion. */
export function compactNode(o: KubeObject): KubeObject {
  const version = runtimeVersionOf(o);
  return {
    ...identity(o),
    ...(version === undefined
      ? {}
      : { status: { nodeInfo: { containerRuntimeVersion: version } } }),
  };
}

/** Node.status.nodeInfo.containerRuntimeVersion. */
export function runtimeVersionOf(o: KubeObject | undefined): string | undefined {
  const version = field(field(field(o, "status"), "nodeInfo"), "containerRuntimeVersion");
  return typeof version === "string" ? version : undefined;
}

/** A pod reduced to the images of its containers and init containers. */
export function compactPod(o: KubeObject): KubeObject {
  return { ...identity(o), spec: { images: podImagesOf(o) } };
}

/** The images of a (compact or full) pod, in order, init containers first. */
export function podImagesOf(o: KubeObject): string[] {
  const spec = field(o, "spec");
  const images = field(spec, "images");
  if (Array.isArray(images)) return images.filter((i): i is string => typeof i === "string");
  const out: string[] = [];
  for (const list of [field(spec, "initContainers"), field(spec, "containers")]) {
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      const image = field(c, "image");
      if (typeof image === "string") out.push(image);
    }
  }
  return out;
}

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** A policy object without what neither the plan nor the status reads: managedFields and the
 * last-applied-configuration annotation. */
export function compactPolicy(o: KubeObject): KubeObject {
  const { managedFields: _managed, annotations, ...metadata } = o.metadata;
  const kept = Object.entries(annotations ?? {}).filter(([k]) => k !== LAST_APPLIED);
  return {
    ...o,
    metadata: {
      ...metadata,
      ...(kept.length === 0 ? {} : { annotations: Object.fromEntries(kept) }),
    },
  };
}

// The layer ConfigMaps (docs/internals.md) as the agent tracks them: for each one its text and
// revision, whether it can be used, and the last one that could. Work is proportional to the
// change: a ConfigMap whose resourceVersion did not move is not looked at again, and a layer is
// parsed (strictly) only when its text changed. A layer that cannot be used (bad JSON, wrong
// identity) never silently disappears: its namespace keeps its last usable layer, or its file
// (see plan.ts).
//
// What the informer caches of each ConfigMap is trimmed (trimLayerConfigMap): no managedFields,
// no other data; the agent's memory then holds each layer's text once.

import { parseLayer, type Layer } from "../compiler/layer.ts";
import type { KubeObject } from "../kube/index.ts";
import {
  CLUSTER_LAYER_NAME,
  LAYER_KEY,
  LAYER_LABEL,
  layerRevision,
  NAMESPACE_LABEL,
  NAMESPACE_LAYER_PREFIX,
  REVISION_ANNOTATION,
} from "../layerConfigMap.ts";

/** A layer's text (layer.json) and its revision. */
export interface LayerText {
  readonly text: string;
  readonly revision: string;
}

export type LayerInput =
  | { readonly ok: true; readonly layer: LayerText }
  /** The ConfigMap exists but its layer cannot be used; `lastGood` is the last one that could,
   * if this process saw one. */
  | { readonly ok: false; readonly reason: string; readonly lastGood?: LayerText };

export interface LayerState {
  /** undefined: no cluster layer ConfigMap (yet). */
  readonly cluster: LayerInput | undefined;
  /** Sorted by namespace. */
  readonly namespaces: ReadonlyMap<string, LayerInput>;
  /** Warnings (e.g. a revision annotation that does not match the data). */
  readonly problems: readonly string[];
}

/** A copy of `s` that shares no memory with it. JSON.parse returns strings that may be slices of
 * the whole response text; keeping one would keep the whole response (megabytes for a list). */
export function own(s: string): string {
  return Buffer.from(s, "utf8").toString("utf8");
}

/** The informer transform: only what the agent reads of a layer ConfigMap, in strings of its
 * own. */
export function trimLayerConfigMap(obj: KubeObject): KubeObject {
  const m = obj.metadata;
  const text = dataOf(obj);
  const revision = m.annotations?.[REVISION_ANNOTATION];
  const labels =
    m.labels === undefined
      ? undefined
      : Object.fromEntries(Object.entries(m.labels).map(([k, v]) => [own(k), own(v)]));
  return {
    apiVersion: own(obj.apiVersion),
    kind: own(obj.kind),
    metadata: {
      name: own(m.name),
      ...(m.namespace === undefined ? {} : { namespace: own(m.namespace) }),
      ...(m.resourceVersion === undefined ? {} : { resourceVersion: own(m.resourceVersion) }),
      ...(labels === undefined ? {} : { labels }),
      ...(revision === undefined ? {} : { annotations: { [REVISION_ANNOTATION]: own(revision) } }),
    },
    ...(text === undefined ? {} : { data: { [LAYER_KEY]: own(text) } }),
  };
}

function dataOf(obj: KubeObject): string | undefined {
  const data: unknown = obj["data"];
  if (typeof data !== "object" || data === null) return undefined;
  const text: unknown = Reflect.get(data, LAYER_KEY);
  return typeof text === "string" ? text : undefined;
}

interface Tracked {
  readonly resourceVersion: string | undefined;
  readonly namespace: string | undefined;
  readonly input: LayerInput;
  readonly problems: readonly string[];
}

/** What a layer ConfigMap says: its namespace (undefined: cluster), or not a layer at all. */
function identify(obj: KubeObject): { namespace: string | undefined } | undefined {
  const { name, labels = {} } = obj.metadata;
  const kind = labels[LAYER_LABEL];
  if (kind === "cluster" && name === CLUSTER_LAYER_NAME) return { namespace: undefined };
  if (kind === "namespace" && name.startsWith(NAMESPACE_LAYER_PREFIX)) {
    return { namespace: name.slice(NAMESPACE_LAYER_PREFIX.length) };
  }
  return undefined;
}

/** Called with every layer parsed (the agent keeps what registries.d needs of it). */
export type OnParsed = (namespace: string | undefined, layer: LayerText, parsed: Layer) => void;

export class LayerSources {
  readonly #tracked = new Map<string, Tracked>();
  /** Layer texts by revision (current and last usable), made when first asked after a change:
   * a cluster change asks for each of 500 namespace layers. */
  #texts: Map<string, string> | undefined;
  /** state() as last made; undefined once a tracked layer moved. */
  #state: LayerState | undefined;
  /** A layer ConfigMap came or went since state() was last made (else its order still holds). */
  #namesMoved = true;
  /** The namespace layers' ConfigMap names, sorted by namespace. */
  #order: string[] = [];
  /** Layers parsed since the process started (the figure docs/scale.md quotes). */
  parsed = 0;

  /** Brings the tracked layers up to the informer's ConfigMaps. */
  update(configMaps: readonly KubeObject[], onParsed: OnParsed): void {
    // Layers among configMaps (names are unique): when as many as are tracked, none is gone.
    let layers = 0;
    for (const obj of configMaps) {
      const name = obj.metadata.name;
      const before = this.#tracked.get(name);
      const rv = obj.metadata.resourceVersion;
      // The same object as when it was tracked: nothing to look at again.
      if (before !== undefined && rv !== undefined && before.resourceVersion === rv) {
        layers += 1;
        continue;
      }
      const id = identify(obj);
      // Not a layer (one that no longer is, its labels changed, is forgotten below).
      if (id === undefined) continue;
      layers += 1;
      this.#tracked.set(name, this.#track(obj, id.namespace, before, onParsed));
      this.#texts = undefined;
      this.#state = undefined;
      if (before === undefined) this.#namesMoved = true;
    }
    if (layers === this.#tracked.size) return;
    const seen = new Set<string>();
    for (const obj of configMaps) {
      if (identify(obj) !== undefined) seen.add(obj.metadata.name);
    }
    for (const name of [...this.#tracked.keys()]) {
      if (!seen.has(name)) {
        this.#tracked.delete(name);
        this.#texts = undefined;
        this.#state = undefined;
        this.#namesMoved = true;
      }
    }
  }

  #track(
    obj: KubeObject,
    namespace: string | undefined,
    before: Tracked | undefined,
    onParsed: OnParsed,
  ): Tracked {
    const name = obj.metadata.name;
    const problems: string[] = [];
    const labels = obj.metadata.labels ?? {};
    if (namespace !== undefined && labels[NAMESPACE_LABEL] !== namespace) {
      problems.push(`ConfigMap ${name}: label ${NAMESPACE_LABEL} is not ${namespace}`);
    }
    const lastGood =
      before === undefined
        ? undefined
        : before.input.ok
          ? before.input.layer
          : before.input.lastGood;
    const fail = (reason: string): LayerInput => ({
      ok: false,
      reason: `ConfigMap ${name}: ${reason}`,
      ...(lastGood === undefined ? {} : { lastGood }),
    });
    const text = dataOf(obj);
    let input: LayerInput;
    if (text === undefined) input = fail(`no data[${LAYER_KEY}]`);
    else {
      const revision = layerRevision(text);
      const annotated = obj.metadata.annotations?.[REVISION_ANNOTATION];
      if (annotated !== revision) {
        problems.push(
          `ConfigMap ${name}: annotation ${REVISION_ANNOTATION} ${JSON.stringify(annotated ?? "")} does not match its data (${revision})`,
        );
      }
      if (before?.input.ok === true && before.input.layer.revision === revision) {
        input = before.input; // same text, checked already
      } else {
        input = this.#parse(namespace, { text, revision }, onParsed, fail);
      }
    }
    return { resourceVersion: obj.metadata.resourceVersion, namespace, input, problems };
  }

  #parse(
    namespace: string | undefined,
    layer: LayerText,
    onParsed: OnParsed,
    fail: (reason: string) => LayerInput,
  ): LayerInput {
    let parsed: Layer;
    try {
      this.parsed += 1;
      parsed = parseLayer(layer.text);
    } catch (e) {
      return fail((e as Error).message);
    }
    if (parsed.namespace !== namespace) {
      return fail(
        `layer.json is the layer of ${parsed.namespace === undefined ? "the cluster" : `namespace ${parsed.namespace}`}`,
      );
    }
    onParsed(namespace, layer, parsed);
    return { ok: true, layer };
  }

  /** The layers as tracked now; the same object until one moves. The namespaces are sorted
   * again only when a layer ConfigMap came or went (a namespace change sorted 500 names). */
  state(): LayerState {
    if (this.#state !== undefined) return this.#state;
    if (this.#namesMoved) {
      const named: [string, string][] = [];
      for (const [name, t] of this.#tracked) {
        if (t.namespace !== undefined) named.push([t.namespace, name]);
      }
      named.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      this.#order = named.map(([, name]) => name);
      this.#namesMoved = false;
    }
    let cluster: LayerInput | undefined;
    const namespaces = new Map<string, LayerInput>();
    const problems: string[] = [];
    for (const t of this.#tracked.values()) {
      if (t.problems.length > 0) problems.push(...t.problems);
      if (t.namespace === undefined) cluster = t.input;
    }
    for (const name of this.#order) {
      const t = this.#tracked.get(name);
      if (t?.namespace !== undefined) namespaces.set(t.namespace, t.input);
    }
    this.#state = { cluster, namespaces, problems };
    return this.#state;
  }

  /** The text of a layer this process saw with `revision` (current or last usable). */
  text(revision: string): string | undefined {
    if (this.#texts === undefined) {
      this.#texts = new Map();
      for (const t of this.#tracked.values()) {
        const layer = t.input.ok ? t.input.layer : t.input.lastGood;
        if (layer !== undefined) this.#texts.set(layer.revision, layer.text);
      }
    }
    return this.#texts.get(revision);
  }
}

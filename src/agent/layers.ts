// The layer ConfigMaps (docs/internals.md) -> what the node's files should hold (pure).
// A layer that cannot be used (bad JSON, wrong identity) never silently disappears: its namespace
// keeps its last usable layer, or its file (see plan.ts).

import { parseLayer, type Layer } from "../compiler/layer.ts";
import type { KubeObject } from "../kube/objects.ts";
import type { Desired, LayerInput, NamespaceInput } from "./plan.ts";
import {
  CLUSTER_LAYER_NAME,
  LAYER_LABEL,
  layerConfigMapSchema,
  layerRevision,
  NAMESPACE_LABEL,
  NAMESPACE_LAYER_PREFIX,
  REVISION_ANNOTATION,
} from "../layerConfigMap.ts";

/** Last usable layer per ConfigMap name, carried from one reconcile to the next. */
export type LastGood = ReadonlyMap<string, LayerInput>;

export type ClusterInput =
  | { readonly ok: true; readonly input: LayerInput }
  | { readonly ok: false; readonly reason: string; readonly lastGood?: LayerInput };

export interface LayerState {
  /** undefined: no cluster layer ConfigMap (yet). */
  readonly cluster: ClusterInput | undefined;
  readonly namespaces: ReadonlyMap<string, NamespaceInput>;
  readonly lastGood: LastGood;
  /** Warnings (e.g. a revision annotation that does not match the data). */
  readonly problems: readonly string[];
}

type Parsed = { ok: true; input: LayerInput } | { ok: false; reason: string };

function parseConfigMap(
  data: Record<string, string> | undefined,
  expectNamespace: string | undefined,
): Parsed {
  const text = data?.["layer.json"];
  if (text === undefined) return { ok: false, reason: "no data[layer.json]" };
  let layer: Layer;
  try {
    layer = parseLayer(text);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (layer.namespace !== expectNamespace) {
    return {
      ok: false,
      reason: `layer.json is the layer of ${layer.namespace === undefined ? "the cluster" : `namespace ${layer.namespace}`}`,
    };
  }
  return { ok: true, input: { text, revision: layerRevision(text), layer } };
}

export function readLayers(configMaps: readonly KubeObject[], lastGood: LastGood): LayerState {
  const problems: string[] = [];
  const good = new Map<string, LayerInput>();
  let cluster: ClusterInput | undefined;
  const namespaces = new Map<string, NamespaceInput>();
  for (const obj of configMaps) {
    const cm = layerConfigMapSchema.safeParse(obj);
    if (!cm.success) continue;
    const { name, labels = {}, annotations = {} } = cm.data.metadata;
    const kind = labels[LAYER_LABEL];
    let ns: string | undefined;
    if (kind === "cluster" && name === CLUSTER_LAYER_NAME) ns = undefined;
    else if (kind === "namespace" && name.startsWith(NAMESPACE_LAYER_PREFIX)) {
      ns = name.slice(NAMESPACE_LAYER_PREFIX.length);
      if (labels[NAMESPACE_LABEL] !== ns) {
        problems.push(`ConfigMap ${name}: label ${NAMESPACE_LABEL} is not ${ns}`);
      }
    } else continue; // not a layer ConfigMap
    const parsed = parseConfigMap(cm.data.data, ns);
    const previous = lastGood.get(name);
    let result: ClusterInput;
    if (parsed.ok) {
      good.set(name, parsed.input);
      const annotated = annotations[REVISION_ANNOTATION];
      if (annotated !== parsed.input.revision) {
        problems.push(
          `ConfigMap ${name}: annotation ${REVISION_ANNOTATION} ${JSON.stringify(annotated ?? "")} does not match its data (${parsed.input.revision})`,
        );
      }
      result = parsed;
    } else {
      if (previous !== undefined) good.set(name, previous);
      result = {
        ok: false,
        reason: `ConfigMap ${name}: ${parsed.reason}`,
        ...(previous === undefined ? {} : { lastGood: previous }),
      };
    }
    if (ns === undefined) cluster = result;
    else namespaces.set(ns, result);
  }
  return { cluster, namespaces, lastGood: good, problems };
}

/** The cluster layer to apply: the ConfigMap's, else its last usable one. */
export function desiredFrom(state: LayerState): Desired | undefined {
  const c = state.cluster;
  if (c === undefined) return undefined;
  const input = c.ok ? c.input : c.lastGood;
  return input === undefined ? undefined : { cluster: input, namespaces: state.namespaces };
}

// The published layers as the refusal explainer and `imagepolicy explain` (live) read them: the
// layer ConfigMaps of docs/internals.md (src/layerConfigMap.ts), parsed strictly, indexed by
// scope, with the generation of each policy's published form. Parsed once per revision: a
// ConfigMap whose revision did not change is not parsed again, and the cache holds a bounded
// number of layers.

import { indexLayer, type ScopeIndex } from "../compiler/combine.ts";
import { parseLayer, type Layer } from "../compiler/layer.ts";
import type { KubeObject } from "../kube/index.ts";
import {
  LAYER_KEY,
  layerConfigMapName,
  layerConfigMapSchema,
  layerRevision,
} from "../layerConfigMap.ts";
import { BoundedLru } from "./limits.ts";

export interface PublishedLayer {
  /** The first 16 hex digits of the SHA-256 of layer.json (what agents report). */
  readonly revision: string;
  readonly layer: Layer;
  readonly index: ScopeIndex;
  /** Policy name -> metadata.generation of its published form. */
  readonly generations: ReadonlyMap<string, number>;
}

export class LayerReadError extends Error {
  override readonly name = "LayerReadError";
}

/** Reads one layer ConfigMap; `namespace` undefined for the cluster layer. Throws LayerReadError
 * when it holds no usable layer of that namespace. */
export function readPublishedLayer(cm: KubeObject, namespace: string | undefined): PublishedLayer {
  const what = `ConfigMap ${layerConfigMapName(namespace)}`;
  const parsed = layerConfigMapSchema.safeParse(cm);
  const text = parsed.success ? parsed.data.data?.[LAYER_KEY] : undefined;
  if (text === undefined) throw new LayerReadError(`${what} has no data[${LAYER_KEY}]`);
  let layer: Layer;
  try {
    layer = parseLayer(text);
  } catch (cause) {
    throw new LayerReadError(`${what}: ${(cause as Error).message}`, { cause });
  }
  if (layer.namespace !== namespace) {
    throw new LayerReadError(`${what} does not hold the layer of ${namespace ?? "the cluster"}`);
  }
  const generations = new Map<string, number>();
  for (const p of layer.policies)
    if (p.generation !== undefined) generations.set(p.name, p.generation);
  return { revision: layerRevision(text), layer, index: indexLayer(layer), generations };
}

/** readPublishedLayer with a cache keyed by ConfigMap name and resourceVersion. */
export class LayerCache {
  readonly #cache: BoundedLru<string, { readonly version: string; readonly layer: PublishedLayer }>;

  constructor(capacity: number) {
    this.#cache = new BoundedLru(capacity);
  }

  read(cm: KubeObject, namespace: string | undefined): PublishedLayer {
    const version = cm.metadata.resourceVersion ?? "";
    const hit = this.#cache.get(cm.metadata.name);
    if (hit !== undefined && version !== "" && hit.version === version) return hit.layer;
    const layer = readPublishedLayer(cm, namespace);
    this.#cache.set(cm.metadata.name, { version, layer });
    return layer;
  }
}

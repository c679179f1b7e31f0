// The layer ConfigMaps of docs/internals.md, shared by the controller (which writes them) and the
// agents (which read them): names, labels, the revision annotation and the revision itself.

import { createHash } from "node:crypto";

export const CLUSTER_LAYER_NAME = "imagepolicy-layer-cluster";
export const NAMESPACE_LAYER_PREFIX = "imagepolicy-layer-ns-";
export const LAYER_KEY = "layer.json";
export const REVISION_ANNOTATION = "imagepolicy.dev/revision";
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "imagepolicy-operator";
export const LAYER_LABEL = "imagepolicy.dev/layer";
export const NAMESPACE_LABEL = "imagepolicy.dev/namespace";
/** The one label selector an agent watches. */
export const LAYER_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

/** The first 16 hex digits of the SHA-256 of layer.json. */
export function layerRevision(layerJson: string): string {
  return createHash("sha256").update(layerJson).digest("hex").slice(0, 16);
}

export function layerConfigMapName(namespace: string | undefined): string {
  return namespace === undefined ? CLUSTER_LAYER_NAME : `${NAMESPACE_LAYER_PREFIX}${namespace}`;
}

export function layerLabels(namespace: string | undefined): Record<string, string> {
  return namespace === undefined
    ? { [MANAGED_BY_LABEL]: MANAGED_BY, [LAYER_LABEL]: "cluster" }
    : { [MANAGED_BY_LABEL]: MANAGED_BY, [LAYER_LABEL]: "namespace", [NAMESPACE_LABEL]: namespace };
}

/** The fields of a layer ConfigMap either side reads. */
export interface LayerConfigMapFields {
  readonly metadata: {
    readonly name: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly data?: Readonly<Record<string, string>>;
}

function stringMap(v: unknown): Record<string, string> | undefined | null {
  if (v === undefined) return undefined;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") return null;
    out[k] = x;
  }
  return out;
}

/** The fields of a layer ConfigMap either side reads; undefined when one has the wrong type.
 * By hand, not zod: every agent reads these (docs/scale.md). */
export function readLayerConfigMap(v: unknown): LayerConfigMapFields | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const meta: unknown = Reflect.get(v, "metadata");
  if (typeof meta !== "object" || meta === null) return undefined;
  const name: unknown = Reflect.get(meta, "name");
  const labels = stringMap(Reflect.get(meta, "labels"));
  const annotations = stringMap(Reflect.get(meta, "annotations"));
  const data = stringMap(Reflect.get(v, "data"));
  if (typeof name !== "string" || labels === null || annotations === null || data === null) {
    return undefined;
  }
  return {
    metadata: {
      name,
      ...(labels === undefined ? {} : { labels }),
      ...(annotations === undefined ? {} : { annotations }),
    },
    ...(data === undefined ? {} : { data }),
  };
}

/** readLayerConfigMap in the shape the controller calls it (`.safeParse(v)`, as the zod schema
 * this replaced). */
export const layerConfigMapSchema = {
  safeParse(
    v: unknown,
  ): { success: true; data: LayerConfigMapFields } | { success: false; data?: undefined } {
    const data = readLayerConfigMap(v);
    return data === undefined ? { success: false } : { success: true, data };
  },
};

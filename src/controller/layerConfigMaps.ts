// The layer ConfigMaps of docs/internals.md: names, labels, the revision annotation, and reading
// back the published layers (the memory of each object's last accepted form).

import { parseLayer, type Layer } from "../compiler/layer.ts";
import type { KubeObject } from "../kube/index.ts";
import {
  CLUSTER_LAYER_NAME,
  LAYER_KEY,
  layerConfigMapName,
  layerConfigMapSchema,
  layerLabels,
  NAMESPACE_LAYER_PREFIX,
  REVISION_ANNOTATION,
} from "../layerConfigMap.ts";

export const FIELD_MANAGER = "imagepolicy-controller";

/** The ConfigMap to server-side apply: only the fields the controller owns. */
export function layerConfigMap(
  operatorNamespace: string,
  namespace: string | undefined,
  text: string,
  revision: string,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: layerConfigMapName(namespace),
      namespace: operatorNamespace,
      labels: layerLabels(namespace),
      annotations: { [REVISION_ANNOTATION]: revision },
    },
    data: { [LAYER_KEY]: text },
  };
}

/** True when the published ConfigMap already holds exactly what would be applied. */
export function isUpToDate(published: KubeObject | undefined, wanted: KubeObject): boolean {
  if (published === undefined) return false;
  const p = layerConfigMapSchema.safeParse(published);
  const w = layerConfigMapSchema.safeParse(wanted);
  if (!p.success || !w.success) return false;
  if (p.data.data?.[LAYER_KEY] !== w.data.data?.[LAYER_KEY]) return false;
  if (
    p.data.metadata.annotations?.[REVISION_ANNOTATION] !==
    w.data.metadata.annotations?.[REVISION_ANNOTATION]
  ) {
    return false;
  }
  const labels = p.data.metadata.labels ?? {};
  return Object.entries(w.data.metadata.labels ?? {}).every(([k, v]) => labels[k] === v);
}

export interface PublishedLayers {
  readonly cluster: Layer | undefined;
  readonly namespaces: ReadonlyMap<string, Layer>;
  /** ConfigMap name -> the namespace whose layer it holds (undefined: cluster layer). */
  readonly configMaps: ReadonlyMap<string, string | undefined>;
  readonly problems: readonly string[];
}

/** Reads back the published layers; a ConfigMap that does not parse contributes nothing and is
 * reported (it will be overwritten). */
export function readPublished(configMaps: readonly KubeObject[]): PublishedLayers {
  let cluster: Layer | undefined;
  const namespaces = new Map<string, Layer>();
  const names = new Map<string, string | undefined>();
  const problems: string[] = [];
  for (const cm of configMaps) {
    const name = cm.metadata.name;
    const isCluster = name === CLUSTER_LAYER_NAME;
    if (!isCluster && !name.startsWith(NAMESPACE_LAYER_PREFIX)) continue;
    const namespace = isCluster ? undefined : name.slice(NAMESPACE_LAYER_PREFIX.length);
    names.set(name, namespace);
    const parsed = layerConfigMapSchema.safeParse(cm);
    const text = parsed.success ? parsed.data.data?.[LAYER_KEY] : undefined;
    if (text === undefined) {
      problems.push(`ConfigMap ${name} has no ${LAYER_KEY}`);
      continue;
    }
    try {
      const layer = parseLayer(text);
      if (layer.namespace !== namespace) {
        problems.push(`ConfigMap ${name} holds the layer of another namespace`);
        continue;
      }
      if (namespace === undefined) cluster = layer;
      else namespaces.set(namespace, layer);
    } catch (err) {
      problems.push(`ConfigMap ${name}: ${(err as Error).message}`);
    }
  }
  return { cluster, namespaces, configMaps: names, problems };
}

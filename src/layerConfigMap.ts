// The layer ConfigMaps of docs/internals.md, shared by the controller (which writes them) and the
// agents (which read them): names, labels, the revision annotation and the revision itself.

import { createHash } from "node:crypto";
import { z } from "zod";

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
export const layerConfigMapSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  data: z.record(z.string(), z.string()).optional(),
});

// The shape every Kubernetes object shares, and the resources the operator reads and writes.
// Objects cross this adapter as plain JSON (as the API server sends them, the same from a list
// and from a watch); callers parse the parts they need strictly (src/api/parse.ts, zod).

import { z } from "zod";

export const objectMetaSchema = z.looseObject({
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  deletionTimestamp: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof objectMetaSchema>;

export const kubeObjectSchema = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: objectMetaSchema,
});
export type KubeObject = z.infer<typeof kubeObjectSchema>;

/** A REST resource: where its objects live. */
export interface Resource {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export function apiVersionOf(r: Resource): string {
  return r.group === "" ? r.version : `${r.group}/${r.version}`;
}

/** `/api/v1/namespaces/ns/configmaps`, `/apis/g/v/plural`; without namespace, all namespaces. */
export function collectionPath(r: Resource, namespace?: string): string {
  const base = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns =
    r.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${base}${ns}/${r.plural}`;
}

/** `namespace/name`, or `name` for cluster-scoped objects: the informer cache key. */
export function objectKey(meta: {
  readonly name: string;
  readonly namespace?: string | undefined;
}): string {
  return meta.namespace === undefined ? meta.name : `${meta.namespace}/${meta.name}`;
}

export const Resources = {
  configMaps: {
    group: "",
    version: "v1",
    plural: "configmaps",
    kind: "ConfigMap",
    namespaced: true,
  },
  secrets: { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
  nodes: { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false },
  namespaces: {
    group: "",
    version: "v1",
    plural: "namespaces",
    kind: "Namespace",
    namespaced: false,
  },
  leases: {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
    namespaced: true,
  },
  events: {
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    kind: "Event",
    namespaced: true,
  },
  clusterImagePolicies: {
    group: "imagepolicy.dev",
    version: "v1alpha1",
    plural: "clusterimagepolicies",
    kind: "ClusterImagePolicy",
    namespaced: false,
  },
  imagePolicies: {
    group: "imagepolicy.dev",
    version: "v1alpha1",
    plural: "imagepolicies",
    kind: "ImagePolicy",
    namespaced: true,
  },
  imagePolicyNodeStatuses: {
    group: "imagepolicy.dev",
    version: "v1alpha1",
    plural: "imagepolicynodestatuses",
    kind: "ImagePolicyNodeStatus",
    namespaced: false,
  },
} as const satisfies Record<string, Resource>;

/** The known resource of an object, from its apiVersion and kind. */
export function resourceOf(obj: {
  readonly apiVersion: string;
  readonly kind: string;
}): Resource | undefined {
  return Object.values(Resources).find(
    (r: Resource) => apiVersionOf(r) === obj.apiVersion && r.kind === obj.kind,
  );
}

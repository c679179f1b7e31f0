// The shape every Kubernetes object shares, and the resources the operator reads and writes.
// Objects cross this adapter as plain JSON (as the API server sends them, the same from a list
// and from a watch); callers parse the parts they need strictly (src/api/parse.ts, zod).
//
// parseKubeObject checks only what every object must have (apiVersion, kind, metadata.name) and
// the types of the metadata fields the operator reads; the rest stays as the server sent it. It is
// written by hand rather than with zod so that the agent, which runs on every node, does not load
// zod for it (docs/scale.md).

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly uid?: string | undefined;
  readonly resourceVersion?: string | undefined;
  readonly generation?: number | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly deletionTimestamp?: string | undefined;
  readonly [field: string]: unknown;
}

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly [field: string]: unknown;
}

export class ObjectShapeError extends Error {
  override readonly name = "ObjectShapeError";
}

function isRecord(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalString(o: Readonly<Record<string, unknown>>, key: string, what: string): void {
  const v = o[key];
  if (v !== undefined && typeof v !== "string") {
    throw new ObjectShapeError(`${what}.${key}: expected a string`);
  }
}

function stringMap(v: unknown, what: string): Readonly<Record<string, string>> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw new ObjectShapeError(`${what}: expected a map of strings`);
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (typeof value !== "string") throw new ObjectShapeError(`${what}.${k}: expected a string`);
    out[k] = value;
  }
  return out;
}

/** `value` as a KubeObject, or an ObjectShapeError naming the first field that is wrong.
 * `defaults` fills apiVersion and kind, which list items of built-in types lack. */
export function parseKubeObject(
  value: unknown,
  defaults?: { readonly apiVersion: string; readonly kind: string },
): KubeObject {
  if (!isRecord(value)) throw new ObjectShapeError("object: expected a JSON object");
  const apiVersion = value["apiVersion"] ?? defaults?.apiVersion;
  const kind = value["kind"] ?? defaults?.kind;
  if (typeof apiVersion !== "string" || apiVersion === "") {
    throw new ObjectShapeError("apiVersion: expected a non-empty string");
  }
  if (typeof kind !== "string" || kind === "") {
    throw new ObjectShapeError("kind: expected a non-empty string");
  }
  const m = value["metadata"];
  if (!isRecord(m)) throw new ObjectShapeError("metadata: expected an object");
  const name = m["name"];
  if (typeof name !== "string" || name === "") {
    throw new ObjectShapeError("metadata.name: expected a non-empty string");
  }
  for (const key of ["namespace", "uid", "resourceVersion", "deletionTimestamp"]) {
    optionalString(m, key, "metadata");
  }
  const generation = m["generation"];
  if (generation !== undefined && !Number.isInteger(generation)) {
    throw new ObjectShapeError("metadata.generation: expected an integer");
  }
  if (m["namespace"] === "") throw new ObjectShapeError("metadata.namespace: empty");
  const labels = stringMap(m["labels"], "metadata.labels");
  const annotations = stringMap(m["annotations"], "metadata.annotations");
  const metadata: ObjectMeta = {
    ...m,
    name,
    ...(labels === undefined ? {} : { labels }),
    ...(annotations === undefined ? {} : { annotations }),
  };
  return { ...value, apiVersion, kind, metadata };
}

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

/** The path of one object: collectionPath + `/name`. */
export function objectPath(r: Resource, ref: ObjectRef): string {
  return `${collectionPath(r, ref.namespace)}/${encodeURIComponent(ref.name)}`;
}

/** Which object: its name, and its namespace when the resource is namespaced. */
export interface ObjectRef {
  readonly name: string;
  readonly namespace?: string | undefined;
}

/** `namespace/name`, or `name` for cluster-scoped objects: the informer cache key. */
export function objectKey(meta: ObjectRef): string {
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

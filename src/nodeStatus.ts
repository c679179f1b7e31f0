// The ImagePolicyNodeStatus contract (docs/internals.md "ImagePolicyNodeStatus"), shared by the
// agent (which writes its node's object) and the controller (which reads every node's to compute
// rollout): file keys, the revision strings, conditions, the status itself, how it is parsed, and
// the merge patch the agent sends. One module, so the two sides cannot drift.
//
// Written by hand, without zod: the agent loads this on every node (docs/scale.md).

/** metav1.Condition, as both the controller (policy conditions) and the agent (node conditions)
 * write it. */
export interface Condition<Type extends string = string> {
  readonly type: Type;
  readonly status: "True" | "False" | "Unknown";
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
  readonly reason: string;
  readonly message: string;
}

// ---------------------------------------------------------------------------------------------
// Files and revisions

/** The key of cluster.json in appliedRevisions. */
export const CLUSTER_FILE = "cluster.json";

/** The key of `<namespace>.json` in appliedRevisions. */
export function namespaceFileKey(namespace: string): string {
  return `${namespace}.json`;
}

/** The revision a namespace file reports: built on cluster layer `cluster` and namespace layer
 * `namespace` ("<cluster>.<namespace>"). A file that fails closed because its layer cannot be
 * rendered reports the namespace part UNRENDERED. */
export function namespaceFileRevision(cluster: string, namespace: string): string {
  return `${cluster}.${namespace}`;
}

export const UNRENDERED = "unrendered";

/** The two parts of a namespace file's revision; undefined when it is not one. */
export function parseNamespaceFileRevision(
  value: string,
): { readonly cluster: string; readonly namespace: string } | undefined {
  const dot = revisionDot(value);
  return dot < 0 ? undefined : { cluster: value.slice(0, dot), namespace: value.slice(dot + 1) };
}

/** Where the one dot between a namespace file revision's two non-empty parts is; -1 when
 * `value` is not one. */
function revisionDot(value: string): number {
  const dot = value.indexOf(".");
  return dot <= 0 || dot === value.length - 1 || value.indexOf(".", dot + 1) !== -1 ? -1 : dot;
}

/** What a node reports for a namespace file whose manifest revision is `value`, next to
 * cluster.json's reported revision `cluster`: the namespace part alone when the file is built on
 * that same cluster revision (nearly always: 500 namespace files would otherwise repeat it, a
 * third of every report), else `value` whole ("<cluster>.<namespace>", or "" while the file is
 * being replaced). */
export function reportedNamespaceRevision(value: string, cluster: string): string {
  if (cluster === "") return value;
  // parseNamespaceFileRevision without its object (500 of these per report).
  const dot = revisionDot(value);
  return dot === cluster.length && value.startsWith(cluster) ? value.slice(dot + 1) : value;
}

/** The revision `<namespace>.json` reports, in full ("<cluster>.<namespace>"): the short form
 * resolved against cluster.json's reported revision; "" stays ""; undefined when not reported. */
export function appliedNamespaceRevision(
  applied: Readonly<Record<string, string>>,
  namespace: string,
): string | undefined {
  const reported = applied[namespaceFileKey(namespace)];
  const cluster = applied[CLUSTER_FILE];
  if (reported === undefined || !isShort(reported) || cluster === undefined || cluster === "") {
    return reported;
  }
  return namespaceFileRevision(cluster, reported);
}

/** True when a reported namespace file value is the short form: built on cluster.json's
 * revision. */
function isShort(value: string): boolean {
  return value !== "" && !value.includes(".");
}

/** True when `value` (cluster.json's revision, or a namespace file's in full) is built on
 * cluster layer revision `cluster`. */
function builtOnCluster(value: string | undefined, cluster: string): boolean {
  if (value === undefined || !value.startsWith(cluster)) return false;
  return value.length === cluster.length || value.charCodeAt(cluster.length) === 46; // "."
}

/** A node has applied cluster layer `revision` when cluster.json and every namespace file it
 * reports are built on it (a short namespace value is built on cluster.json's). */
export function hasAppliedCluster(
  applied: Readonly<Record<string, string>> | undefined,
  revision: string,
): boolean {
  if (applied?.[CLUSTER_FILE] !== revision) return false;
  for (const file in applied) {
    if (!Object.hasOwn(applied, file)) continue;
    const value = applied[file];
    if (value !== undefined && isShort(value)) continue;
    if (!builtOnCluster(value, revision)) return false;
  }
  return true;
}

/** A node has applied namespace layer `revision` of `namespace` when `<namespace>.json` reports
 * it (on any cluster layer; short or in full). */
export function hasAppliedNamespace(
  applied: Readonly<Record<string, string>> | undefined,
  namespace: string,
  revision: string,
): boolean {
  const value = applied?.[namespaceFileKey(namespace)];
  if (value === undefined) return false;
  if (value === revision) return true;
  return (
    value.length > revision.length + 1 &&
    value.endsWith(revision) &&
    value.charCodeAt(value.length - revision.length - 1) === 46 // "."
  );
}

// ---------------------------------------------------------------------------------------------
// The status

export type NodeConditionType = "Ready" | "Enforcing" | "RegistriesDComplete";

export interface Runtime {
  readonly name: string;
  readonly version: string;
}

/** status of an ImagePolicyNodeStatus (crds/imagepolicy.dev_imagepolicynodestatuses.yaml). */
export interface NodeStatus {
  readonly runtime: Runtime;
  readonly enforcing: boolean;
  readonly enforcingReason: string;
  /** CLUSTER_FILE and namespaceFileKey(ns) -> revision. */
  readonly appliedRevisions: Readonly<Record<string, string>>;
  readonly lastError: string;
  readonly lastTransitionTime?: string;
  readonly lastUpdateTime?: string;
  readonly conditions: readonly Condition[];
}

/** What the agent observed in one reconcile. */
export interface Observation {
  readonly runtime: Runtime;
  readonly enforcing: boolean;
  readonly enforcingReason: string;
  /** undefined: nothing applied yet by this process (the reported map is kept). */
  readonly appliedRevisions: Readonly<Record<string, string>> | undefined;
  readonly ready: { readonly ok: boolean; readonly reason: string; readonly message: string };
  readonly registriesD: { readonly complete: boolean; readonly message: string };
  /** Errors and problems, newest state only; "" when none. */
  readonly lastError: string;
  readonly generation: number | undefined;
}

/** The CRD's bounds. */
const MAX_REASON = 1024;
const MAX_ERROR = 32768;
const MAX_MESSAGE = 32768;
const MAX_RUNTIME = 63;

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 3)}...`;
}

function condition(
  previous: readonly Condition[] | undefined,
  type: NodeConditionType,
  ok: boolean,
  reason: string,
  message: string,
  now: string,
  generation: number | undefined,
): Condition {
  const status = ok ? "True" : "False";
  const old = previous?.find((c) => c.type === type);
  return {
    type,
    status,
    reason,
    message: clip(message, MAX_MESSAGE),
    lastTransitionTime: old !== undefined && old.status === status ? old.lastTransitionTime : now,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  };
}

/** The status to report for `o`, keeping transition times of what did not change. */
export function nodeStatus(
  o: Observation,
  previous: NodeStatus | undefined,
  now: string,
): NodeStatus {
  const applied = o.appliedRevisions ?? previous?.appliedRevisions ?? {};
  const revisionsChanged = !sameRecord(applied, previous?.appliedRevisions ?? {});
  const lastTransitionTime = revisionsChanged ? now : previous?.lastTransitionTime;
  return {
    runtime: {
      name: clip(o.runtime.name, MAX_RUNTIME),
      version: clip(o.runtime.version, MAX_RUNTIME),
    },
    enforcing: o.enforcing,
    enforcingReason: clip(o.enforcingReason, MAX_REASON),
    appliedRevisions: applied,
    lastError: clip(o.lastError, MAX_ERROR),
    ...(lastTransitionTime === undefined ? {} : { lastTransitionTime }),
    conditions: [
      condition(
        previous?.conditions,
        "Ready",
        o.ready.ok,
        o.ready.reason,
        o.ready.message,
        now,
        o.generation,
      ),
      condition(
        previous?.conditions,
        "Enforcing",
        o.enforcing,
        o.enforcing ? "RuntimeReadsPolicies" : "NotEnforcing",
        o.enforcingReason,
        now,
        o.generation,
      ),
      condition(
        previous?.conditions,
        "RegistriesDComplete",
        o.registriesD.complete,
        o.registriesD.complete ? "AllKeysWritten" : "KeysDefinedElsewhere",
        o.registriesD.message,
        now,
        o.generation,
      ),
    ],
  };
}

function sameRecord(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Equal apart from lastUpdateTime. */
export function sameStatus(a: NodeStatus, b: NodeStatus | undefined): boolean {
  if (b === undefined) return false;
  return patchBody(a, b) === undefined;
}

/** The JSON merge patch of `status` that turns `previous` into `next`: the fields that differ,
 * only the appliedRevisions entries that changed (a removed one as null: a merge patch merges
 * maps), the conditions list whole. undefined when nothing but lastUpdateTime differs. Without
 * `previous`, everything. */
export function patchBody(
  next: NodeStatus,
  previous: NodeStatus | undefined,
): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  const revisions: Record<string, string | null> = {};
  let revisionsChanged = false;
  const before = previous?.appliedRevisions ?? {};
  const after = next.appliedRevisions;
  if (after !== before) {
    for (const k of Object.keys(after)) {
      const v = after[k];
      if (v !== undefined && before[k] !== v) {
        revisions[k] = v;
        revisionsChanged = true;
      }
    }
    for (const k of Object.keys(before)) {
      if (!Object.hasOwn(after, k)) {
        revisions[k] = null;
        revisionsChanged = true;
      }
    }
  }
  if (revisionsChanged) out["appliedRevisions"] = revisions;
  if (!same(next.runtime, previous?.runtime)) out["runtime"] = next.runtime;
  if (next.enforcing !== previous?.enforcing) out["enforcing"] = next.enforcing;
  if (next.enforcingReason !== previous?.enforcingReason) {
    out["enforcingReason"] = next.enforcingReason;
  }
  if (next.lastError !== previous?.lastError) out["lastError"] = next.lastError;
  if (next.lastTransitionTime !== previous?.lastTransitionTime) {
    out["lastTransitionTime"] = next.lastTransitionTime ?? null;
  }
  if (!same(next.conditions, previous?.conditions)) out["conditions"] = next.conditions;
  if (Object.keys(out).length === 0) return undefined;
  if (next.lastUpdateTime !== undefined) out["lastUpdateTime"] = next.lastUpdateTime;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing an ImagePolicyNodeStatus as the API serves it

export interface NodeStatusObject {
  readonly generation: number | undefined;
  /** UIDs of its owners (the Node). */
  readonly ownerUids: readonly string[];
  readonly nodeName: string | undefined;
  /** undefined when it has no status yet. */
  readonly status: NodeStatus | undefined;
}

export class NodeStatusParseError extends Error {
  override readonly name = "NodeStatusParseError";
}

type Json = Readonly<Record<string, unknown>>;

function rec(v: unknown, where: string): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new NodeStatusParseError(`${where}: expected an object`);
  }
  return Object.fromEntries(Object.entries(v));
}

function text(o: Json, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new NodeStatusParseError(`${where}.${key}: expected a string`);
  return v;
}

function int(o: Json, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new NodeStatusParseError(`${where}.${key}: expected an integer`);
  }
  return v;
}

function parseCondition(v: unknown, where: string): Condition {
  const c = rec(v, where);
  const status = text(c, "status", where);
  if (status !== "True" && status !== "False" && status !== "Unknown") {
    throw new NodeStatusParseError(`${where}.status: expected True, False or Unknown`);
  }
  const generation = int(c, "observedGeneration", where);
  return {
    type: text(c, "type", where) ?? "",
    status,
    reason: text(c, "reason", where) ?? "",
    message: text(c, "message", where) ?? "",
    lastTransitionTime: text(c, "lastTransitionTime", where) ?? "",
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  };
}

/** Reads the status; fields the CRD allows to be absent take their zero values. Throws
 * NodeStatusParseError naming the first field of a wrong type. */
export function parseNodeStatus(v: unknown): NodeStatus {
  const s = rec(v, "status");
  const runtime = s["runtime"] === undefined ? {} : rec(s["runtime"], "status.runtime");
  const revisions: Record<string, string> = {};
  if (s["appliedRevisions"] !== undefined && s["appliedRevisions"] !== null) {
    for (const [k, r] of Object.entries(rec(s["appliedRevisions"], "status.appliedRevisions"))) {
      if (typeof r !== "string") {
        throw new NodeStatusParseError(`status.appliedRevisions.${k}: expected a string`);
      }
      revisions[k] = r;
    }
  }
  const conditions = s["conditions"] ?? [];
  if (!Array.isArray(conditions)) {
    throw new NodeStatusParseError("status.conditions: expected a list");
  }
  const enforcing = s["enforcing"];
  if (enforcing !== undefined && typeof enforcing !== "boolean") {
    throw new NodeStatusParseError("status.enforcing: expected a boolean");
  }
  const lastTransitionTime = text(s, "lastTransitionTime", "status");
  const lastUpdateTime = text(s, "lastUpdateTime", "status");
  return {
    runtime: {
      name: text(runtime, "name", "status.runtime") ?? "",
      version: text(runtime, "version", "status.runtime") ?? "",
    },
    enforcing: enforcing === true,
    enforcingReason: text(s, "enforcingReason", "status") ?? "",
    appliedRevisions: revisions,
    lastError: text(s, "lastError", "status") ?? "",
    ...(lastTransitionTime === undefined ? {} : { lastTransitionTime }),
    ...(lastUpdateTime === undefined ? {} : { lastUpdateTime }),
    conditions: conditions.map((c, i) => parseCondition(c, `status.conditions[${i}]`)),
  };
}

/** The parts of an ImagePolicyNodeStatus object either side reads. */
export function parseNodeStatusObject(obj: unknown): NodeStatusObject {
  const o = rec(obj, "object");
  const meta = rec(o["metadata"] ?? {}, "metadata");
  const owners = meta["ownerReferences"] ?? [];
  if (!Array.isArray(owners))
    throw new NodeStatusParseError("metadata.ownerReferences: expected a list");
  const spec = o["spec"] === undefined ? {} : rec(o["spec"], "spec");
  return {
    generation: int(meta, "generation", "metadata"),
    ownerUids: owners.flatMap((r, i) => {
      const uid = text(rec(r, `metadata.ownerReferences[${i}]`), "uid", "ownerReference");
      return uid === undefined ? [] : [uid];
    }),
    nodeName: text(spec, "nodeName", "spec"),
    status:
      o["status"] === undefined || o["status"] === null ? undefined : parseNodeStatus(o["status"]),
  };
}

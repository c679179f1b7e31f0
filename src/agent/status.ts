// The node's ImagePolicyNodeStatus (crds/imagepolicy.dev_imagepolicynodestatuses.yaml), computed
// purely; the agent patches it only when something other than timestamps changed.

import { canonicalJson } from "../canonicalJson.ts";
import type { Runtime } from "./crioProbe.ts";

export interface Condition {
  readonly type: string;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

export interface NodeStatus {
  readonly runtime: Runtime;
  readonly enforcing: boolean;
  readonly enforcingReason: string;
  readonly appliedRevisions: Readonly<Record<string, string>>;
  readonly lastError: string;
  readonly lastTransitionTime?: string;
  readonly lastUpdateTime?: string;
  readonly conditions: readonly Condition[];
}

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

const MAX_REASON = 1024;
const MAX_ERROR = 32768;
const MAX_MESSAGE = 32768;

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 3)}...`;
}

function condition(
  previous: readonly Condition[] | undefined,
  type: string,
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

export function nodeStatus(
  o: Observation,
  previous: NodeStatus | undefined,
  now: string,
): NodeStatus {
  const applied = o.appliedRevisions ?? previous?.appliedRevisions ?? {};
  const revisionsChanged = !sameRecord(applied, previous?.appliedRevisions ?? {});
  const lastTransitionTime = revisionsChanged ? now : previous?.lastTransitionTime;
  return {
    runtime: { name: clip(o.runtime.name, 63), version: clip(o.runtime.version, 63) },
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
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Equal apart from lastUpdateTime. */
export function sameStatus(a: NodeStatus, b: NodeStatus | undefined): boolean {
  if (b === undefined) return false;
  const strip = (s: NodeStatus): string => canonicalJson({ ...s, lastUpdateTime: undefined });
  return strip(a) === strip(b);
}

/** A JSON merge patch body for `status`: maps are merged by a merge patch, so every revision key
 * that disappeared is set to null. */
export function statusPatch(
  next: NodeStatus,
  previous: NodeStatus | undefined,
): Record<string, unknown> {
  const revisions: Record<string, string | null> = { ...next.appliedRevisions };
  for (const k of Object.keys(previous?.appliedRevisions ?? {})) {
    if (!(k in next.appliedRevisions)) revisions[k] = null;
  }
  return { ...next, appliedRevisions: revisions };
}

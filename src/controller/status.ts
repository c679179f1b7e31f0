// The status of a policy object, computed purely from its outcome in the plan and the node
// reports (STYLE.md habit 10): conditions Compiled, Applied and Ready with observedGeneration, a
// lastTransitionTime that moves only when a condition's status changes, and the rollout.
// The controller patches the status only when statusChanged() says so.

import { z } from "zod";
import { canonicalJson } from "../canonicalJson.ts";
import type { Outcome, Refusal } from "./plan.ts";

export interface Condition {
  readonly type: "Compiled" | "Applied" | "Ready";
  readonly status: "True" | "False" | "Unknown";
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
  readonly reason: string;
  readonly message: string;
}

export interface Rollout {
  readonly nodesApplied: number;
  readonly nodesEnforcing: number;
  readonly nodesTotal: number;
  readonly display: string;
  readonly revision: string;
}

export interface PolicyStatus {
  readonly observedGeneration?: number;
  readonly conditions: readonly Condition[];
  readonly rollout?: Rollout;
}

const conditionSchema = z.looseObject({
  type: z.string(),
  status: z.string(),
  observedGeneration: z.number().int().optional(),
  lastTransitionTime: z.string(),
  reason: z.string(),
  message: z.string(),
});

const statusSchema = z.looseObject({
  observedGeneration: z.number().int().optional(),
  conditions: z.array(conditionSchema).optional(),
  rollout: z
    .looseObject({
      nodesApplied: z.number().int().optional(),
      nodesEnforcing: z.number().int().optional(),
      nodesTotal: z.number().int().optional(),
      display: z.string().optional(),
      revision: z.string().optional(),
    })
    .optional(),
});
export type ObservedStatus = z.infer<typeof statusSchema>;

/** The status an object carries now (unknown parts ignored; unparseable: none). */
export function observedStatus(obj: unknown): ObservedStatus | undefined {
  const status = (obj as { status?: unknown } | null)?.status;
  if (status === undefined) return undefined;
  const parsed = statusSchema.safeParse(status);
  return parsed.success ? parsed.data : undefined;
}

/** What one node's agent reports (ImagePolicyNodeStatus). */
export interface NodeReport {
  readonly enforcing: boolean;
  readonly appliedRevisions: Readonly<Record<string, string>>;
}

export interface NodeView {
  readonly name: string;
  /** Node.status.nodeInfo.containerRuntimeVersion starts with cri-o://. */
  readonly crio: boolean;
  readonly report: NodeReport | undefined;
}

/** Where an object's layer is, for rollout: the cluster layer, or namespace N's. */
export type LayerRef =
  | { readonly kind: "cluster"; readonly revision: string }
  | { readonly kind: "namespace"; readonly namespace: string; readonly revision: string };

/** docs/internals.md: the cluster layer at R when every value starts with R; namespace N at S
 * when "<N>.json" ends with ".S". */
export function nodeHasApplied(report: NodeReport | undefined, layer: LayerRef): boolean {
  if (report === undefined) return false;
  const applied = report.appliedRevisions;
  if (layer.kind === "cluster") {
    if (applied["cluster.json"] === undefined) return false;
    for (const file in applied) {
      if (!Object.hasOwn(applied, file)) continue;
      if (applied[file]?.startsWith(layer.revision) !== true) return false;
    }
    return true;
  }
  return applied[`${layer.namespace}.json`]?.endsWith(`.${layer.revision}`) === true;
}

/** What one layer's rollout counts over a set of nodes. */
interface Tally {
  readonly applied: number;
  readonly enforcing: number;
  readonly crioApplied: number;
}

/** Counts over one node list, each layer's tally computed once (DESIGN.md scale: 2,200 policies
 * share ~501 layers over 5,000 reports, so a status round must not rescan every report per
 * policy). */
interface NodeIndex {
  readonly crio: number;
  readonly crioNotEnforcing: number;
  readonly tallies: Map<string, Tally>;
}

/** Keyed by the node list itself: a caller that passes the same (unmodified) list for every
 * policy of a round pays for each layer once; a fresh list costs one pass, as before. */
const nodeIndexes = new WeakMap<readonly NodeView[], NodeIndex>();

function nodeIndex(nodes: readonly NodeView[]): NodeIndex {
  let index = nodeIndexes.get(nodes);
  if (index === undefined) {
    let crio = 0;
    let crioNotEnforcing = 0;
    for (const n of nodes) {
      if (!n.crio) continue;
      crio += 1;
      if (n.report?.enforcing !== true) crioNotEnforcing += 1;
    }
    index = { crio, crioNotEnforcing, tallies: new Map() };
    nodeIndexes.set(nodes, index);
  }
  return index;
}

function tallyOf(nodes: readonly NodeView[], layer: LayerRef): Tally {
  const { tallies } = nodeIndex(nodes);
  const key =
    layer.kind === "cluster" ? `c\0${layer.revision}` : `n\0${layer.namespace}\0${layer.revision}`;
  let tally = tallies.get(key);
  if (tally === undefined) {
    let applied = 0;
    let enforcing = 0;
    let crioApplied = 0;
    for (const n of nodes) {
      if (!nodeHasApplied(n.report, layer)) continue;
      applied += 1;
      if (n.report?.enforcing === true) enforcing += 1;
      if (n.crio) crioApplied += 1;
    }
    tally = { applied, enforcing, crioApplied };
    tallies.set(key, tally);
  }
  return tally;
}

export function rolloutOf(nodes: readonly NodeView[], layer: LayerRef): Rollout {
  const { applied, enforcing } = tallyOf(nodes, layer);
  return {
    nodesApplied: applied,
    nodesEnforcing: enforcing,
    nodesTotal: nodes.length,
    // docs/internals.md: covered (applied and enforcing) / total.
    display: `${enforcing}/${nodes.length}`,
    revision: layer.revision,
  };
}

const MAX_MESSAGE = 32_000;

function refusalMessage(refusals: readonly Refusal[]): string {
  const text = refusals.map((r) => `${r.field}: ${r.message} (${r.reason})`).join("; ");
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 3)}...` : text;
}

function condition(
  previous: ObservedStatus | undefined,
  type: Condition["type"],
  status: Condition["status"],
  reason: string,
  message: string,
  generation: number | undefined,
  now: string,
): Condition {
  const old = previous?.conditions?.find((c) => c.type === type);
  return {
    type,
    status,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    lastTransitionTime: old !== undefined && old.status === status ? old.lastTransitionTime : now,
    reason,
    message,
  };
}

/** The desired status. `layer` is undefined when no form of the object is published; `nodes`
 * are all Nodes with their reports. */
export function desiredStatus(
  outcome: Outcome,
  layer: LayerRef | undefined,
  nodes: readonly NodeView[],
  previous: ObservedStatus | undefined,
  now: string,
): PolicyStatus {
  const g = outcome.generation;
  const [first] = outcome.refusals;
  const compiled =
    first === undefined
      ? condition(
          previous,
          "Compiled",
          "True",
          "Compiled",
          "the current generation is published",
          g,
          now,
        )
      : condition(
          previous,
          "Compiled",
          "False",
          first.reason,
          refusalMessage(outcome.refusals) +
            (outcome.inLayer
              ? `; the last accepted form (generation ${outcome.layerGeneration ?? "?"}) stays in force`
              : "; no earlier form was accepted, so this policy is not in force"),
          g,
          now,
        );
  const rollout = layer === undefined ? undefined : rolloutOf(nodes, layer);
  const index = nodeIndex(nodes);
  const crioApplied = layer === undefined ? 0 : tallyOf(nodes, layer).crioApplied;
  let applied: Condition;
  if (layer === undefined) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "NotPublished",
      "no form of this policy is published",
      g,
      now,
    );
  } else if (index.crio === 0) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "NoCrioNodes",
      `no node runs CRI-O (${nodes.length} nodes), so nothing enforces revision ${layer.revision}`,
      g,
      now,
    );
  } else if (crioApplied < index.crio) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "RollingOut",
      `${crioApplied}/${index.crio} CRI-O nodes report revision ${layer.revision}` +
        ` (${rollout?.nodesEnforcing ?? 0} enforcing, ${nodes.length} nodes in total)`,
      g,
      now,
    );
  } else {
    applied = condition(
      previous,
      "Applied",
      "True",
      "Applied",
      `all ${index.crio} CRI-O nodes report revision ${layer.revision}` +
        ` (${rollout?.nodesEnforcing ?? 0} enforcing, ${nodes.length} nodes in total)`,
      g,
      now,
    );
  }
  // Ready means in force: a CRI-O node whose CRI-O does not read the files (its agent reports
  // enforcing: false) holds the files but does not enforce them. Never rounded up (DESIGN.md).
  const notEnforcing = index.crioNotEnforcing;
  const ready =
    compiled.status !== "True"
      ? condition(previous, "Ready", "False", compiled.reason, compiled.message, g, now)
      : applied.status !== "True"
        ? condition(previous, "Ready", "False", applied.reason, applied.message, g, now)
        : notEnforcing > 0
          ? condition(
              previous,
              "Ready",
              "False",
              "NotEnforcing",
              `applied on every CRI-O node, but ${notEnforcing}/${index.crio} do not enforce it` +
                " (see their ImagePolicyNodeStatus enforcingReason)",
              g,
              now,
            )
          : condition(
              previous,
              "Ready",
              "True",
              "Ready",
              "compiled, applied and enforced on every CRI-O node",
              g,
              now,
            );
  return {
    ...(g === undefined ? {} : { observedGeneration: g }),
    conditions: [compiled, applied, ready],
    ...(rollout === undefined ? {} : { rollout }),
  };
}

/** True when `desired` differs from what the object carries in the fields the controller owns. */
export function statusChanged(
  desired: PolicyStatus,
  observed: ObservedStatus | undefined,
): boolean {
  if (observed === undefined) return true;
  const ownConditions = (observed.conditions ?? [])
    .filter((c) => c.type === "Compiled" || c.type === "Applied" || c.type === "Ready")
    .map((c) => ({
      type: c.type,
      status: c.status,
      observedGeneration: c.observedGeneration,
      lastTransitionTime: c.lastTransitionTime,
      reason: c.reason,
      message: c.message,
    }));
  const norm = (s: {
    observedGeneration?: number | undefined;
    conditions: readonly unknown[];
    rollout?: unknown;
  }): string =>
    canonicalJson({
      observedGeneration: s.observedGeneration,
      conditions: [...s.conditions].sort((a, b) => (canonicalJson(a) < canonicalJson(b) ? -1 : 1)),
      rollout: s.rollout,
    });
  return norm(desired) !== norm({ ...observed, conditions: ownConditions });
}

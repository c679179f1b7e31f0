// The status of a policy object, computed purely from its outcome in the plan and the node
// reports (docs/style.md habit 10): conditions Compiled, Applied and Ready with observedGeneration, a
// lastTransitionTime that moves only when a condition's status changes, and the rollout.
// The controller patches the status only when statusChanged() says so.

import { z } from "zod";
import { canonicalJson } from "../canonicalJson.ts";
import {
  hasAppliedCluster,
  hasAppliedNamespace,
  type Condition as ContractCondition,
} from "../nodeStatus.ts";
import type { Outcome, Refusal } from "./plan.ts";

export type Condition = ContractCondition<
  "Compiled" | "Applied" | "Ready" | "LockOutRisk" | "Stalled"
>;

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
export type LayerRef = (
  | { readonly kind: "cluster"; readonly revision: string }
  | { readonly kind: "namespace"; readonly namespace: string; readonly revision: string }
) & {
  /** Why this revision could not be published (too large, refused by the API server). */
  readonly publishError?: string;
};

/** docs/internals.md: the cluster layer at R when every value starts with R; namespace N at S
 * when "<N>.json" ends with ".S". */
export function nodeHasApplied(report: NodeReport | undefined, layer: LayerRef): boolean {
  return appliedTest(layer)(report);
}

/** nodeHasApplied for one layer, with the strings it compares built once (it runs for every
 * node of every layer in a status round). */
function appliedTest(layer: LayerRef): (report: NodeReport | undefined) => boolean {
  if (layer.kind === "cluster") {
    return (report) => hasAppliedCluster(report?.appliedRevisions, layer.revision);
  }
  return (report) => hasAppliedNamespace(report?.appliedRevisions, layer.namespace, layer.revision);
}

/** What one layer's rollout counts over a set of nodes. */
export interface Tally {
  readonly applied: number;
  readonly enforcing: number;
  readonly crioApplied: number;
}

/** Nodes that report the very same appliedRevisions map (the controller's cache shares one map
 * between them, src/controller/cache.ts), counted once per layer. */
interface Group {
  readonly report: NodeReport | undefined;
  count: number;
  enforcing: number;
  crio: number;
}

/** The nodes of one rollout round, with each layer's tally computed once (docs/scale.md: 2,200
 * policies share ~501 layers over 5,000 reports). Nodes are grouped by the identity of the map
 * they report, so a tally costs one test per distinct map (a handful during a rollout), not one
 * per node. Build one per round; the node list must not change while it is in use. */
export class Fleet {
  readonly total: number;
  readonly crio: number;
  readonly crioNotEnforcing: number;
  readonly #groups: readonly Group[];
  readonly #tallies = new Map<string, Tally>();

  constructor(nodes: readonly NodeView[]) {
    this.total = nodes.length;
    let crio = 0;
    let crioNotEnforcing = 0;
    const groups = new Map<object | undefined, Group>();
    for (const n of nodes) {
      if (n.crio) {
        crio += 1;
        if (n.report?.enforcing !== true) crioNotEnforcing += 1;
      }
      const key = n.report?.appliedRevisions;
      let g = groups.get(key);
      if (g === undefined) {
        g = { report: n.report, count: 0, enforcing: 0, crio: 0 };
        groups.set(key, g);
      }
      g.count += 1;
      if (n.report?.enforcing === true) g.enforcing += 1;
      if (n.crio) g.crio += 1;
    }
    this.crio = crio;
    this.crioNotEnforcing = crioNotEnforcing;
    this.#groups = [...groups.values()];
  }

  tally(layer: LayerRef): Tally {
    const key =
      layer.kind === "cluster"
        ? `c\0${layer.revision}`
        : `n\0${layer.namespace}\0${layer.revision}`;
    let tally = this.#tallies.get(key);
    if (tally === undefined) {
      let applied = 0;
      let enforcing = 0;
      let crioApplied = 0;
      const hasApplied = appliedTest(layer);
      for (const g of this.#groups) {
        if (!hasApplied(g.report)) continue;
        applied += g.count;
        enforcing += g.enforcing;
        crioApplied += g.crio;
      }
      tally = { applied, enforcing, crioApplied };
      this.#tallies.set(key, tally);
    }
    return tally;
  }
}

export function rolloutOf(fleet: Fleet, layer: LayerRef): Rollout {
  const { applied, enforcing } = fleet.tally(layer);
  return {
    nodesApplied: applied,
    nodesEnforcing: enforcing,
    nodesTotal: fleet.total,
    // docs/internals.md: covered (applied and enforcing) / total.
    display: `${enforcing}/${fleet.total}`,
    revision: layer.revision,
  };
}

const MAX_MESSAGE = 32_000;

function truncate(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 3)}...` : text;
}

function refusalMessage(refusals: readonly Refusal[]): string {
  return truncate(refusals.map((r) => `${r.field}: ${r.message} (${r.reason})`).join("; "));
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
  fleet: Fleet,
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
  const rollout = layer === undefined ? undefined : rolloutOf(fleet, layer);
  const crioApplied = layer === undefined ? 0 : fleet.tally(layer).crioApplied;
  let applied: Condition;
  if (layer?.publishError !== undefined) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "LayerNotPublished",
      `revision ${layer.revision} of this policy's layer could not be published: ${layer.publishError}`,
      g,
      now,
    );
  } else if (layer === undefined) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "NotPublished",
      "no form of this policy is published",
      g,
      now,
    );
  } else if (fleet.crio === 0) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "NoCrioNodes",
      `no node runs CRI-O (${fleet.total} nodes), so nothing enforces revision ${layer.revision}`,
      g,
      now,
    );
  } else if (crioApplied < fleet.crio) {
    applied = condition(
      previous,
      "Applied",
      "False",
      "RollingOut",
      `${crioApplied}/${fleet.crio} CRI-O nodes report revision ${layer.revision}` +
        ` (${rollout?.nodesEnforcing ?? 0} enforcing, ${fleet.total} nodes in total)`,
      g,
      now,
    );
  } else {
    applied = condition(
      previous,
      "Applied",
      "True",
      "Applied",
      `all ${fleet.crio} CRI-O nodes report revision ${layer.revision}` +
        ` (${rollout?.nodesEnforcing ?? 0} enforcing, ${fleet.total} nodes in total)`,
      g,
      now,
    );
  }
  // Ready means in force: a CRI-O node whose CRI-O does not read the files (its agent reports
  // enforcing: false) holds the files but does not enforce them. Never rounded up (docs/design.md).
  const notEnforcing = fleet.crioNotEnforcing;
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
              `applied on every CRI-O node, but ${notEnforcing}/${fleet.crio} do not enforce it` +
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
  // Present only while a protected image is exposed by what is published (a deleted or edited
  // exception cannot be refused): the policies that now decide against it say so.
  const exposures = outcome.exposures;
  const [exposure] = exposures;
  const lockOut =
    exposure === undefined
      ? []
      : [
          condition(
            previous,
            "LockOutRisk",
            "True",
            exposure.image.reason,
            truncate(
              `the published policies no longer accept unconditionally what the cluster must ` +
                `keep pulling: ${[...new Set(exposures.map((e) => e.message))].join("; ")}`,
            ),
            g,
            now,
          ),
        ];
  // Present only while the current generation is refused: kstatus (sigs.k8s.io/cli-utils
  // pkg/kstatus/status, read by Flux, Helm 4's --wait and kpt) reports Failed only for
  // Stalled=True; Ready=False alone reads as InProgress (docs/operate.md).
  const stalled =
    first === undefined
      ? []
      : [condition(previous, "Stalled", "True", compiled.reason, compiled.message, g, now)];
  return {
    ...(g === undefined ? {} : { observedGeneration: g }),
    conditions: [compiled, applied, ready, ...lockOut, ...stalled],
    ...(rollout === undefined ? {} : { rollout }),
  };
}

const OWN_CONDITIONS = new Set(["Compiled", "Applied", "Ready", "LockOutRisk", "Stalled"]);

/** True when `desired` differs from what the object carries in the fields the controller owns. */
export function statusChanged(
  desired: PolicyStatus,
  observed: ObservedStatus | undefined,
): boolean {
  if (observed === undefined) return true;
  const ownConditions = (observed.conditions ?? [])
    .filter((c) => OWN_CONDITIONS.has(c.type))
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

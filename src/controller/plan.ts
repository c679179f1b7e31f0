// What the controller publishes, computed purely from what the informers hold (docs/style.md habit 1):
// policy objects, a Secret lookup, the CRI-O target and the layers published now in, the layers
// to publish and one outcome per object out.
//
// An object that is refused (invalid, unsupported by the target, a lookaside conflict, or a
// lock-out of the operator or pause image) keeps its LAST ACCEPTED form: its entry in the
// published layer, which is how a restarted controller recovers it (docs/internals.md).

import { parseObject } from "../api/parse.ts";
import { refOf, type AnyImagePolicy, type ObjectRef } from "../api/types.ts";
import { canonicalJson } from "../canonicalJson.ts";
import { combinedRequirements, indexLayer, type ScopeIndex } from "../compiler/combine.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import type { Diagnostic } from "../compiler/diagnostics.ts";
import { makeLayer, serializeLayer, type Layer, type LayerPolicy } from "../compiler/layer.ts";
import { registriesD } from "../compiler/registriesD.ts";
import { compilePolicy, type SecretLookup } from "../compiler/validate.ts";
import { layerRevision } from "../layerConfigMap.ts";

/** Reasons beyond the compiler's (src/compiler/diagnostics.ts). */
export type RefusalReason = Diagnostic["reason"] | "WouldRejectOperator" | "WouldRejectPause";

export interface Refusal {
  readonly field: string;
  readonly reason: RefusalReason;
  readonly message: string;
}

/** An image that must never be rejected: the cluster layer, and the operator namespace's
 * combined layers, must not decide `reject` for it. */
export interface ProtectedImage {
  /** Normalised reference (parseImage). */
  readonly reference: string;
  readonly reason: "WouldRejectOperator" | "WouldRejectPause";
}

export interface PlanInput {
  /** Raw ClusterImagePolicy and ImagePolicy objects as the API server serves them. */
  readonly objects: readonly unknown[];
  readonly secrets: SecretLookup;
  readonly target: CrioVersion;
  /** The layers published now (parsed from the layer ConfigMaps). */
  readonly publishedCluster: Layer | undefined;
  readonly publishedNamespaces: ReadonlyMap<string, Layer>;
  readonly operatorNamespace: string;
  readonly protectedImages: readonly ProtectedImage[];
}

export interface Outcome {
  readonly ref: ObjectRef;
  /** metadata.generation of the object this outcome is about. */
  readonly generation: number | undefined;
  /** Empty when the current generation is accepted. */
  readonly refusals: readonly Refusal[];
  /** Some form of the object (current, or last accepted) is in its layer. */
  readonly inLayer: boolean;
  /** The generation of the form in the layer, when inLayer. */
  readonly layerGeneration: number | undefined;
}

export interface PlannedLayer {
  readonly layer: Layer;
  readonly text: string;
  readonly revision: string;
}

export interface Plan {
  readonly cluster: PlannedLayer;
  /** Only namespaces with at least one policy in their layer, sorted. */
  readonly namespaces: ReadonlyMap<string, PlannedLayer>;
  /** Keyed by outcomeKey(ref). */
  readonly outcomes: ReadonlyMap<string, Outcome>;
  /** Problems no refusal can fix (e.g. a deletion that exposes a protected image). */
  readonly warnings: readonly string[];
}

export function outcomeKey(ref: ObjectRef): string {
  return `${ref.kind}/${ref.namespace ?? ""}/${ref.name}`;
}

interface Candidate {
  readonly ref: ObjectRef;
  readonly generation: number | undefined;
  /** The accepted form of the current generation, if any. */
  readonly current: LayerPolicy | undefined;
  /** The form in the published layer, if any. */
  readonly previous: LayerPolicy | undefined;
  refusals: Refusal[];
  /** What goes into the layer (current, previous, or nothing). */
  chosen: LayerPolicy | undefined;
}

function sameContent(a: LayerPolicy | undefined, b: LayerPolicy | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    canonicalJson({ s: a.scopes, r: a.requirement }) ===
    canonicalJson({ s: b.scopes, r: b.requirement })
  );
}

/** The candidate brings something not yet published. */
function isNew(c: Candidate): boolean {
  return c.current !== undefined && !sameContent(c.current, c.previous);
}

function refuse(c: Candidate, refusal: Refusal): void {
  c.refusals.push(refusal);
  c.chosen = c.previous;
}

function refKnownName(v: unknown): ObjectRef | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  const name = o.metadata?.name;
  const namespace = o.metadata?.namespace;
  if (typeof name !== "string") return undefined;
  if (o.kind === "ClusterImagePolicy") return { kind: "ClusterImagePolicy", name };
  if (o.kind === "ImagePolicy" && typeof namespace === "string") {
    return { kind: "ImagePolicy", name, namespace };
  }
  return undefined;
}

function generationOf(v: unknown): number | undefined {
  const g = (v as { metadata?: { generation?: unknown } } | null)?.metadata?.generation;
  return typeof g === "number" ? g : undefined;
}

function previousOf(input: PlanInput, ref: ObjectRef): LayerPolicy | undefined {
  const layer =
    ref.namespace === undefined
      ? input.publishedCluster
      : input.publishedNamespaces.get(ref.namespace);
  return layer?.policies.find((p) => p.name === ref.name);
}

export function plan(input: PlanInput): Plan {
  const candidates: Candidate[] = [];
  for (const raw of input.objects) {
    const parsed = parseObject(raw);
    let policy: AnyImagePolicy | undefined;
    let ref = refKnownName(raw);
    const refusals: Refusal[] = [];
    if (parsed.ok && parsed.kind === "policy") {
      policy = parsed.policy;
      ref = refOf(policy);
    } else if (!parsed.ok) {
      for (const d of parsed.diagnostics) refusals.push(toRefusal(d));
    }
    if (ref === undefined) continue;
    let current: LayerPolicy | undefined;
    if (policy !== undefined) {
      const compiled = compilePolicy(policy, input.secrets, input.target);
      if (compiled.ok) current = compiled.policy;
      else for (const d of compiled.diagnostics) refusals.push(toRefusal(d));
    }
    const previous = previousOf(input, ref);
    candidates.push({
      ref,
      generation: generationOf(raw),
      current,
      previous,
      refusals,
      chosen: refusals.length === 0 ? current : previous,
    });
  }
  candidates.sort((a, b) => compareKeys(outcomeKey(a.ref), outcomeKey(b.ref)));

  const warnings: string[] = [];
  refuseLookasideConflicts(candidates, warnings);
  refuseLockOuts(candidates, input, warnings);

  const clusterPolicies: LayerPolicy[] = [];
  const byNamespace = new Map<string, LayerPolicy[]>();
  for (const c of candidates) {
    if (c.chosen === undefined) continue;
    if (c.ref.namespace === undefined) clusterPolicies.push(c.chosen);
    else byNamespace.set(c.ref.namespace, [...(byNamespace.get(c.ref.namespace) ?? []), c.chosen]);
  }
  const planned = (layer: Layer): PlannedLayer => {
    const text = serializeLayer(layer);
    return { layer, text, revision: layerRevision(text) };
  };
  const namespaces = new Map<string, PlannedLayer>();
  for (const ns of [...byNamespace.keys()].sort(compareKeys)) {
    namespaces.set(ns, planned(makeLayer(ns, byNamespace.get(ns) ?? [])));
  }
  const outcomes = new Map<string, Outcome>();
  for (const c of candidates) {
    outcomes.set(outcomeKey(c.ref), {
      ref: c.ref,
      generation: c.generation,
      refusals: c.refusals,
      inLayer: c.chosen !== undefined,
      layerGeneration: c.chosen?.generation,
    });
  }
  return {
    cluster: planned(makeLayer(undefined, clusterPolicies)),
    namespaces,
    outcomes,
    warnings,
  };
}

function toRefusal(d: Diagnostic): Refusal {
  return { field: d.field, reason: d.reason, message: d.message };
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function indexes(candidates: readonly Candidate[]): {
  cluster: ScopeIndex;
  namespaces: Map<string, ScopeIndex>;
} {
  const cluster: LayerPolicy[] = [];
  const byNs = new Map<string, LayerPolicy[]>();
  for (const c of candidates) {
    if (c.chosen === undefined) continue;
    if (c.ref.namespace === undefined) cluster.push(c.chosen);
    else byNs.set(c.ref.namespace, [...(byNs.get(c.ref.namespace) ?? []), c.chosen]);
  }
  const namespaces = new Map<string, ScopeIndex>();
  for (const [ns, list] of byNs) namespaces.set(ns, indexLayer(makeLayer(ns, list)));
  return { cluster: indexLayer(makeLayer(undefined, cluster)), namespaces };
}

/** As compileAll does: a scope that would need two lookaside URLs refuses the objects involved.
 * Only objects bringing something new are refused (their published form stays); a conflict among
 * published forms alone (possible after a target change) is reported on every object involved. */
function refuseLookasideConflicts(candidates: Candidate[], warnings: string[]): void {
  const byKey = new Map(candidates.map((c) => [outcomeKey(c.ref), c]));
  for (let round = 0; round <= candidates.length; round++) {
    const { cluster, namespaces } = indexes(candidates);
    const conflicts = registriesD(cluster, [...namespaces.values()]).conflicts;
    if (conflicts.length === 0) return;
    let refused = false;
    for (const conflict of conflicts) {
      const involved = conflict.sources
        .map((s) => byKey.get(outcomeKey(s)))
        .filter((c): c is Candidate => c !== undefined);
      const fresh = involved.filter((c) => isNew(c) && c.chosen === c.current);
      const message = `scope ${JSON.stringify(conflict.scope)} would need two lookaside URLs: ${conflict.urls.join(", ")}`;
      const field = "spec.policy.rootOfTrust.gpgKey.lookaside";
      if (fresh.length > 0) {
        for (const c of fresh) refuse(c, { field, reason: "ConflictingLookaside", message });
        refused = true;
      } else {
        for (const c of involved) {
          if (!c.refusals.some((r) => r.reason === "ConflictingLookaside")) {
            c.refusals.push({ field, reason: "ConflictingLookaside", message });
          }
        }
        warnings.push(`published policies conflict: ${message}`);
      }
    }
    if (!refused) return;
  }
}

/** The first protected image the cluster layer, or the operator namespace's combined layers,
 * would reject. */
function lockOut(candidates: readonly Candidate[], input: PlanInput): ProtectedImage | undefined {
  if (input.protectedImages.length === 0) return undefined;
  const relevant = candidates.filter(
    (c) => c.ref.namespace === undefined || c.ref.namespace === input.operatorNamespace,
  );
  const { cluster, namespaces } = indexes(relevant);
  const own = namespaces.get(input.operatorNamespace);
  for (const image of input.protectedImages) {
    for (const layers of own === undefined ? [[cluster]] : [[cluster], [cluster, own]]) {
      if (combinedRequirements(layers, image.reference).some((r) => r.kind === "reject")) {
        return image;
      }
    }
  }
  return undefined;
}

/** Accepts new forms one at a time (in key order) on top of the published ones, refusing each
 * one whose acceptance would reject a protected image. */
function refuseLockOuts(candidates: Candidate[], input: PlanInput, warnings: string[]): void {
  if (lockOut(candidates, input) === undefined) return;
  const relevant = (c: Candidate): boolean =>
    c.ref.namespace === undefined || c.ref.namespace === input.operatorNamespace;
  const fresh = candidates.filter((c) => relevant(c) && isNew(c) && c.chosen === c.current);
  for (const c of fresh) c.chosen = c.previous;
  const base = lockOut(candidates, input);
  if (base !== undefined) {
    warnings.push(
      `the published policies without any change would reject ${base.reference} (${base.reason}); ` +
        "a deleted or edited exception cannot be refused",
    );
  }
  for (const c of fresh) {
    c.chosen = c.current;
    const image = lockOut(candidates, input);
    if (image !== undefined && (base === undefined || image.reference !== base.reference)) {
      refuse(c, {
        field: "spec",
        reason: image.reason,
        message:
          `accepting this policy would reject ${image.reference} ` +
          `(${image.reason === "WouldRejectOperator" ? "the operator's own image" : "the pause image"}) ` +
          `in the cluster layer or in namespace ${input.operatorNamespace}`,
      });
    }
  }
}

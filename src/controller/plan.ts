// What the controller publishes, computed purely from what the informers hold (docs/style.md habit 1):
// policy objects, a Secret lookup, the CRI-O target, the trust settings and the layers published
// now in, the layers to publish and one outcome per object out. Stages one and two of the compiler
// (validate.ts, assemble.ts) decide what a policy means and which policies are refused together
// (lookasides: cluster policies win), exactly as `imagepolicy compile` does; this module adds what
// only a controller in a running cluster can judge.
//
// An object that is refused keeps its LAST ACCEPTED form: its entry in the published layer, which
// is how a restarted controller recovers it (docs/internals.md). The trust boundaries of
// docs/security.md are enforced in this order:
// 1. a ClusterImagePolicy reads Secrets only from the operator namespace (an ImagePolicy's Secret
//    is in its own namespace by construction: its schema has no namespace field); controller
//    only: the CLI reads the Secrets it is given and knows no operator namespace;
// 2. an ImagePolicy's GPG lookaside (assemble.ts; the allow-list is the controller's flag);
// 3. lookaside conflicts: a namespace policy involved is refused, never a cluster one
//    (assemble.ts);
// 4. per-namespace quotas (policies, scopes, bytes), in key order, so a namespace never grows a
//    layer past what one ConfigMap can hold; controller only: they protect the ConfigMaps the
//    controller publishes, and they are its flags;
// 5. lock-out: a protected image must stay accepted unconditionally; controller only: the
//    protected images are the running cluster's (its pods, pause image, the operator's image).

import { parseObject, type ParsedObject } from "../api/parse.ts";
import { refKey, refOf, refOfObject, type AnyImagePolicy, type ObjectRef } from "../api/types.ts";
import { canonicalJson } from "../canonicalJson.ts";
import {
  applySetRules,
  isFresh,
  layersOf,
  refuse,
  type Candidate as SetCandidate,
  type Refusal as SetRefusal,
} from "../compiler/assemble.ts";
import { decide, indexLayer, type ScopeIndex } from "../compiler/combine.ts";
import { formatCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import type { Diagnostic } from "../compiler/diagnostics.ts";
import { makeLayer, serializeLayer, type Layer, type LayerPolicy } from "../compiler/layer.ts";
import type { Requirement } from "../compiler/requirements.ts";
import { validatePolicy, type SecretLookup, type ValidatedPolicy } from "../compiler/validate.ts";
import { layerRevision } from "../layerConfigMap.ts";

/** Reasons beyond the compiler's (src/compiler/diagnostics.ts). */
export type RefusalReason =
  | Diagnostic["reason"]
  | "SecretNamespaceNotAllowed"
  | "LookasideNotAllowed"
  | "QuotaExceeded"
  | "SecretPending"
  | ProtectedImage["reason"];

export type Refusal = SetRefusal<RefusalReason>;

/** An image the cluster must keep pulling: every document that applies to it must accept it
 * unconditionally (insecureAcceptAnything, or no requirement at all). */
export interface ProtectedImage {
  /** Normalised reference (parseImage). */
  readonly reference: string;
  readonly reason: "WouldRejectOperator" | "WouldRejectPause" | "WouldRejectProtectedImage";
  /** Which namespace documents besides cluster.json must accept it: every namespace, or those
   * listed (the operator's image: the operator namespace; a kube-system image: kube-system). */
  readonly namespaces: "all" | readonly string[];
  /** Where it comes from, for messages ("the pause image", "a kube-system pod's image"). */
  readonly what: string;
}

/** Limits on what one namespace's ImagePolicies may put into its layer. */
export interface NamespaceQuota {
  readonly maxPolicies: number;
  readonly maxScopes: number;
  /** Bytes of the namespace's layer.json. */
  readonly maxBytes: number;
}

export interface TrustSettings {
  readonly operatorNamespace: string;
  readonly protectedImages: readonly ProtectedImage[];
  readonly quota: NamespaceQuota;
  /** URL prefixes an ImagePolicy's GPG lookaside may start with; empty: none allowed. */
  readonly namespaceLookasidePrefixes: readonly string[];
}

export interface PlanInput extends TrustSettings {
  /** Raw ClusterImagePolicy and ImagePolicy objects as the API server serves them. */
  readonly objects: readonly unknown[];
  readonly secrets: SecretLookup;
  readonly target: CrioVersion;
  /** The layers published now (parsed from the layer ConfigMaps). */
  readonly publishedCluster: Layer | undefined;
  readonly publishedNamespaces: ReadonlyMap<string, Layer>;
  /** Secrets (namespace/name) the controller has not read yet: a policy that needs one keeps
   * its published form until it is read. */
  readonly pendingSecrets?: ReadonlySet<string>;
  /** Secrets watched for a few seconds only and not read yet: a policy that needs one and whose
   * published form is its current generation keeps it without a refusal (a restart lists every
   * Secret anew); any other keeps what it has and says SecretPending. */
  readonly settlingSecrets?: ReadonlySet<string>;
  /** What an earlier plan() may pass on (the controller keeps one); without it, nothing is
   * reused. */
  readonly cache?: PlanCache;
}

/** A protected image the published policies do not accept unconditionally although nothing new
 * was accepted (an exception deleted or edited: neither can be refused). */
export interface Exposure {
  readonly image: ProtectedImage;
  /** undefined: cluster.json; else that namespace's document. */
  readonly namespace: string | undefined;
  readonly message: string;
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
  /** Protected images that this object's published form helps keep from being accepted. */
  readonly exposures: readonly Exposure[];
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
  /** Keyed by refKey(ref). */
  readonly outcomes: ReadonlyMap<string, Outcome>;
  /** Problems no refusal can fix (a published conflict, a deletion that exposes an image). */
  readonly warnings: readonly string[];
}

interface Candidate extends SetCandidate<RefusalReason> {
  readonly generation: number | undefined;
  readonly exposures: Exposure[];
}

interface Validated {
  readonly target: string;
  readonly reads: readonly SecretRead[];
  readonly result: ValidatedPolicy;
}

/** What plan() reuses between calls: an object's parse and its stage-one result, keyed by the
 * object itself (an informer replaces an object on every change, never mutates it), the latter
 * valid while the target and every Secret value it read are unchanged. */
export class PlanCache {
  readonly #parsed = new WeakMap<object, ParsedObject>();
  readonly #layers = new Map<string, PlannedLayer>();
  readonly #validated = new WeakMap<object, Validated>();
  /** The stage-one results again, by the object's uid and generation: the API server moves the
   * generation on every change of the spec, so an object replaced by a status write (the
   * controller's own, for every object after a rollout) is not checked again. Without it the
   * first plan after the first rollout checked all 2,200 policies' keys again (1.1 s of CPU with
   * the large fixture, docs/scale.md). Entries of objects no plan saw last time are dropped. */
  #byGeneration = new Map<string, Validated>();
  #seenGenerations = new Map<string, Validated>();
  /** policyBytes of each policy form. */
  readonly #bytes = new WeakMap<LayerPolicy, number>();

  parse(raw: unknown): ParsedObject {
    if (typeof raw !== "object" || raw === null) return parseObject(raw);
    let parsed = this.#parsed.get(raw);
    if (parsed === undefined) {
      parsed = parseObject(raw);
      this.#parsed.set(raw, parsed);
    }
    return parsed;
  }

  /** A layer's text and revision; reused while it holds the very same policy forms (the
   * validated forms above, or the published ones) in the same order. */
  planned(layer: Layer): PlannedLayer {
    const key = layer.namespace ?? "";
    const hit = this.#layers.get(key);
    if (
      hit !== undefined &&
      hit.layer.policies.length === layer.policies.length &&
      hit.layer.policies.every((p, i) => p === layer.policies[i])
    ) {
      return hit;
    }
    const text = serializeLayer(layer);
    const planned = { layer, text, revision: layerRevision(text) };
    this.#layers.set(key, planned);
    return planned;
  }

  validate(policy: AnyImagePolicy, secrets: SecretLookup, target: CrioVersion): ValidatedPolicy {
    const version = formatCrioVersion(target);
    const id = generationKey(policy);
    const hit =
      this.#validated.get(policy) ?? (id === undefined ? undefined : this.#byGeneration.get(id));
    if (
      hit?.target === version &&
      hit.reads.every((r) => secrets(r.namespace, r.name, r.key) === r.value)
    ) {
      if (id !== undefined) this.#seenGenerations.set(id, hit);
      return hit.result;
    }
    const reads: SecretRead[] = [];
    const recording: SecretLookup = (namespace, name, key) => {
      const value = secrets(namespace, name, key);
      reads.push({ namespace, name, key, value });
      return value;
    };
    const result = validatePolicy(policy, recording, target);
    const entry = { target: version, reads, result };
    this.#validated.set(policy, entry);
    if (id !== undefined) this.#seenGenerations.set(id, entry);
    return result;
  }

  /** Ends a plan: keeps the results by generation of the objects it saw. */
  endPlan(): void {
    this.#byGeneration = this.#seenGenerations;
    this.#seenGenerations = new Map();
  }

  /** A policy form's share of layer.json (policyBytes), computed once per form. */
  bytes(p: LayerPolicy): number {
    let n = this.#bytes.get(p);
    if (n === undefined) {
      n = policyBytes(p);
      this.#bytes.set(p, n);
    }
    return n;
  }
}

/** What names one spec of one object: kind, namespace, name, uid and generation; undefined for
 * an object that has no uid or generation (one read from a file). */
function generationKey(policy: AnyImagePolicy): string | undefined {
  const { uid, generation, name, namespace } = policy.metadata;
  if (uid === undefined || generation === undefined) return undefined;
  return `${policy.kind}/${namespace ?? ""}/${name}/${uid}/${String(generation)}`;
}

interface SecretRead {
  readonly namespace: string;
  readonly name: string;
  readonly key: string;
  readonly value: string | undefined;
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

/** Every keySecretRef of a policy, with its field path and the namespace it reads from. */
function secretRefsOf(
  policy: AnyImagePolicy,
): { field: string; namespace: string | undefined; name: string }[] {
  const rot = policy.spec.policy.rootOfTrust;
  if (rot.policyType !== "PublicKey") return [];
  const pk = rot.publicKey;
  const base = "spec.policy.rootOfTrust.publicKey";
  const sources: { field: string; src: object }[] = [
    { field: base, src: pk },
    ...(pk.additionalKeys ?? []).map((k, i) => ({ field: `${base}.additionalKeys[${i}]`, src: k })),
  ];
  const out: { field: string; namespace: string | undefined; name: string }[] = [];
  for (const { field, src } of sources) {
    if (!("keySecretRef" in src)) continue;
    const ref = src.keySecretRef;
    if (typeof ref !== "object" || ref === null || !("name" in ref)) continue;
    const name = ref.name;
    if (typeof name !== "string") continue;
    const declared =
      "namespace" in ref && typeof ref.namespace === "string" ? ref.namespace : undefined;
    const namespace = policy.kind === "ImagePolicy" ? policy.metadata.namespace : declared;
    out.push({ field: `${field}.keySecretRef`, namespace, name });
  }
  return out;
}

/** Rule 1: the keySecretRefs of a ClusterImagePolicy that name another namespace than the
 * operator's. */
function foreignSecretRefs(policy: AnyImagePolicy, operatorNamespace: string): Refusal[] {
  if (policy.kind !== "ClusterImagePolicy") return [];
  const out: Refusal[] = [];
  for (const ref of secretRefsOf(policy)) {
    if (ref.namespace === operatorNamespace) continue;
    const field = ref.field.replace(/\.keySecretRef$/, "");
    out.push({
      field: `${field}.keySecretRef.namespace`,
      reason: "SecretNamespaceNotAllowed",
      message:
        `a ClusterImagePolicy reads Secrets only from the operator namespace ` +
        `${operatorNamespace}, not ${ref.namespace ?? "(none)"} (whoever administers ` +
        `${ref.namespace ?? "it"} could replace the key every node trusts)`,
    });
  }
  return out;
}

export function plan(input: PlanInput): Plan {
  const cache = input.cache ?? new PlanCache();
  const candidates: Candidate[] = [];
  // A ClusterImagePolicy never reads a Secret outside the operator namespace, whatever it names.
  const clusterSecrets: SecretLookup = (namespace, name, key) =>
    namespace === input.operatorNamespace ? input.secrets(namespace, name, key) : undefined;
  for (const raw of input.objects) {
    const parsed = cache.parse(raw);
    let policy: AnyImagePolicy | undefined;
    let ref = refOfObject(raw);
    const refusals: Refusal[] = [];
    if (parsed.ok && parsed.kind === "policy") {
      policy = parsed.policy;
      ref = refOf(policy);
    } else if (!parsed.ok) {
      for (const d of parsed.diagnostics) refusals.push(toRefusal(d));
    }
    if (ref === undefined) continue;
    const previous = previousOf(input, ref);
    const generation = generationOf(raw);
    let current: LayerPolicy | undefined;
    if (policy !== undefined) {
      const foreign = foreignSecretRefs(policy, input.operatorNamespace);
      refusals.push(...foreign);
      const upToDate = previous !== undefined && previous.generation === generation;
      const refs = secretRefsOf(policy);
      const pending = refs.filter((r) => {
        const key = `${r.namespace ?? ""}/${r.name}`;
        return (
          input.pendingSecrets?.has(key) === true ||
          (input.settlingSecrets?.has(key) === true && !upToDate)
        );
      });
      const settling = refs.some((r) =>
        input.settlingSecrets?.has(`${r.namespace ?? ""}/${r.name}`),
      );
      if (settling && upToDate && pending.length === 0 && refusals.length === 0) {
        // Its published form is this generation's: keep it while the Secret is being read.
        candidates.push({
          ref,
          generation,
          current: previous,
          previous,
          refusals,
          chosen: previous,
          exposures: [],
        });
        continue;
      }
      for (const r of pending) {
        refusals.push({
          field: r.field,
          reason: "SecretPending",
          message:
            `Secret ${r.namespace ?? ""}/${r.name} has not been read yet; if this stays, the ` +
            `controller may not read it: grant its ServiceAccount get, list and watch on this ` +
            `Secret (docs/install.md, "Keys in Secrets")`,
        });
      }
      if (foreign.length === 0 && pending.length === 0) {
        const lookup = policy.kind === "ClusterImagePolicy" ? clusterSecrets : input.secrets;
        const validated = cache.validate(policy, lookup, input.target);
        if (validated.ok) current = validated.policy;
        else for (const d of validated.diagnostics) refusals.push(toRefusal(d));
      }
    }
    candidates.push({
      ref,
      generation,
      current,
      previous,
      refusals,
      chosen: refusals.length === 0 ? current : previous,
      exposures: [],
    });
  }
  candidates.sort((a, b) => compareKeys(refKey(a.ref), refKey(b.ref)));

  // Stage two, as `imagepolicy compile` runs it; then what only the controller judges.
  const warnings = applySetRules(candidates, {
    namespaceLookasidePrefixes: input.namespaceLookasidePrefixes,
  });
  applyQuotas(candidates, input.quota, (p) => cache.bytes(p));
  refuseLockOuts(candidates, input, warnings);

  const layers = layersOf(candidates);
  const namespaces = new Map<string, PlannedLayer>();
  for (const [ns, layer] of layers.namespaces) namespaces.set(ns, cache.planned(layer));
  const outcomes = new Map<string, Outcome>();
  for (const c of candidates) {
    outcomes.set(refKey(c.ref), {
      ref: c.ref,
      generation: c.generation,
      refusals: c.refusals,
      inLayer: c.chosen !== undefined,
      layerGeneration: c.chosen?.generation,
      exposures: c.exposures,
    });
  }
  cache.endPlan();
  return { cluster: cache.planned(layers.cluster), namespaces, outcomes, warnings };
}

function toRefusal(d: Diagnostic): Refusal {
  return { field: d.field, reason: d.reason, message: d.message };
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function policyBytes(p: LayerPolicy): number {
  // The policy's share of layer.json: its canonical JSON and a separating comma.
  return Buffer.byteLength(canonicalJson(p)) + 1;
}

/** Rule 4. In key order, each ImagePolicy of a namespace either fits what is already counted
 * (its current form, else its published form) or is refused naming the limit. */
function applyQuotas(
  candidates: Candidate[],
  quota: NamespaceQuota,
  bytesOf: (p: LayerPolicy) => number,
): void {
  const used = new Map<string, { policies: number; scopes: number; bytes: number }>();
  for (const c of candidates) {
    const ns = c.ref.namespace;
    if (ns === undefined || c.chosen === undefined) continue;
    const u = used.get(ns) ?? { policies: 0, scopes: 0, bytes: 0 };
    used.set(ns, u);
    const over = (p: LayerPolicy): string | undefined => {
      if (u.policies + 1 > quota.maxPolicies) {
        return `namespace ${ns} may hold at most ${quota.maxPolicies} ImagePolicies in its layer (--namespace-max-policies)`;
      }
      if (u.scopes + p.scopes.length > quota.maxScopes) {
        return `namespace ${ns} may hold at most ${quota.maxScopes} scopes in its layer, this policy would bring it to ${u.scopes + p.scopes.length} (--namespace-max-scopes)`;
      }
      if (u.bytes + bytesOf(p) > quota.maxBytes) {
        return `namespace ${ns}'s layer may hold at most ${quota.maxBytes} bytes, this policy would bring it to ${u.bytes + bytesOf(p)} (--namespace-max-bytes)`;
      }
      return undefined;
    };
    const problem = over(c.chosen);
    let kept: LayerPolicy | undefined = c.chosen;
    if (problem !== undefined) {
      kept =
        c.chosen === c.current && c.previous !== undefined && over(c.previous) === undefined
          ? c.previous
          : undefined;
      refuse(c, { field: "spec", reason: "QuotaExceeded", message: problem }, kept);
    }
    if (kept !== undefined) {
      u.policies += 1;
      u.scopes += kept.scopes.length;
      u.bytes += bytesOf(kept);
    }
  }
}

function unconditional(reqs: readonly Requirement[]): boolean {
  return reqs.every((r) => r.kind === "accept");
}

function applies(image: ProtectedImage, namespace: string): boolean {
  return image.namespaces === "all" || image.namespaces.includes(namespace);
}

function describeRequirements(reqs: readonly Requirement[]): string {
  return reqs.some((r) => r.kind === "reject")
    ? "rejects it"
    : `requires ${[...new Set(reqs.map((r) => r.kind))].join(" and ")} for it`;
}

/** The protected images a layer's own decision does not accept unconditionally. A document is
 * the AND of the cluster decision and (for <ns>.json) the namespace decision, and an AND accepts
 * unconditionally exactly when both sides do: so cluster.json's exposures plus each namespace
 * layer's own are every document's, and each layer can be checked on its own. */
function layerExposures(
  index: ScopeIndex,
  ns: string | undefined,
  images: readonly ProtectedImage[],
): Exposure[] {
  const out: Exposure[] = [];
  for (const image of images) {
    if (ns !== undefined && !applies(image, ns)) continue;
    const reqs = decide(index, image.reference)?.entry.requirements ?? [];
    if (unconditional(reqs)) continue;
    const where = ns === undefined ? "cluster.json" : `${ns}.json (the ImagePolicies of ${ns})`;
    out.push({
      image,
      namespace: ns,
      message: `${where} ${describeRequirements(reqs)}: ${image.reference} (${image.what})`,
    });
  }
  return out;
}

const exposureKey = (e: Exposure): string => `${e.namespace ?? ""}\n${e.image.reference}`;

/** Rule 5. Accepts new forms one at a time (in key order) on top of the published ones, refusing
 * each one whose acceptance would expose a protected image that was not exposed already: the
 * cluster layer's, then each namespace layer's on its own (see layerExposures). What stays
 * exposed without anything new (a deleted exception) is put on the policies that decide it. */
function refuseLockOuts(candidates: Candidate[], input: PlanInput, warnings: string[]): void {
  const images = input.protectedImages;
  if (images.length === 0) return;
  const layers = new Map<string | undefined, Candidate[]>();
  for (const c of candidates) {
    const list = layers.get(c.ref.namespace);
    if (list === undefined) layers.set(c.ref.namespace, [c]);
    else list.push(c);
  }
  const indexOf = (ns: string | undefined, list: readonly Candidate[]): ScopeIndex =>
    indexLayer(
      makeLayer(
        ns,
        list.flatMap((c) => (c.chosen === undefined ? [] : [c.chosen])),
      ),
    );
  const byKey = new Map(candidates.map((c) => [refKey(c.ref), c]));
  for (const [ns, list] of layers) {
    if (ns !== undefined && !images.some((i) => applies(i, ns))) continue;
    const exposed = (): Exposure[] => layerExposures(indexOf(ns, list), ns, images);
    if (exposed().length > 0) {
      const fresh = list.filter(isFresh);
      for (const c of fresh) c.chosen = c.previous;
      const base = new Set(exposed().map(exposureKey));
      for (const c of fresh) {
        c.chosen = c.current;
        const added = exposed().find((e) => !base.has(exposureKey(e)));
        if (added !== undefined) {
          refuse(
            c,
            {
              field: "spec",
              reason: added.image.reason,
              message: `accepting this policy would no longer accept unconditionally ${added.image.reference}, ${added.image.what}: ${added.message}`,
            },
            c.previous,
          );
        }
      }
    }
    const index = indexOf(ns, list);
    for (const e of layerExposures(index, ns, images)) {
      warnings.push(`protected image exposed: ${e.message}`);
      for (const source of decide(index, e.image.reference)?.entry.sources ?? []) {
        byKey.get(refKey(source))?.exposures.push(e);
      }
    }
  }
}

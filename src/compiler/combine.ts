// Stage two of the compiler (pure): the cluster layer and at most one namespace layer in, one
// complete policy.json document out, rendered for one CRI-O version.
//
// docs/design.md rule 3: for every scope X in the union of both layers, the namespace file holds the
// requirements of the cluster scope that decides X (the first cluster scope in X's fallback
// chain) AND those of the namespace scope that decides X. Because containers/image picks the most
// specific scope of the file, and X's chain is a suffix of the chain of every image X decides,
// this gives every image exactly cluster-decision AND namespace-decision: tighten-only.

import { canonicalJson } from "../canonicalJson.ts";
import type { ObjectRef } from "../api/types.ts";
import type { Policy, PolicyRequirement, PolicyRequirements } from "../policyjson/types.ts";
import type { CrioVersion } from "./crioVersion.ts";
import type { Layer } from "./layer.ts";
import { render, simplify, unsupportedFor, type Requirement } from "./requirements.ts";
import { compareScopes, fallbackChain, type Scope } from "./scopes.ts";

export interface ScopeEntry {
  /** The AND of every policy on this scope, simplified. */
  readonly requirements: readonly Requirement[];
  /** The policies that put it there. */
  readonly sources: readonly ObjectRef[];
}

export interface ScopeIndex {
  readonly namespace?: string;
  readonly scopes: ReadonlyMap<Scope, ScopeEntry>;
}

export function indexLayer(layer: Layer): ScopeIndex {
  const acc = new Map<Scope, { requirements: Requirement[]; sources: ObjectRef[] }>();
  for (const p of layer.policies) {
    const source: ObjectRef =
      layer.namespace === undefined
        ? { kind: "ClusterImagePolicy", name: p.name }
        : { kind: "ImagePolicy", name: p.name, namespace: layer.namespace };
    for (const scope of p.scopes) {
      const e = acc.get(scope) ?? { requirements: [], sources: [] };
      e.requirements.push(p.requirement);
      e.sources.push(source);
      acc.set(scope, e);
    }
  }
  const scopes = new Map<Scope, ScopeEntry>();
  for (const [scope, e] of acc) {
    scopes.set(scope, { requirements: simplify(e.requirements), sources: e.sources });
  }
  return layer.namespace === undefined ? { scopes } : { namespace: layer.namespace, scopes };
}

export interface Decision {
  readonly scope: Scope;
  readonly entry: ScopeEntry;
}

/** The scope of `index` that containers/image would use for `scope` (or an image reference). */
export function decide(index: ScopeIndex, scope: Scope): Decision | undefined {
  return decideOnChain(index, fallbackChain(scope));
}

/** decide() with the fallback chain already computed (it is the same for every layer). */
export function decideOnChain(index: ScopeIndex, chain: readonly Scope[]): Decision | undefined {
  for (const candidate of chain) {
    const entry = index.scopes.get(candidate);
    if (entry !== undefined) return { scope: candidate, entry };
  }
  return undefined;
}

/** Requirements of the combined document for scope X: the AND of every layer's decision. */
export function combinedRequirements(
  layers: readonly ScopeIndex[],
  scope: Scope,
): readonly Requirement[] {
  const chain = fallbackChain(scope);
  const decided: (readonly Requirement[])[] = [];
  for (const l of layers) {
    const d = decideOnChain(l, chain);
    if (d !== undefined) decided.push(d.entry.requirements);
  }
  // Each entry is already simplified: one deciding layer needs no second pass.
  const [only] = decided;
  if (decided.length === 1 && only !== undefined) return only;
  return simplify(decided.flat());
}

export function combinedScopes(layers: readonly ScopeIndex[]): Scope[] {
  const all = new Set<Scope>();
  for (const l of layers) for (const s of l.scopes.keys()) all.add(s);
  return [...all].sort(compareScopes);
}

export type CombineResult =
  { ok: true; policy: Policy; text: string } | { ok: false; problems: string[] };

const ACCEPT: PolicyRequirements = [{ type: "insecureAcceptAnything" }];

function toRequirements(reqs: readonly Requirement[]): PolicyRequirements {
  const rendered: PolicyRequirement[] = reqs.map(render);
  const [first, ...rest] = rendered;
  return first === undefined ? ACCEPT : [first, ...rest];
}

/** The document for the AND of `layers`: [cluster] gives cluster.json, [cluster, namespace] gives
 * <namespace>.json. More layers give intersections, which the agent writes while it moves a node
 * from one revision to the next so that no namespace file is ever looser than cluster.json (an
 * old and a new cluster layer together). Fails (renders nothing) if any requirement needs a
 * feature `target` cannot parse: dropping it would weaken the policy. */
export function combine(layers: readonly ScopeIndex[], target: CrioVersion): CombineResult {
  const docker: Record<Scope, PolicyRequirements> = {};
  const problems = new Set<string>();
  for (const scope of combinedScopes(layers)) {
    const reqs = combinedRequirements(layers, scope);
    for (const r of reqs) for (const p of unsupportedFor(r, target)) problems.add(p);
    docker[scope] = toRequirements(reqs);
  }
  if (problems.size > 0) return { ok: false, problems: [...problems].sort() };
  // Images not matched by any docker scope, and other transports, keep CRI-O's stock default.
  const policy: Policy = { default: ACCEPT, transports: { docker } };
  return { ok: true, policy, text: canonicalJson(policy) };
}

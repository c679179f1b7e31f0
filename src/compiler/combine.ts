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
import {
  render,
  requirementKey,
  simplify,
  unsupportedFor,
  type Requirement,
} from "./requirements.ts";
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

/** Requirements of the combined document for scope X: the AND of every layer's decision.
 * `chain` is fallbackChain(scope), when the caller has it already. */
export function combinedRequirements(
  layers: readonly ScopeIndex[],
  scope: Scope,
  chain: readonly Scope[] = fallbackChain(scope),
): readonly Requirement[] {
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

function toRequirements(
  reqs: readonly Requirement[],
  map?: (r: PolicyRequirement) => PolicyRequirement,
): PolicyRequirements {
  const rendered: PolicyRequirement[] = reqs.map((r) =>
    map === undefined ? render(r) : map(render(r)),
  );
  const [first, ...rest] = rendered;
  return first === undefined ? ACCEPT : [first, ...rest];
}

// A document is canonicalJson({default, transports: {docker: {scope: requirements...}}}). Its
// text is also built from one text per scope entry (documentText), so that the agent can keep
// the entries of the cluster layer and splice a namespace's in (src/agent/render.ts) with output
// byte-identical to canonicalJson: the prefix and suffix are cut from canonicalJson's own output.
const ENTRY_INDENT = "      ";
const PROBE_ENTRY = `${ENTRY_INDENT}"x": []`;
const PROBE = canonicalJson({ default: ACCEPT, transports: { docker: { x: [] } } });

/** The constant parts of a document's text: prefix, entries joined by separator, suffix; `empty`
 * when there is no entry. */
export const DOCUMENT_TEXT = {
  prefix: PROBE.slice(0, PROBE.indexOf(PROBE_ENTRY)),
  separator: ",\n",
  suffix: PROBE.slice(PROBE.indexOf(PROBE_ENTRY) + PROBE_ENTRY.length),
  empty: canonicalJson({ default: ACCEPT, transports: { docker: {} } }),
} as const;

export type EntryResult = { ok: true; text: string } | { ok: false; problems: string[] };

/** The text of a requirement list as it sits in an entry; fails (renders nothing) if a
 * requirement needs a feature `target` cannot parse. */
/** The text of a scope's requirements as an entry's value; `map` rewrites each rendered
 * requirement first (the agent names key files instead of inlining keys: agent/keyFiles.ts). */
export function renderValue(
  reqs: readonly Requirement[],
  target: CrioVersion,
  map?: (r: PolicyRequirement) => PolicyRequirement,
): EntryResult {
  const problems: string[] = [];
  for (const r of reqs) problems.push(...unsupportedFor(r, target));
  if (problems.length > 0) return { ok: false, problems };
  const text = canonicalJson(toRequirements(reqs, map))
    .trimEnd()
    .replaceAll("\n", `\n${ENTRY_INDENT}`);
  return { ok: true, text };
}

/** The item of a one-requirement value (renderValue's text for one requirement). A value of
 * several requirements is joinValue of their items, byte-identical to renderValue of the list:
 * the agent renders each distinct requirement once and joins (src/agent/render.ts). */
export function valueItem(text: string): string {
  return text.slice(2, text.length - ENTRY_INDENT.length - 2);
}

export function joinValue(items: readonly string[]): string {
  return `[\n${items.join(",\n")}\n${ENTRY_INDENT}]`;
}

/** What precedes an entry's value: its indent and its scope as a key. */
export function entryKeyText(scope: Scope): string {
  return `${ENTRY_INDENT}${JSON.stringify(scope)}: `;
}

/** The text of the docker entry for `scope` holding `reqs`, as it sits in a document. */
export function renderEntry(
  scope: Scope,
  reqs: readonly Requirement[],
  target: CrioVersion,
): EntryResult {
  const value = renderValue(reqs, target);
  return value.ok ? { ok: true, text: entryKeyText(scope) + value.text } : value;
}

/** The document holding `entries` (renderEntry texts, in compareScopes order of their scopes). */
export function documentText(entries: readonly string[]): string {
  const d = DOCUMENT_TEXT;
  return entries.length === 0 ? d.empty : `${d.prefix}${entries.join(d.separator)}${d.suffix}`;
}

/** The document for the AND of `layers`: [cluster] gives cluster.json, [cluster, namespace] gives
 * <namespace>.json. More layers give intersections, which the agent writes while it moves a node
 * from one revision to the next so that no namespace file is ever looser than cluster.json (an
 * old and a new cluster layer together). Fails (renders nothing) if any requirement needs a
 * feature `target` cannot parse: dropping it would weaken the policy. */
export function combine(layers: readonly ScopeIndex[], target: CrioVersion): CombineResult {
  const docker: Record<Scope, PolicyRequirements> = {};
  const entries: string[] = [];
  const problems = new Set<string>();
  for (const scope of combinedScopes(layers)) {
    const reqs = combinedRequirements(layers, scope);
    const entry = renderEntry(scope, reqs, target);
    if (entry.ok) entries.push(entry.text);
    else for (const p of entry.problems) problems.add(p);
    docker[scope] = toRequirements(reqs);
  }
  if (problems.size > 0) return { ok: false, problems: [...problems].sort() };
  // Images not matched by any docker scope, and other transports, keep CRI-O's stock default.
  const policy: Policy = { default: ACCEPT, transports: { docker } };
  return { ok: true, policy, text: documentText(entries) };
}

/** True when, for every image, what the AND of `tighter` allows the AND of `looser` allows too
 * (so a file of the first kind may stand beside a cluster.json of the second). Checked at every
 * scope of either side, where the deciding requirements of `tighter` must include those of
 * `looser` (or reject); an image is decided, on both sides, as the first of those scopes in its
 * fallback chain decides (the chain of that scope is the rest of the image's chain). Sufficient,
 * not necessary: `false` may also mean "cannot tell this way". */
export function allowsNoMore(
  tighter: readonly ScopeIndex[],
  looser: readonly ScopeIndex[],
): boolean {
  for (const scope of combinedScopes([...tighter, ...looser])) {
    const chain = fallbackChain(scope);
    const t = combinedRequirements(tighter, scope, chain);
    if (t.some((r) => r.kind === "reject")) continue;
    const have = new Set(t.map(requirementKey));
    for (const r of combinedRequirements(looser, scope, chain)) {
      if (r.kind !== "accept" && !have.has(requirementKey(r))) return false;
    }
  }
  return true;
}

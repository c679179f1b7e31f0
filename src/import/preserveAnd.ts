// Keeping policy-controller's AND across imported policies (pure).
//
// policy-controller admits an image only if EVERY ClusterImagePolicy whose globs match it passes.
// In one layer of this project the most specific matching scope decides alone (containers-image's
// rule): translated naively, `ghcr.io/org` (policy B) would replace `ghcr.io` (policy A) for
// ghcr.io/org/app, dropping A's requirement. So every policy also gets every more specific scope
// of the other imported policies that lies under one of its own scopes: then the scope that
// decides an image carries exactly the policies whose scopes contain the image.
//
// Why exactly: let d be the scope that decides image I (the first imported scope in I's fallback
// chain). A policy P sits on d iff one of P's own scopes s is in d's fallback chain; d's chain is a
// suffix of I's chain, so then s contains I. Conversely if P's scope s contains I, s is in I's
// chain at or after d, hence in d's chain. test/unit/import/preserveAnd.test.ts checks this
// against the compiler on nested, sibling, wildcard and `*` scopes.

import { fallbackChain, type Scope } from "../compiler/scopes.ts";

export interface ScopedPolicy {
  readonly name: string;
  readonly scopes: readonly Scope[];
}

export interface AddedScope {
  readonly scope: Scope;
  /** The policies whose own scope it is. */
  readonly from: readonly string[];
}

export interface PreservedPolicy {
  readonly name: string;
  /** Own scopes and added ones, sorted. */
  readonly scopes: readonly Scope[];
  readonly added: readonly AddedScope[];
}

export function preserveAnd(policies: readonly ScopedPolicy[]): PreservedPolicy[] {
  const owners = new Map<Scope, string[]>();
  for (const p of policies) {
    for (const s of p.scopes) owners.set(s, [...(owners.get(s) ?? []), p.name]);
  }
  const all = [...owners.keys()].sort();
  return policies.map((p) => {
    const own = new Set(p.scopes);
    const added: AddedScope[] = [];
    for (const t of all) {
      if (own.has(t)) continue;
      if (fallbackChain(t).some((s) => own.has(s))) {
        added.push({ scope: t, from: [...new Set(owners.get(t) ?? [])].sort() });
      }
    }
    return {
      name: p.name,
      scopes: [...own, ...added.map((a) => a.scope)].sort(),
      added,
    };
  });
}

// Stage two of the compiler (pure): the validated form of every policy object in (stage one,
// validate.ts), the rules that judge policies together applied, the layers out (stage three,
// combine.ts, renders them into policy.json documents). The CLI (compileAll: nothing published
// yet) and the controller (plan.ts: a refused object keeps the form published before) both call
// this module, so each rule has one implementation:
// - grouping: the cluster layer holds every ClusterImagePolicy, a namespace layer the
//   ImagePolicies of its namespace (groupByLayer, layersOf);
// - an ImagePolicy's GPG lookaside (it goes into the node-wide registries.d file): never a path
//   on the node, never where a ClusterImagePolicy's GPG signatures for the same images would then
//   be looked up, and, where the caller has an allow-list (the controller's
//   --namespace-lookaside-prefix), only under one of its prefixes;
// - a scope that would need two lookasides: when a ClusterImagePolicy is involved, every
//   namespace policy involved is refused, never the cluster one (cluster policies win); otherwise
//   those bringing something new yield and a published form stays.
// What depends on the install or the running cluster (Secrets only from the operator namespace,
// quotas, lock-out of protected images) is the controller's alone: see plan.ts.

import { refKey, type ObjectRef } from "../api/types.ts";
import { canonicalJson } from "../canonicalJson.ts";
import { decide, indexLayer, type ScopeIndex } from "./combine.ts";
import type { Reason } from "./diagnostics.ts";
import { makeLayer, type Layer, type LayerPolicy } from "./layer.ts";
import { registriesD } from "./registriesD.ts";

/** A diagnostic about one candidate (its object is the candidate's). */
export interface Refusal<R extends string = Reason> {
  readonly field: string;
  readonly reason: R;
  readonly message: string;
}

/** One policy object on its way into a layer. */
export interface Candidate<R extends string = Reason> {
  readonly ref: ObjectRef;
  /** This generation's validated form; undefined when stage one refused it. */
  readonly current: LayerPolicy | undefined;
  /** The form published now (the controller's memory); undefined in the CLI. */
  readonly previous: LayerPolicy | undefined;
  /** What goes into the layer: current, previous, or nothing. */
  chosen: LayerPolicy | undefined;
  readonly refusals: Refusal<R>[];
}

/** Items split by layer: the cluster layer's, then each namespace's (sorted by namespace). */
export function groupByLayer<T>(
  items: Iterable<T>,
  namespaceOf: (item: T) => string | undefined,
): { cluster: T[]; namespaces: Map<string, T[]> } {
  const cluster: T[] = [];
  const byNamespace = new Map<string, T[]>();
  for (const item of items) {
    const ns = namespaceOf(item);
    if (ns === undefined) {
      cluster.push(item);
      continue;
    }
    const list = byNamespace.get(ns);
    if (list === undefined) byNamespace.set(ns, [item]);
    else list.push(item);
  }
  const namespaces = new Map<string, T[]>();
  for (const ns of [...byNamespace.keys()].sort()) namespaces.set(ns, byNamespace.get(ns) ?? []);
  return { cluster, namespaces };
}

/** The layers of `forms` (each a policy's form and the ref it is known by): the cluster layer,
 * and one layer per namespace that has at least one form (sorted by namespace). */
export function makeLayers(
  forms: Iterable<{ readonly ref: ObjectRef; readonly policy: LayerPolicy }>,
): {
  cluster: Layer;
  namespaces: Map<string, Layer>;
} {
  const grouped = groupByLayer(forms, (f) => f.ref.namespace);
  const namespaces = new Map<string, Layer>();
  for (const [ns, list] of grouped.namespaces) {
    namespaces.set(
      ns,
      makeLayer(
        ns,
        list.map((f) => f.policy),
      ),
    );
  }
  return {
    cluster: makeLayer(
      undefined,
      grouped.cluster.map((f) => f.policy),
    ),
    namespaces,
  };
}

/** The layers of the candidates' chosen forms (makeLayers). */
export function layersOf(candidates: Iterable<Candidate<string>>): {
  cluster: Layer;
  namespaces: Map<string, Layer>;
} {
  return makeLayers(
    [...candidates].flatMap((c) =>
      c.chosen === undefined ? [] : [{ ref: c.ref, policy: c.chosen }],
    ),
  );
}

function sameContent(a: LayerPolicy | undefined, b: LayerPolicy | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    canonicalJson({ s: a.scopes, r: a.requirement }) ===
    canonicalJson({ s: b.scopes, r: b.requirement })
  );
}

/** Accepted now and not yet published: what a refusal can still take back. */
export function isFresh(c: Candidate<string>): boolean {
  return c.current !== undefined && !sameContent(c.current, c.previous) && c.chosen === c.current;
}

/** Refuses `c`'s chosen form; `fallback` (its published form, or nothing) goes in instead. */
export function refuse<R extends string>(
  c: Candidate<R>,
  refusal: Refusal<R>,
  fallback: LayerPolicy | undefined,
): void {
  c.refusals.push(refusal);
  c.chosen = fallback;
}

export interface SetRules {
  /** URL prefixes an ImagePolicy's GPG lookaside may start with (the controller's
   * --namespace-lookaside-prefix); undefined: no allow-list is checked (the CLI, which has no
   * install settings). */
  readonly namespaceLookasidePrefixes?: readonly string[];
}

/** Applies the rules that judge policies together (above) to `candidates`, in key order;
 * returns problems no refusal can fix (a conflict among published cluster forms). */
export function applySetRules<R extends string>(
  candidates: readonly Candidate<R | Reason>[],
  rules: SetRules,
): string[] {
  const warnings: string[] = [];
  const sorted = [...candidates].sort((a, b) => compareKeys(refKey(a.ref), refKey(b.ref)));
  refuseNamespaceLookasides(sorted, rules);
  refuseLookasideConflicts(sorted, warnings);
  return warnings;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function indexes(candidates: readonly Candidate<string>[]): {
  cluster: ScopeIndex;
  namespaces: ScopeIndex[];
} {
  const { cluster, namespaces } = layersOf(candidates);
  return { cluster: indexLayer(cluster), namespaces: [...namespaces.values()].map(indexLayer) };
}

export const LOOKASIDE_FIELD = "spec.policy.rootOfTrust.gpgKey.lookaside";

function lookasideOf(p: LayerPolicy | undefined): string | undefined {
  return p?.requirement.kind === "gpg" ? p.requirement.lookaside : undefined;
}

/** What an ImagePolicy's lookaside may be (see the top of this file). A published form that
 * breaks the rule (the allow-list changed) leaves the layer too. */
function refuseNamespaceLookasides<R extends string>(
  candidates: readonly Candidate<R | Reason>[],
  rules: SetRules,
): void {
  // Most sets have no ImagePolicy lookaside at all: nothing to judge, no index to build.
  if (
    !candidates.some((c) => c.ref.namespace !== undefined && lookasideOf(c.chosen) !== undefined)
  ) {
    return;
  }
  const cluster = indexes(candidates.filter((c) => c.ref.namespace === undefined)).cluster;
  const prefixes = rules.namespaceLookasidePrefixes;
  const problem = (p: LayerPolicy | undefined): string | undefined => {
    const url = lookasideOf(p);
    if (p === undefined || url === undefined) return undefined;
    if (url.toLowerCase().startsWith("file:")) {
      return "an ImagePolicy may not read signatures from a path on the node (file://)";
    }
    if (prefixes !== undefined && !prefixes.some((prefix) => url.startsWith(prefix))) {
      return prefixes.length === 0
        ? "ImagePolicy lookasides are not allowed in this cluster (the cluster admin allows URL " +
            "prefixes with the controller flag --namespace-lookaside-prefix)"
        : `the lookaside must start with one of ${prefixes.join(", ")} ` +
            "(the controller's --namespace-lookaside-prefix)";
    }
    for (const scope of p.scopes) {
      const d = decide(cluster, scope);
      if (d?.entry.requirements.some((r) => r.kind === "gpg") === true) {
        return (
          `scope ${JSON.stringify(scope)} is decided in the cluster layer by a GPG policy ` +
          `(${d.entry.sources.map((s) => s.name).join(", ")}) whose signatures would then be ` +
          "looked up at this namespace's lookaside"
        );
      }
    }
    return undefined;
  };
  for (const c of candidates) {
    if (c.ref.namespace === undefined) continue;
    const message = problem(c.chosen);
    if (message === undefined) continue;
    const fallback =
      c.chosen === c.current && problem(c.previous) === undefined ? c.previous : undefined;
    refuse(c, { field: LOOKASIDE_FIELD, reason: "LookasideNotAllowed", message }, fallback);
  }
}

/** A scope that would need two lookaside URLs (registries.d is node-wide) refuses the objects
 * involved: when a cluster policy is involved, every namespace policy involved, new or published
 * (cluster policies win); otherwise only those bringing something new (their published form
 * stays). A conflict among published forms alone (possible after a target change) is reported on
 * every object involved. */
function refuseLookasideConflicts<R extends string>(
  candidates: readonly Candidate<R | Reason>[],
  warnings: string[],
): void {
  const byKey = new Map(candidates.map((c) => [refKey(c.ref), c]));
  for (let round = 0; round <= 2 * candidates.length; round++) {
    const { cluster, namespaces } = indexes(candidates);
    const conflicts = registriesD(cluster, namespaces).conflicts;
    if (conflicts.length === 0) return;
    let refused = false;
    for (const conflict of conflicts) {
      const involved = conflict.sources
        .map((s) => byKey.get(refKey(s)))
        .filter((c): c is Candidate<R | Reason> => c !== undefined && c.chosen !== undefined);
      const message = `scope ${JSON.stringify(conflict.scope)} would need two lookaside URLs: ${conflict.urls.join(", ")}`;
      const namespaced = involved.filter((c) => c.ref.namespace !== undefined);
      const clusterWins = namespaced.length > 0 && namespaced.length < involved.length;
      const losers = clusterWins ? namespaced : involved.filter(isFresh);
      const refusal: Refusal = {
        field: LOOKASIDE_FIELD,
        reason: "ConflictingLookaside",
        message: clusterWins ? `${message}; the ClusterImagePolicy's lookaside wins` : message,
      };
      if (losers.length > 0) {
        for (const c of losers) {
          // The published form next; if that conflicts too, the next round drops it.
          const fallback = c.chosen === c.current ? c.previous : undefined;
          if (c.refusals.some((r) => r.reason === "ConflictingLookaside")) c.chosen = fallback;
          else refuse(c, refusal, fallback);
        }
        refused = true;
      } else {
        for (const c of involved) {
          if (!c.refusals.some((r) => r.reason === "ConflictingLookaside"))
            c.refusals.push(refusal);
        }
        warnings.push(`published policies conflict: ${message}`);
      }
    }
    if (!refused) return;
  }
}

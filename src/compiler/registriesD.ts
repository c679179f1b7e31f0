// The registries.d document (containers-registries.d(5)) that goes with the policy files.
//
// It is one file per node, shared by cluster.json and every <namespace>.json, so it is computed
// over all documents: a scope gets `use-sigstore-attachments: true` when the requirements deciding
// it in some document need sigstore signatures (containers/image does not even fetch them
// otherwise), and a `lookaside` when they include a GPG policy that names one. Every scope that needs
// something gets its own entry with every field it needs, so the result does not depend on
// whether containers/image falls back to parent entries field by field. The "" scope (`*`) maps
// to `default-docker`.

import { createRequire } from "node:module";
import type { ObjectRef } from "../api/types.ts";
import { decideOnChain, type ScopeEntry, type ScopeIndex } from "./combine.ts";
import { needsSigstoreAttachments } from "./requirements.ts";
import { compareScopes, fallbackChain, type Scope } from "./scopes.ts";

export interface RegistriesDEntry {
  readonly "use-sigstore-attachments"?: true;
  readonly lookaside?: string;
}

export interface RegistriesDDocument {
  readonly "default-docker"?: RegistriesDEntry;
  readonly docker?: Readonly<Record<string, RegistriesDEntry>>;
}

export interface LookasideConflict {
  readonly scope: Scope;
  readonly urls: readonly string[];
  readonly sources: readonly ObjectRef[];
}

export interface RegistriesDResult {
  readonly document: RegistriesDDocument;
  readonly text: string;
  readonly conflicts: readonly LookasideConflict[];
}

interface Needs {
  readonly reject: boolean;
  readonly sigstore: boolean;
  readonly lookasides: readonly string[];
  readonly sources: readonly ObjectRef[];
}

const NOTHING: Needs = { reject: false, sigstore: false, lookasides: [], sources: [] };

function needsOf(entry: ScopeEntry | undefined): Needs {
  if (entry === undefined) return NOTHING;
  const reqs = entry.requirements;
  return {
    reject: reqs.some((r) => r.kind === "reject"),
    sigstore: reqs.some(needsSigstoreAttachments),
    lookasides: reqs.flatMap((r) =>
      r.kind === "gpg" && r.lookaside !== undefined ? [r.lookaside] : [],
    ),
    sources: entry.sources,
  };
}

/** `cluster` is the cluster layer; `namespaces` every namespace layer. A document is cluster.json
 * or one <namespace>.json; a scope needs a field when the requirements deciding it in some
 * document (cluster decision AND namespace decision, where reject absorbs the rest) do. */
export function registriesD(
  cluster: ScopeIndex,
  namespaces: readonly ScopeIndex[],
): RegistriesDResult {
  const scopes = new Set<Scope>(cluster.scopes.keys());
  for (const l of namespaces) for (const s of l.scopes.keys()) scopes.add(s);
  const docker: Record<string, RegistriesDEntry> = {};
  let defaultDocker: RegistriesDEntry | undefined;
  const conflicts: LookasideConflict[] = [];
  // Which namespaces hold each scope: a scope's deciding namespaces then come from its fallback
  // chain alone, instead of a decide() per namespace per scope.
  const holders = new Map<Scope, number[]>();
  namespaces.forEach((l, i) => {
    for (const s of l.scopes.keys()) {
      const list = holders.get(s);
      if (list === undefined) holders.set(s, [i]);
      else list.push(i);
    }
  });
  // Each entry's needs are computed once (an entry decides many scopes).
  const needs = new Map<ScopeEntry, Needs>();
  const needsOfEntry = (entry: ScopeEntry | undefined): Needs => {
    if (entry === undefined) return NOTHING;
    let n = needs.get(entry);
    if (n === undefined) {
      n = needsOf(entry);
      needs.set(entry, n);
    }
    return n;
  };
  for (const scope of [...scopes].sort(compareScopes)) {
    // Every document's decision for this scope, minus those where reject absorbs the rest.
    const chain = fallbackChain(scope);
    const c = needsOfEntry(decideOnChain(cluster, chain)?.entry);
    const decidedBy = new Map<number, Scope>();
    for (const candidate of chain) {
      for (const i of holders.get(candidate) ?? []) {
        if (!decidedBy.has(i)) decidedBy.set(i, candidate);
      }
    }
    const docs: (readonly Needs[])[] = [[c]];
    for (const i of [...decidedBy.keys()].sort((a, b) => a - b)) {
      const scopeInNs = decidedBy.get(i);
      const ns = namespaces[i];
      if (scopeInNs !== undefined && ns !== undefined) {
        docs.push([c, needsOfEntry(ns.scopes.get(scopeInNs))]);
      }
    }
    const live = docs.filter((d) => !d.some((n) => n.reject)).flat();
    const sigstore = live.some((n) => n.sigstore);
    const lookasides = new Map<string, ObjectRef[]>();
    for (const n of live) {
      for (const url of n.lookasides) {
        lookasides.set(url, [...(lookasides.get(url) ?? []), ...n.sources]);
      }
    }
    if (lookasides.size > 1) {
      conflicts.push({
        scope,
        urls: [...lookasides.keys()].sort(),
        sources: [...lookasides.values()].flat(),
      });
    }
    const [lookaside] = [...lookasides.keys()].sort();
    if (!sigstore && lookaside === undefined) continue;
    const entry: RegistriesDEntry = {
      ...(sigstore ? { "use-sigstore-attachments": true as const } : {}),
      ...(lookaside === undefined ? {} : { lookaside }),
    };
    if (scope === "") defaultDocker = entry;
    else docker[scope] = entry;
  }
  const document: RegistriesDDocument = {
    ...(defaultDocker === undefined ? {} : { "default-docker": defaultDocker }),
    ...(Object.keys(docker).length === 0 ? {} : { docker }),
  };
  // The text is made when asked for: the agent, which writes its own registries.d file, never
  // loads the yaml package for it (docs/scale.md).
  return {
    document,
    get text(): string {
      // A module, not input data: the cast names its type.
      const { stringify } = createRequire(import.meta.url)("yaml") as typeof import("yaml");
      return (
        "# Written by imagepolicy-operator; do not edit. Scopes that need sigstore attachments or a\n" +
        "# GPG lookaside for the policies in cluster.json and policies/<namespace>.json.\n" +
        stringify(document, { sortMapEntries: true, lineWidth: 0 })
      );
    },
    conflicts,
  };
}

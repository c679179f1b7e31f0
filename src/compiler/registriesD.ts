// The registries.d document (containers-registries.d(5)) that goes with the policy files.
//
// It is one file per node, shared by cluster.json and every <namespace>.json, so it is computed
// over all layers: a scope gets `use-sigstore-attachments: true` when the requirement deciding it
// in any layer needs sigstore signatures (containers/image does not even fetch them otherwise),
// and a `lookaside` when it is decided by a GPG policy that names one. Every scope that needs
// something gets its own entry with every field it needs, so the result does not depend on
// whether containers/image falls back to parent entries field by field. The "" scope (`*`) maps
// to `default-docker`.

import { stringify } from "yaml";
import type { ObjectRef } from "../api/types.ts";
import { decide, type ScopeIndex } from "./combine.ts";
import { needsSigstoreAttachments } from "./requirements.ts";
import { compareScopes, type Scope } from "./scopes.ts";

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

export function registriesD(layers: readonly ScopeIndex[]): RegistriesDResult {
  const scopes = new Set<Scope>();
  for (const l of layers) for (const s of l.scopes.keys()) scopes.add(s);
  const docker: Record<string, RegistriesDEntry> = {};
  let defaultDocker: RegistriesDEntry | undefined;
  const conflicts: LookasideConflict[] = [];
  for (const scope of [...scopes].sort(compareScopes)) {
    let sigstore = false;
    const lookasides = new Map<string, ObjectRef[]>();
    for (const l of layers) {
      const d = decide(l, scope);
      if (d === undefined) continue;
      for (const r of d.entry.requirements) {
        if (needsSigstoreAttachments(r)) sigstore = true;
        if (r.kind === "gpg" && r.lookaside !== undefined) {
          lookasides.set(r.lookaside, [...(lookasides.get(r.lookaside) ?? []), ...d.entry.sources]);
        }
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
  const text =
    "# Written by imagepolicy-operator; do not edit. Scopes that need sigstore attachments or a\n" +
    "# GPG lookaside for the policies in cluster.json and policies/<namespace>.json.\n" +
    stringify(document, { sortMapEntries: true, lineWidth: 0 });
  return { document, text, conflicts };
}

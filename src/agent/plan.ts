// What to write, in which order, to move a node's files from what they hold to what the layers
// say (pure). The executor (apply.ts) runs the steps one by one and stops at the first failure;
// every step is idempotent, so a failed plan is simply recomputed and run again.
//
// Tighten-only at every instant (docs/design.md rule 5): a namespace file must never allow what the
// cluster.json of that moment refuses. With L the cluster layers cluster.json may hold (manifest)
// and C the new cluster layer, the order is:
//   1. registries.d: the union of the entries on disk and the new ones (before any policy that
//      needs them);
//   2. delete the namespace files whose layer is gone (CRI-O then falls back to cluster.json);
//   3. manifest: L + C as the possible cluster layers, new namespace files listed;
//   4. if the cluster layer changes, every existing namespace file := AND(L, C, N): tighter than
//      the cluster.json on disk and than the one to come;
//   5. cluster.json := C;
//   6. manifest: C alone;
//   7. every namespace file := AND(C, N) (new files only now, after cluster.json is current);
//   8. registries.d: the new entries; 9. manifest with the final revisions.
// Unchanged bytes are never rewritten (the executor compares before writing).

import { combine, indexLayer, type ScopeIndex } from "../compiler/combine.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import type { Layer } from "../compiler/layer.ts";
import type { RegistriesDDocument } from "../compiler/registriesD.ts";
import { registriesD } from "../compiler/registriesD.ts";
import { parsePolicyJson, PolicyParseError } from "../policyjson/parse.ts";
import { isDns1123Label } from "./hostPaths.ts";
import type { Manifest } from "./manifest.ts";
import type { RegistryMirrors } from "./registriesConf.ts";
import {
  nodeRegistriesD,
  unionRegistriesD,
  type OmittedKey,
  type OtherKeys,
} from "./registriesDFile.ts";

/** A parsed layer with its text and revision. */
export interface LayerInput {
  readonly text: string;
  readonly revision: string;
  readonly layer: Layer;
}

export type NamespaceInput =
  | { readonly ok: true; readonly input: LayerInput }
  /** The ConfigMap exists but its layer cannot be used; `lastGood` is the last one that could,
   * if this process saw one. */
  | { readonly ok: false; readonly reason: string; readonly lastGood?: LayerInput };

export interface Desired {
  readonly cluster: LayerInput;
  readonly namespaces: ReadonlyMap<string, NamespaceInput>;
}

export interface Current {
  readonly manifest: Manifest;
  /** Our registries.d document as on disk ({} when absent or unreadable). */
  readonly registriesD: RegistriesDDocument;
}

export interface NodeEnv {
  readonly target: CrioVersion;
  readonly registries: readonly RegistryMirrors[];
  readonly otherKeys: OtherKeys;
}

export type FileRef =
  | { readonly kind: "cluster" }
  | { readonly kind: "registriesD" }
  | { readonly kind: "namespace"; readonly namespace: string };

export type Step =
  | {
      readonly kind: "write";
      readonly file: FileRef;
      readonly text: string;
      readonly revision: string;
    }
  | { readonly kind: "delete"; readonly namespace: string }
  | { readonly kind: "manifest"; readonly manifest: Manifest };

export interface Plan {
  readonly steps: readonly Step[];
  /** file name ("cluster.json", "<ns>.json") -> revision, once every step has run. */
  readonly appliedRevisions: Readonly<Record<string, string>>;
  /** Expected problems (a namespace layer this node cannot render, ...), reported in status. */
  readonly problems: readonly string[];
  readonly omittedKeys: readonly OmittedKey[];
}

export type PlanResult = { ok: true; plan: Plan } | { ok: false; problems: string[] };

export class PlanInvariantError extends Error {
  override readonly name = "PlanInvariantError";
}

/** The rejection every namespace file can fall back to: AND with it rejects every image. */
const REJECT_ALL: ScopeIndex = indexLayer({
  namespace: "imagepolicy-reject-all",
  policies: [{ name: "reject-all", scopes: [""], requirement: { kind: "reject" } }],
});

function checked(text: string, what: string): string {
  try {
    parsePolicyJson(text);
  } catch (cause) {
    const detail = cause instanceof PolicyParseError ? cause.message : String(cause);
    throw new PlanInvariantError(`compiled ${what} fails the strict parser: ${detail}`, { cause });
  }
  return text;
}

type Rendered = { ok: true; text: string } | { ok: false; problems: string[] };

function render(layers: readonly ScopeIndex[], target: CrioVersion, what: string): Rendered {
  const r = combine(layers, target);
  return r.ok ? { ok: true, text: checked(r.text, what) } : r;
}

/** What a namespace file is built from: its layer, or (when it cannot be used) a rejection. */
interface NamespaceSource {
  readonly index: ScopeIndex;
  readonly revision: string;
}

function parseLayers(
  texts: readonly string[],
  parse: (t: string) => Layer,
): ScopeIndex[] | undefined {
  try {
    return texts.map((t) => indexLayer(parse(t)));
  } catch {
    return undefined;
  }
}

export function plan(
  current: Current,
  desired: Desired,
  env: NodeEnv,
  parseLayer: (text: string) => Layer,
): PlanResult {
  const { target } = env;
  const c = desired.cluster;
  const cIndex = indexLayer(c.layer);
  const clusterDoc = render([cIndex], target, "cluster.json");
  if (!clusterDoc.ok) {
    return {
      ok: false,
      problems: clusterDoc.problems.map((p) => `cluster layer ${c.revision}: ${p}`),
    };
  }
  const m = current.manifest;
  // Layers cluster.json may hold now; unknown (unreadable manifest) counts as "no known layer".
  const old = parseLayers(m.clusterLayers, parseLayer);
  const clusterChanged = !(m.clusterLayers.length === 1 && m.clusterLayers[0] === c.text);
  const problems: string[] = [];

  // Which namespaces get a file, from what.
  const owned = new Set(Object.keys(m.namespaces));
  const finals = new Map<string, { text: string; revision: string; source: NamespaceSource }>();
  const keep = new Set<string>();
  for (const [ns, input] of [...desired.namespaces].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!isDns1123Label(ns)) {
      problems.push(`namespace ${JSON.stringify(ns)} is not a DNS-1123 label: no file written`);
      continue;
    }
    const tryLayer = (li: LayerInput): Rendered & { index: ScopeIndex } => {
      const index = indexLayer(li.layer);
      return { ...render([cIndex, index], target, `${ns}.json`), index };
    };
    let chosen: { text: string; revision: string; source: NamespaceSource } | undefined;
    if (input.ok) {
      const r = tryLayer(input.input);
      if (r.ok) {
        const revision = `${c.revision}.${input.input.revision}`;
        chosen = { text: r.text, revision, source: { index: r.index, revision } };
      } else {
        problems.push(`namespace ${ns} layer ${input.input.revision}: ${r.problems.join("; ")}`);
      }
    } else {
      problems.push(`namespace ${ns}: ${input.reason}`);
    }
    if (chosen === undefined && !input.ok && input.lastGood !== undefined) {
      const r = tryLayer(input.lastGood);
      if (r.ok) {
        const revision = `${c.revision}.${input.lastGood.revision}`;
        chosen = { text: r.text, revision, source: { index: r.index, revision } };
        problems.push(`namespace ${ns}: keeping its last usable layer ${input.lastGood.revision}`);
      }
    }
    if (chosen === undefined && owned.has(ns)) {
      if (!clusterChanged) {
        // The file on disk was built on this very cluster layer: still tighter than cluster.json.
        keep.add(ns);
        problems.push(`namespace ${ns}: keeping its file as it is`);
        continue;
      }
      // Neither the new layer nor a known good one: fail closed rather than loosen.
      const r = render([cIndex, REJECT_ALL], target, `${ns}.json`);
      if (!r.ok) throw new PlanInvariantError(`reject-all for ${ns}: ${r.problems.join("; ")}`);
      const revision = `${c.revision}.unrendered`;
      chosen = { text: r.text, revision, source: { index: REJECT_ALL, revision } };
      problems.push(`namespace ${ns}: no usable layer, its file rejects every image`);
    }
    if (chosen !== undefined) finals.set(ns, chosen);
  }
  const removed = [...owned].filter((ns) => !finals.has(ns) && !keep.has(ns)).sort();

  // registries.d: computed over every namespace file's layer, as the compiler does.
  const compiledReg = registriesD(
    cIndex,
    [...finals.values()].map((f) => f.source.index).filter((i) => i !== REJECT_ALL),
  );
  for (const conflict of compiledReg.conflicts) {
    problems.push(
      `scope ${JSON.stringify(conflict.scope)} needs two lookaside URLs: ${conflict.urls.join(", ")}`,
    );
  }
  const finalReg = nodeRegistriesD(compiledReg.document, env.registries, env.otherKeys);
  const unionReg = nodeRegistriesD(
    unionRegistriesD(current.registriesD, compiledReg.document),
    env.registries,
    env.otherKeys,
  );

  const steps: Step[] = [];
  const regRevision = c.revision;
  steps.push({
    kind: "write",
    file: { kind: "registriesD" },
    text: unionReg.text,
    revision: regRevision,
  });
  for (const ns of removed) steps.push({ kind: "delete", namespace: ns });

  const nsRevisions: Record<string, string> = {};
  for (const ns of keep) nsRevisions[ns] = m.namespaces[ns] ?? "";
  const pendingNamespaces: Record<string, string> = { ...nsRevisions };
  for (const ns of finals.keys()) pendingNamespaces[ns] = m.namespaces[ns] ?? "";
  const layersDuring = clusterChanged
    ? [...new Set([...m.clusterLayers, c.text])]
    : m.clusterLayers;
  steps.push({
    kind: "manifest",
    manifest: {
      ...m,
      clusterLayers: layersDuring,
      namespaces: sortedRecord(pendingNamespaces),
    },
  });

  if (clusterChanged) {
    for (const [ns, f] of finals) {
      if (!owned.has(ns)) continue; // new files wait for cluster.json
      // Without the old layers (unreadable manifest entry) only a rejection is surely tighter.
      const r =
        old === undefined || old.length === 0
          ? undefined
          : render([...old, cIndex, f.source.index], target, `${ns}.json (transition)`);
      const text = r?.ok === true ? r.text : mustRender([cIndex, REJECT_ALL], target, ns);
      steps.push({
        kind: "write",
        file: { kind: "namespace", namespace: ns },
        text,
        revision: `${m.clusterRevision}+${f.revision}`,
      });
    }
  }

  steps.push({
    kind: "write",
    file: { kind: "cluster" },
    text: clusterDoc.text,
    revision: c.revision,
  });
  const afterCluster: Manifest = {
    ...m,
    clusterLayers: [c.text],
    clusterRevision: c.revision,
    namespaces: sortedRecord(pendingNamespaces),
  };
  steps.push({ kind: "manifest", manifest: afterCluster });

  for (const [ns, f] of finals) {
    steps.push({
      kind: "write",
      file: { kind: "namespace", namespace: ns },
      text: f.text,
      revision: f.revision,
    });
    nsRevisions[ns] = f.revision;
  }
  steps.push({
    kind: "write",
    file: { kind: "registriesD" },
    text: finalReg.text,
    revision: regRevision,
  });
  steps.push({
    kind: "manifest",
    manifest: { ...afterCluster, namespaces: sortedRecord(nsRevisions) },
  });

  const appliedRevisions: Record<string, string> = { "cluster.json": c.revision };
  for (const [ns, rev] of Object.entries(sortedRecord(nsRevisions)))
    appliedRevisions[`${ns}.json`] = rev;
  return {
    ok: true,
    plan: { steps, appliedRevisions, problems, omittedKeys: finalReg.omitted },
  };
}

function mustRender(layers: readonly ScopeIndex[], target: CrioVersion, ns: string): string {
  const r = render(layers, target, `${ns}.json`);
  if (!r.ok) throw new PlanInvariantError(`reject-all for ${ns}: ${r.problems.join("; ")}`);
  return r.text;
}

function sortedRecord(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)));
}

// What to write, in which order, to move a node's files from what the manifest says they hold to
// what the layers say (pure). The plan names each file's content (which layers, ANDed) but holds
// no text: the executor (apply.ts) renders, writes and forgets one file at a time, so memory is
// bounded by a few files however many namespaces there are. Every step is idempotent; a failed
// plan is simply recomputed from the manifest and run again.
//
// Tighten-only at every instant (docs/design.md rule 5): a namespace file must never allow what the
// cluster.json of that moment refuses. With P the cluster layers cluster.json may hold (manifest)
// and C the new cluster layer:
//   1. registries.d: the union of the entries on disk and the new ones (before any policy that
//      needs them);
//   2. delete the namespace files whose layer is gone (CRI-O then falls back to cluster.json);
//   3. if the cluster layer changes: keep C's text beside the manifest, list C among the layers
//      cluster.json may hold (and mark the files about to change as being replaced), then
//      - C tighter than every layer of P: write each namespace file's final AND(C, N) now (it is
//        tighter than every layer of P too), then cluster.json := C;
//      - C looser than every layer of P: cluster.json := C first (every file is tighter than P,
//        hence than C), then the final files;
//      - otherwise (a key replaced: tighter here, looser there): every existing namespace file :=
//        AND(P..., C, N), tighter than both cluster.json's; cluster.json := C; then the finals;
//      (the manifest lists C alone as soon as cluster.json holds it);
//   4. namespace files that change for their own layer, and new files (only after cluster.json
//      is current), each listed in the manifest before it is first written;
//   5. registries.d: the new entries; the manifest with the final revisions; old layer texts go.
// A namespace change therefore writes one policy file (and the manifest); a restart with current
// files writes nothing; a cluster change writes each namespace file once, or twice when the new
// cluster layer is tighter somewhere and looser elsewhere. Given `only` (the namespaces whose
// layer moved since every file was last final), a namespace change also looks at its own
// namespace alone: no work over the other files before its file is written.

import type { RegistriesDDocument } from "../compiler/registriesD.ts";
import {
  CLUSTER_FILE,
  namespaceFileKey,
  namespaceFileRevision,
  reportedNamespaceRevision,
  UNRENDERED,
} from "../nodeStatus.ts";
import { isDns1123Label } from "./hostPaths.ts";
import type { LayerInput } from "./layers.ts";
import type { Manifest } from "./manifest.ts";
import { sameDocument } from "./registriesDFile.ts";

/** How the new cluster layer C relates to the layers P cluster.json may hold. */
export type ClusterRelation =
  /** Every layer of P is C: at most cluster.json itself is missing. */
  | "same"
  /** C allows no more than any layer of P. */
  | "tightens"
  /** C allows at least what every layer of P allows. */
  | "loosens"
  | "mixed"
  /** P is unknown (no manifest, or a layer text of P is lost): only a rejection is surely
   * tighter than cluster.json. */
  | "unknown";

export interface PlanInput {
  readonly manifest: Manifest;
  /** cluster.json is on disk (the shell checks it; the manifest may say otherwise). */
  readonly clusterFilePresent: boolean;
  /** The cluster layer revision to apply. */
  readonly cluster: string;
  readonly namespaces: ReadonlyMap<string, LayerInput>;
  /** Only read when the cluster layer changes. */
  readonly relation: ClusterRelation;
  /** When set, only these namespaces are looked at: the caller knows every other file is final
   * (NodeFiles: the last reconcile left every file final, and since then only these namespaces'
   * layer inputs moved, with the same cluster layer, node inputs and registries.d needs).
   * Ignored unless cluster.json holds the cluster layer: a cluster change looks at every file. */
  readonly only?: ReadonlySet<string>;
  /** The registries.d document on disk, and the one the layers and node need. */
  readonly registriesD: {
    readonly current: RegistriesDDocument;
    readonly union: RegistriesDDocument;
    readonly desired: RegistriesDDocument;
    /** What `desired` was computed from (recorded in the manifest). */
    readonly inputs: string;
  };
}

/** What a namespace file is made of, in order of preference: the first that renders is
 * written. */
export type Source =
  | { readonly kind: "layer"; readonly revision: string }
  /** Every image rejected (fail closed: neither the new layer nor a known good one renders). */
  | { readonly kind: "rejectAll" };

export type Step =
  /** The cluster layer's text, beside the manifest (before the manifest names it). */
  | { readonly kind: "layerFile"; readonly revision: string }
  /** Namespaces whose file is about to be replaced ("" in the manifest) or created. */
  | { readonly kind: "mark"; readonly namespaces: readonly string[] }
  /** Writes the manifest as the executor holds it, with these fields. */
  | {
      readonly kind: "checkpoint";
      readonly clusterLayers?: readonly string[];
      readonly registriesD?: string;
    }
  | { readonly kind: "registriesD"; readonly document: RegistriesDDocument }
  | { readonly kind: "cluster"; readonly revision: string }
  | {
      readonly kind: "namespace";
      readonly namespace: string;
      /** The cluster layers ANDed into the file (the last one is C). */
      readonly base: readonly string[];
      readonly sources: readonly Source[];
      /** false for a transition file (the manifest keeps "" for it). */
      readonly final: boolean;
    }
  | { readonly kind: "delete"; readonly namespace: string }
  /** Removes the layer files of every revision but these. */
  | { readonly kind: "pruneLayerFiles"; readonly keep: readonly string[] };

export interface Plan {
  readonly steps: readonly Step[];
  /** Expected problems (a namespace layer that cannot be used, ...), reported in status. */
  readonly problems: readonly string[];
  /** How many namespaces the plan looked at (all of them, or `only`). */
  readonly looked: number;
}

/** The revision a final namespace file records for `source` on cluster layer `cluster`. */
export function sourceRevision(cluster: string, source: Source): string {
  return namespaceFileRevision(cluster, source.kind === "layer" ? source.revision : UNRENDERED);
}

export function plan(input: PlanInput): Plan {
  const m = input.manifest;
  const C = input.cluster;
  const problems: string[] = [];
  const P = m.clusterLayers;
  const clusterCurrent = P.length === 1 && P[0] === C && input.clusterFilePresent;
  const only = clusterCurrent ? input.only : undefined;
  const owned = new Set(
    only === undefined
      ? Object.keys(m.namespaces)
      : [...only].filter((ns) => Object.hasOwn(m.namespaces, ns)),
  );
  const candidates: Iterable<[string, LayerInput]> =
    only === undefined ? input.namespaces : present(input.namespaces, only);

  // What each namespace file should be made of.
  const wanted = new Map<string, readonly Source[]>();
  const keep = new Set<string>();
  for (const [ns, want] of candidates) {
    if (!isDns1123Label(ns)) {
      problems.push(`namespace ${JSON.stringify(ns)} is not a DNS-1123 label: no file written`);
      continue;
    }
    const sources: Source[] = [];
    if (want.ok) sources.push({ kind: "layer", revision: want.layer.revision });
    else {
      problems.push(`namespace ${ns}: ${want.reason}`);
      if (want.lastGood !== undefined) {
        sources.push({ kind: "layer", revision: want.lastGood.revision });
        problems.push(`namespace ${ns}: keeping its last usable layer ${want.lastGood.revision}`);
      }
    }
    if (sources.length === 0) {
      if (!owned.has(ns)) continue;
      if (clusterCurrent) {
        // The file on disk was built on this very cluster layer: still tighter than cluster.json.
        keep.add(ns);
        problems.push(`namespace ${ns}: keeping its file as it is`);
        continue;
      }
      problems.push(`namespace ${ns}: no usable layer, its file rejects every image`);
    }
    // Fail closed rather than loosen, whatever cannot be rendered.
    sources.push({ kind: "rejectAll" });
    wanted.set(ns, sources);
  }
  const removed = [...owned].filter((ns) => !wanted.has(ns) && !keep.has(ns)).sort();
  // Files whose revision is not the final one: written below.
  const first = (ns: string): Source => wanted.get(ns)?.[0] ?? { kind: "rejectAll" };
  const stale = [...wanted.keys()].filter(
    (ns) => m.namespaces[ns] !== sourceRevision(C, first(ns)),
  );
  const existing = stale.filter((ns) => owned.has(ns));
  const created = stale.filter((ns) => !owned.has(ns));

  const steps: Step[] = [];
  const reg = input.registriesD;
  if (!sameDocument(reg.union, reg.current))
    steps.push({ kind: "registriesD", document: reg.union });
  for (const ns of removed) steps.push({ kind: "delete", namespace: ns });
  const final = (ns: string): Step => ({
    kind: "namespace",
    namespace: ns,
    base: [C],
    sources: wanted.get(ns) ?? [{ kind: "rejectAll" }],
    final: true,
  });

  let finalsLeft: string[] = stale;
  if (!clusterCurrent) {
    const relation = P.length > 0 && P.every((p) => p === C) ? "same" : input.relation;
    // Files rewritten before cluster.json is replaced are marked before the manifest lists C.
    const early = relation === "loosens" || relation === "same" ? [] : existing;
    steps.push({ kind: "layerFile", revision: C });
    steps.push({ kind: "mark", namespaces: [...early, ...created] });
    steps.push({ kind: "checkpoint", clusterLayers: [...new Set([...P, C])] });
    if (relation === "tightens") {
      for (const ns of existing) steps.push(final(ns));
      finalsLeft = created;
    } else if (relation === "mixed" || relation === "unknown") {
      for (const ns of existing) {
        const layers = (wanted.get(ns) ?? []).filter((s) => s.kind === "layer");
        steps.push({
          kind: "namespace",
          namespace: ns,
          base: relation === "unknown" ? [C] : [...P, C],
          sources: [...(relation === "unknown" ? [] : layers), { kind: "rejectAll" }],
          final: false,
        });
      }
    }
    steps.push({ kind: "cluster", revision: C });
    // cluster.json holds C: every file is tighter than it. Those rewritten next are marked.
    if (early.length === 0) steps.push({ kind: "mark", namespaces: existing });
    steps.push({ kind: "checkpoint", clusterLayers: [C] });
  } else {
    // A file listed final with its identity is replaced in place (manifest.ts): the others, new
    // files among them, are listed as being replaced first.
    const unmarked = stale.filter(
      (ns) => m.namespaces[ns] !== "" && !Object.hasOwn(m.identities, ns),
    );
    if (unmarked.length > 0) {
      steps.push({ kind: "mark", namespaces: unmarked });
      steps.push({ kind: "checkpoint" });
    }
  }
  for (const ns of finalsLeft) steps.push(final(ns));
  if (!sameDocument(reg.desired, reg.union)) {
    steps.push({ kind: "registriesD", document: reg.desired });
  }
  steps.push({ kind: "checkpoint", registriesD: reg.inputs });
  steps.push({ kind: "pruneLayerFiles", keep: [C] });
  return { steps, problems, looked: (only ?? input.namespaces).size };
}

/** The entries of `namespaces` named in `only`, in the map's order. */
function present(
  namespaces: ReadonlyMap<string, LayerInput>,
  only: ReadonlySet<string>,
): [string, LayerInput][] {
  const out: [string, LayerInput][] = [];
  namespaces.forEach((want, ns) => {
    if (only.has(ns)) out.push([ns, want]);
  });
  return out;
}

/** What a node reports once the manifest is `m` (with cluster.json present): a file being
 * replaced reports "", which no layer revision matches (docs/internals.md). */
export function appliedRevisions(m: Manifest): Record<string, string> {
  const out: Record<string, string> = {};
  const [only] = m.clusterLayers;
  const cluster = m.clusterLayers.length === 1 && only !== undefined ? only : "";
  out[CLUSTER_FILE] = cluster;
  for (const [ns, rev] of Object.entries(m.namespaces)) {
    out[namespaceFileKey(ns)] = reportedNamespaceRevision(rev, cluster);
  }
  return out;
}

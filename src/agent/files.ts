// The node's files as the agent holds them between reconciles: the manifest (what every file
// holds), the registries.d document, the texts of the cluster layers cluster.json may hold, what
// registries.d needs of every layer, and the renderings of the current cluster layer. reconcile()
// moves the files to a desired state through plan.ts and apply.ts; it reads no policy file back.

import { createHash } from "node:crypto";
import type { Logger } from "../kube/index.ts";
import { allowsNoMore, type ScopeIndex } from "../compiler/combine.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import { EMPTY_CLUSTER_LAYER, serializeLayer, type Layer } from "../compiler/layer.ts";
import { registriesD, type RegistriesDDocument } from "../compiler/registriesD.ts";
import { layerRevision } from "../layerConfigMap.ts";
import { parseNamespaceFileRevision, UNRENDERED } from "../nodeStatus.ts";
import { applyPlan, Renderings, type ApplyResult } from "./apply.ts";
import { layerFilePath, namespaceFilePath, type NodePaths } from "./hostPaths.ts";
import { keyFileName, KeyFiles, keyMaterial } from "./keyFiles.ts";
import type { LayerInput, LayerText } from "./layers.ts";
import { emptyManifest, parseManifest, type Manifest } from "./manifest.ts";
import type { NodeFs } from "./nodeFs.ts";
import type { NodeInputs } from "./nodeInputs.ts";
import { appliedRevisions, plan, type ClusterRelation, type Plan } from "./plan.ts";
import {
  computeRegistriesD,
  parseOwnRegistriesD,
  registriesDText,
  type OmittedKey,
} from "./registriesDFile.ts";

export const EMPTY_LAYER: LayerText = (() => {
  const text = serializeLayer(EMPTY_CLUSTER_LAYER);
  return { text, revision: layerRevision(text) };
})();

export class NodeFilesError extends Error {
  override readonly name = "NodeFilesError";
}

export interface DesiredFiles {
  readonly cluster: LayerText;
  readonly namespaces: ReadonlyMap<string, LayerInput>;
  /** What registries.d needs of each layer (registriesIndex), by revision; missing: unknown. */
  readonly needs: (revision: string) => ScopeIndex | undefined;
  readonly inputs: NodeInputs;
  readonly target: CrioVersion;
  /** Layer texts the informer holds (current and last usable). */
  readonly text: (revision: string) => string | undefined;
  /** The key file names a layer's policies need (layerKeyNames), by revision; missing: unknown
   * (then the layer is parsed again to find them). */
  readonly keyNames?: (revision: string) => readonly string[] | undefined;
  /** Layers already parsed (by this reconcile's update), by revision: not parsed again. */
  readonly parsed?: (revision: string) => Layer | undefined;
}

export interface FilesOutcome {
  readonly result: ApplyResult;
  readonly plan: Plan;
  readonly omittedKeys: readonly OmittedKey[];
  readonly problems: readonly string[];
}

export class NodeFiles {
  readonly #paths: NodePaths;
  readonly #hostPolicyDir: string;
  readonly #fs: NodeFs;
  readonly #logger: Logger;
  #manifest: Manifest;
  #manifestText = "";
  #registriesD: RegistriesDDocument = {};
  /** Texts of the cluster layers cluster.json may hold (from their layer files). */
  readonly #clusterTexts = new Map<string, string>([[EMPTY_LAYER.revision, EMPTY_LAYER.text]]);
  #clusterFilePresent = false;
  #appliedMemo:
    | {
        readonly namespaces: Manifest["namespaces"];
        readonly clusterLayers: Manifest["clusterLayers"];
        readonly out: Readonly<Record<string, string>>;
      }
    | undefined;
  #renderings: Renderings | undefined;
  /** What registries.d needs of each layer, as a digest, by revision (#registriesFor). */
  #needsSignatures = new Map<string, string>();
  readonly #keys: KeyFiles;
  /** The cluster layer's key files were checked since this process started. */
  #keysChecked = false;
  /** The last key pruning ran to the end: every key file left was named by a listed file. */
  #keysPruned = false;
  /** The last registries.d computed, with what it was computed from: the node's own inputs (as
   * JSON), the document on disk, and each layer's needs signature (the cluster's first). */
  #registries: RegistriesFor | undefined;
  /** registriesD() of the layers, by what registries.d needs of each (#registriesFor): kept when
   * only the document on disk changed (the reconcile after one that wrote registries.d). */
  #compiled: { readonly key: string; readonly value: ReturnType<typeof registriesD> } | undefined;
  /** What the last reconcile was given, when it left every file final with no problem: the next
   * one then looks only at the namespaces whose layer input moved (#changedOnly). */
  #settled:
    | {
        readonly cluster: string;
        readonly namespaces: ReadonlyMap<string, LayerInput>;
        readonly node: string;
        readonly target: CrioVersion;
      }
    | undefined;

  constructor(paths: NodePaths, hostPolicyDir: string, fs: NodeFs, logger: Logger) {
    this.#paths = paths;
    this.#hostPolicyDir = hostPolicyDir;
    this.#fs = fs;
    this.#logger = logger;
    this.#manifest = emptyManifest(hostPolicyDir);
    this.#keys = new KeyFiles(fs, paths.keysDir, paths.hostKeysDir);
  }

  get manifest(): Manifest {
    return this.#manifest;
  }

  get clusterFilePresent(): boolean {
    return this.#clusterFilePresent;
  }

  /** What the node reports now: the same object while the manifest's records are the same. */
  applied(): Readonly<Record<string, string>> {
    if (!this.#clusterFilePresent) return {};
    const m = this.#manifest;
    const memo = this.#appliedMemo;
    if (memo?.namespaces === m.namespaces && memo.clusterLayers === m.clusterLayers)
      return memo.out;
    const out = appliedRevisions(m);
    this.#appliedMemo = { namespaces: m.namespaces, clusterLayers: m.clusterLayers, out };
    return out;
  }

  /** Reads the manifest, the registries.d file and the layer files, and checks that the files
   * the manifest lists exist (a missing one is rewritten). Never deletes on doubt: an unreadable
   * manifest owns nothing. */
  async load(): Promise<void> {
    const fs = this.#fs;
    const p = this.#paths;
    for (const dir of [dirname(p.clusterJson), p.policyDir, p.registriesD, p.keysDir]) {
      await fs.mkdirp(dir);
    }
    const text = await fs.readText(p.manifest);
    let m = emptyManifest(this.#hostPolicyDir);
    if (text !== undefined) {
      try {
        const parsed = parseManifest(text);
        m = parsed.manifest;
        for (const [rev, t] of parsed.inlineLayers) this.#clusterTexts.set(rev, t);
        this.#manifestText = parsed.inlineLayers.size > 0 ? "" : text;
      } catch (err) {
        this.#logger.error({ err }, "unreadable manifest: owning no namespace file");
      }
    }
    if (m.policyDir !== this.#hostPolicyDir) {
      this.#logger.warn(
        { recorded: m.policyDir, now: this.#hostPolicyDir },
        "policy directory changed: the files listed in the manifest are left alone",
      );
      m = { ...m, policyDir: this.#hostPolicyDir, namespaces: {}, identities: {} };
    }
    for (const rev of m.clusterLayers) {
      const t = await fs.readText(layerFilePath(p, rev));
      if (t !== undefined && layerRevision(t) === rev) this.#clusterTexts.set(rev, t);
    }
    // A listed file that is gone, or was replaced after the manifest recorded its identity (the
    // process stopped between the two), must be written again.
    const namespaces: Record<string, string> = {};
    const identities: Record<string, string> = {};
    const replaced: string[] = [];
    const present = new Set(await fs.list(p.policyDir));
    for (const [ns, rev] of Object.entries(m.namespaces)) {
      const recorded = m.identities[ns];
      const path = namespaceFilePath(p, ns);
      let now = rev;
      if (!present.has(`${ns}.json`) || path === undefined) now = "";
      else if (recorded !== undefined && recorded !== (await fs.identity(path))) {
        now = "";
        replaced.push(ns);
      }
      namespaces[ns] = now;
      if (now !== "" && recorded !== undefined) identities[ns] = recorded;
    }
    if (replaced.length > 0) {
      this.#logger.warn(
        { namespaces: replaced.slice(0, 20), count: replaced.length },
        "namespace files replaced after the manifest was written: rewriting them",
      );
    }
    this.#manifest = { ...m, namespaces, identities };
    this.#clusterFilePresent = await fs.exists(p.clusterJson);
    const own = await fs.readText(p.registriesDFile);
    this.#registriesD = (own === undefined ? undefined : parseOwnRegistriesD(own)) ?? {};
  }

  /** Without a usable cluster layer (before the first list, or none published), a missing
   * cluster.json is written: the layer it held (if its text is kept), else accept-all, CRI-O's
   * stock behaviour, which no namespace file can be looser than. */
  async ensureClusterFile(target: CrioVersion): Promise<ApplyResult | undefined> {
    if (this.#clusterFilePresent) return undefined;
    this.#settled = undefined;
    const [only] = this.#manifest.clusterLayers;
    const keep =
      this.#manifest.clusterLayers.length === 1 &&
      only !== undefined &&
      this.#clusterTexts.has(only);
    const revision = keep ? only : EMPTY_LAYER.revision;
    const P = this.#manifest.clusterLayers;
    const steps: Plan["steps"] = [
      { kind: "layerFile", revision },
      { kind: "checkpoint", clusterLayers: [...new Set([...P, revision])] },
      { kind: "cluster", revision },
      { kind: "checkpoint", clusterLayers: [revision] },
    ];
    const text = (rev: string): string | undefined => this.#clusterTexts.get(rev);
    return this.#apply({ steps, problems: [], looked: 0 }, this.#renderingsFor(target, text), text);
  }

  async reconcile(d: DesiredFiles, signal?: AbortSignal): Promise<FilesOutcome> {
    const C = d.cluster.revision;
    const text = (rev: string): string | undefined =>
      rev === C ? d.cluster.text : (this.#clusterTexts.get(rev) ?? d.text(rev));
    const renderings = this.#renderingsFor(d.target, text, d.parsed);
    const base = renderings.base([C]);
    if (base === undefined || base.problems.length > 0) {
      throw new NodeFilesError(
        `cluster layer ${C} cannot be rendered for this node: ${base === undefined ? "it does not parse" : base.problems.join("; ")}`,
      );
    }
    const problems: string[] = [];
    const node = nodeKey(d.inputs);
    const only = this.#changedOnly(d, node);
    this.#settled = undefined;
    let reg = this.#registries;
    if (only === undefined || reg === undefined) reg = this.#registriesFor(d, node, problems);
    else problems.push(...reg.problems);
    const p = plan({
      manifest: this.#manifest,
      clusterFilePresent: this.#clusterFilePresent,
      cluster: C,
      namespaces: d.namespaces,
      ...(only === undefined ? {} : { only }),
      relation: this.#relation(C, renderings),
      registriesD: {
        current: this.#registriesD,
        union: reg.union,
        desired: reg.document,
        inputs: reg.inputs,
      },
    });
    this.#clusterTexts.set(C, d.cluster.text);
    this.#keys.reset();
    const before = this.#manifest.namespaces;
    let result = await this.#apply(p, renderings, text, signal);
    if (result.error === undefined && !this.#keysChecked) {
      // Once per process: the keys every file names (a restart with current files writes no
      // policy file, so nothing else would check them).
      const fixed = await this.#keys.ensure(base.keyMaterial(), (f, data) =>
        this.#fs.write(f, data),
      );
      if (fixed.length > 0) {
        await this.#fs.sync();
        this.#logger.warn({ files: fixed }, "key files were missing or changed: rewritten");
        result = { ...result, written: [...result.written, ...fixed] };
      }
      this.#keysChecked = true;
    }
    if (result.error === undefined && reg.onDisk !== this.#registriesD) {
      // registries.d changed on disk: what the next reconcile compares with is computed now,
      // after the files, rather than at the start of the next change (the first namespace
      // change after a start paid it before its file, ~10 ms and the compilations of a loop over
      // every scope; docs/scale.md). Its problems are this reconcile's, already reported.
      this.#registriesFor(d, node, []);
    }
    if (
      result.error === undefined &&
      (result.written.length > 0 || result.removed.length > 0) &&
      (only === undefined ||
        !this.#keysPruned ||
        this.#dropsKeys(only, before, result.manifest.namespaces, renderings, d))
    ) {
      const gone = await this.#pruneKeys(result.manifest, renderings, d);
      if (gone.length > 0) result = { ...result, removed: [...result.removed, ...gone] };
    }
    renderings.retain([C]);
    const allProblems = [...problems, ...p.problems, ...result.problems];
    const m = this.#manifest;
    if (
      result.error === undefined &&
      allProblems.length === 0 &&
      this.#clusterFilePresent &&
      m.clusterLayers.length === 1 &&
      m.clusterLayers[0] === C
    ) {
      this.#settled = { cluster: C, namespaces: d.namespaces, node, target: d.target };
    }
    return { result, plan: p, omittedKeys: reg.omitted, problems: allProblems };
  }

  /** The namespaces whose layer input moved since the last reconcile, when that one left every
   * file final and nothing else moved: the same cluster layer, CRI-O version, node inputs,
   * namespaces (in order), registries.d on disk as computed, and what registries.d needs of each
   * namespace's layer. Undefined: look at every namespace. A LayerInput is the same object while
   * its ConfigMap does not move (LayerSources), so this compares references, not texts: a
   * namespace change costs no work over the other 499 namespaces before its file is written
   * (docs/scale.md). */
  #changedOnly(d: DesiredFiles, node: string): Set<string> | undefined {
    const s = this.#settled;
    const last = this.#registries;
    if (
      s === undefined ||
      last === undefined ||
      last.onDisk !== this.#registriesD ||
      s.cluster !== d.cluster.revision ||
      s.node !== node ||
      !sameVersion(s.target, d.target) ||
      s.namespaces.size !== d.namespaces.size
    ) {
      return undefined;
    }
    const changed = new Set<string>();
    const before = s.namespaces.keys();
    for (const ns of d.namespaces.keys()) {
      const name = before.next();
      const old = s.namespaces.get(ns);
      const want = d.namespaces.get(ns);
      if (name.done === true || name.value !== ns || old === undefined || want === undefined) {
        return undefined;
      }
      if (old === want) continue;
      const a = usableLayer(old);
      const b = usableLayer(want);
      if (a?.revision !== b?.revision) {
        if (a === undefined || b === undefined) return undefined;
        if (this.#signature(a.revision, d) !== this.#signature(b.revision, d)) return undefined;
        this.#needsSignatures.delete(a.revision);
      }
      changed.add(ns);
    }
    return changed;
  }

  /** What registries.d needs of a layer, as a digest, kept by revision (#registriesFor keeps
   * only those of the layers in use). */
  #signature(rev: string, d: DesiredFiles): string {
    let sig = this.#needsSignatures.get(rev);
    if (sig === undefined) {
      const n = d.needs(rev);
      sig = n === undefined ? `unknown ${rev}` : needsSignature(n);
      this.#needsSignatures.set(rev, sig);
    }
    return sig;
  }

  async #apply(
    p: Plan,
    renderings: Renderings,
    text: (rev: string) => string | undefined,
    signal?: AbortSignal,
  ): Promise<ApplyResult> {
    const result = await applyPlan(
      p,
      {
        manifest: this.#manifest,
        // "" when nothing is on disk yet (or a version 1 manifest is to be replaced).
        manifestText: this.#manifestText,
        registriesD: this.#registriesD,
      },
      {
        paths: this.#paths,
        fs: this.#fs,
        renderings,
        layerText: (rev) => this.#clusterTexts.get(rev) ?? text(rev),
        registriesDText,
        keys: this.#keys,
        ...(signal === undefined ? {} : { signal }),
      },
    );
    this.#manifest = result.manifest;
    this.#manifestText = result.manifestText;
    this.#registriesD = result.registriesD;
    if (result.written.includes(this.#paths.clusterJson)) this.#clusterFilePresent = true;
    // Texts no longer possibly in cluster.json are forgotten (the empty layer stays).
    for (const rev of [...this.#clusterTexts.keys()]) {
      if (rev !== EMPTY_LAYER.revision && !result.manifest.clusterLayers.includes(rev)) {
        this.#clusterTexts.delete(rev);
      }
    }
    return result;
  }

  /** Whether the files of `only` may have stopped naming a key file: one of them named a key
   * its replacement does not, or what either names is not known. When not, and the last pruning
   * ran to the end, no key file became unused and pruning is skipped: it looks at every listed
   * file (500 layers' key names and the keys directory) after the file of a namespace change,
   * in the time the other nodes' agents write theirs (docs/scale.md). */
  #dropsKeys(
    only: ReadonlySet<string>,
    before: Manifest["namespaces"],
    after: Manifest["namespaces"],
    renderings: Renderings,
    d: DesiredFiles,
  ): boolean {
    for (const ns of only) {
      const old = before[ns];
      if (old === undefined || old === after[ns]) continue;
      const was = this.#fileKeyNames(old, renderings, d);
      const now = after[ns] === undefined ? [] : this.#fileKeyNames(after[ns], renderings, d);
      if (was === undefined || now === undefined) return true;
      const kept = new Set(now);
      if (was.some((n) => !kept.has(n))) return true;
    }
    return false;
  }

  /** The key file names of the namespace layer in a file revision; [] for a file that fails
   * closed; undefined when not known (a file being replaced, a layer not known). */
  #fileKeyNames(
    value: string,
    renderings: Renderings,
    d: DesiredFiles,
  ): readonly string[] | undefined {
    const parts = parseNamespaceFileRevision(value);
    if (parts === undefined) return undefined;
    if (parts.namespace === UNRENDERED) return [];
    return d.keyNames?.(parts.namespace) ?? indexKeyNames(renderings.index(parts.namespace));
  }

  /** Removes the key files no file the manifest lists can name; nothing when that is not known
   * (a namespace file kept without its layer, a file being replaced). */
  async #pruneKeys(m: Manifest, renderings: Renderings, d: DesiredFiles): Promise<string[]> {
    this.#keysPruned = false;
    const keep = new Set<string>();
    for (const rev of m.clusterLayers) {
      const b = renderings.base([rev]);
      if (b === undefined) return [];
      for (const k of b.keyMaterial()) keep.add(this.#keys.name(k));
    }
    for (const value of Object.values(m.namespaces)) {
      const names = this.#fileKeyNames(value, renderings, d);
      if (names === undefined) return [];
      for (const n of names) keep.add(n);
    }
    try {
      const gone = await this.#keys.prune(keep);
      this.#keysPruned = true;
      return gone;
    } catch (err) {
      // An unreferenced key file left behind changes nothing: the next reconcile tries again.
      this.#logger.warn({ err }, "cannot remove unused key files");
      return [];
    }
  }

  #renderingsFor(
    target: CrioVersion,
    text: (rev: string) => string | undefined,
    parsed?: (rev: string) => Layer | undefined,
  ): Renderings {
    let r = this.#renderings;
    if (r === undefined || !sameVersion(r.target, target)) {
      r = new Renderings(target, text, this.#keys.ref);
      this.#renderings = r;
    }
    r.setText(text, parsed);
    return r;
  }

  /** How C relates to the layers cluster.json may hold; computed only when they differ. */
  #relation(C: string, renderings: Renderings): ClusterRelation {
    const P = this.#manifest.clusterLayers;
    if (P.length === 0) return "unknown";
    if (P.every((p) => p === C)) return "same";
    const c = renderings.index(C);
    const old = P.map((p) => renderings.index(p));
    if (c === undefined || old.some((o) => o === undefined)) return "unknown";
    const olds = old.filter((o): o is ScopeIndex => o !== undefined);
    if (olds.every((o) => allowsNoMore([c], [o]))) return "tightens";
    if (olds.every((o) => allowsNoMore([o], [c]))) return "loosens";
    return "mixed";
  }

  /** registries.d for the desired state, recomputed only when its inputs changed. */
  #registriesFor(d: DesiredFiles, node: string, problems: string[]): RegistriesFor {
    // What the desired document depends on (recorded in the manifest); the union with what is on
    // disk depends on that too. A layer counts by what registries.d needs of it, not by its
    // revision: a new key (the commonest change) leaves the document as it is, and computing it
    // over every layer costs ~0.2 s with the large fixture. Each reconcile compares what every
    // layer needs (a signature by revision, kept) with the last reconcile's, and hashes them only
    // when one moved: a namespace change otherwise cost ~5 ms here, building and hashing the
    // same 500 strings.
    // The signatures of the layers in use now, which replace the kept ones.
    const signatures = new Map<string, string>();
    const signature = (rev: string): string => {
      const sig = signatures.get(rev) ?? this.#signature(rev, d);
      signatures.set(rev, sig);
      return sig;
    };
    const names: string[] = [];
    const sigs: string[] = [signature(d.cluster.revision)];
    for (const [ns, want] of d.namespaces) {
      const layer = usableLayer(want);
      if (layer === undefined) continue;
      names.push(ns);
      sigs.push(signature(layer.revision));
    }
    this.#needsSignatures = signatures;
    const last = this.#registries;
    if (
      last !== undefined &&
      last.node === node &&
      last.onDisk === this.#registriesD &&
      sameStrings(last.names, names) &&
      sameStrings(last.sigs, sigs)
    ) {
      problems.push(...last.problems);
      return last;
    }
    const found: string[] = [];
    const parts: string[] = [sigs[0] ?? ""];
    for (let i = 0; i < names.length; i++) parts.push(`${names[i] ?? ""}=${sigs[i + 1] ?? ""}`);
    const inputs = createHash("sha256")
      .update(JSON.stringify([parts, d.inputs.registries, [...d.inputs.otherKeys]]))
      .digest("hex")
      .slice(0, 16);
    const needsKey = parts.join("\n");
    const cluster = d.needs(d.cluster.revision);
    if (cluster === undefined) {
      throw new NodeFilesError(
        `what registries.d needs of cluster layer ${d.cluster.revision} is not known`,
      );
    }
    const namespaces: ScopeIndex[] = [];
    for (const [ns, want] of d.namespaces) {
      const layer = usableLayer(want);
      if (layer === undefined) continue;
      const n = d.needs(layer.revision);
      if (n === undefined) {
        found.push(
          `namespace ${ns}: what registries.d needs of layer ${layer.revision} is not known`,
        );
      } else namespaces.push(n);
    }
    if (this.#compiled?.key !== needsKey) {
      this.#compiled = { key: needsKey, value: registriesD(cluster, namespaces) };
    }
    const reg = computeRegistriesD(
      this.#compiled.value,
      this.#registriesD,
      d.inputs.registries,
      d.inputs.otherKeys,
    );
    for (const c of reg.conflicts) {
      found.push(`scope ${JSON.stringify(c.scope)} needs two lookaside URLs: ${c.urls.join(", ")}`);
    }
    problems.push(...found);
    this.#registries = {
      ...reg,
      inputs,
      node,
      onDisk: this.#registriesD,
      names,
      sigs,
      problems: found,
    };
    return this.#registries;
  }
}

type RegistriesFor = ReturnType<typeof computeRegistriesD> & {
  readonly inputs: string;
  readonly node: string;
  /** The document on disk it was computed against. */
  readonly onDisk: RegistriesDDocument;
  readonly names: readonly string[];
  readonly sigs: readonly string[];
  /** What this computation reported (reported again while it is kept). */
  readonly problems: readonly string[];
};

/** The node's own inputs registries.d depends on, as a comparable string. */
function nodeKey(inputs: NodeInputs): string {
  return JSON.stringify([inputs.registries, [...inputs.otherKeys]]);
}

/** The layer a namespace's file is built from, if any. */
function usableLayer(want: LayerInput): LayerText | undefined {
  return want.ok ? want.layer : want.lastGood;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A digest of what registries.d needs of a layer (registriesIndex): equal digests, equal
 * contributions to the document and to its conflicts. */
function needsSignature(index: ScopeIndex): string {
  const h = createHash("sha256");
  // By scope, sorted: a layer's policies may come in another order with the same needs.
  const entries = [...index.scopes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [scope, e] of entries) {
    const reqs = e.requirements.map((r) => JSON.stringify(r)).sort();
    const sources = e.sources.map((o) => JSON.stringify(o)).sort();
    h.update(JSON.stringify([scope, reqs, sources]));
  }
  return h.digest("hex");
}

function indexKeyNames(index: ScopeIndex | undefined): string[] | undefined {
  if (index === undefined) return undefined;
  const names = new Set<string>();
  for (const e of index.scopes.values()) {
    for (const r of e.requirements) for (const k of keyMaterial(r)) names.add(keyFileName(k));
  }
  return [...names];
}

function sameVersion(a: CrioVersion, b: CrioVersion): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function dirname(p: string): string {
  return p.slice(0, p.lastIndexOf("/")) || "/";
}

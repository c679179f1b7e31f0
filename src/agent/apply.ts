// Runs a plan's steps in order and stops at the first failure (plan.ts explains the order). It
// renders each file when its step comes, writes it, and forgets it: one document in memory at a
// time. The manifest is written only at the plan's checkpoints; between them the executor keeps
// what each file holds in memory.

import path from "node:path";
import { indexLayer, type ScopeIndex } from "../compiler/combine.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import { parseLayer, type Layer } from "../compiler/layer.ts";
import type { RegistriesDDocument } from "../compiler/registriesD.ts";
import {
  layerFilePath,
  layerFileRevision,
  namespaceFilePath,
  type NodePaths,
} from "./hostPaths.ts";
import { serializeManifest, type Manifest } from "./manifest.ts";
import type { NodeFs } from "./nodeFs.ts";
import { sourceRevision, type Plan, type Source } from "./plan.ts";
import type { KeyFiles } from "./keyFiles.ts";
import { BaseRendering, Scratch, ValueCache, type Rendered } from "./render.ts";

export class ApplyError extends Error {
  override readonly name = "ApplyError";
}

/** The rejection every namespace file can fall back to: AND with it rejects every image. */
const REJECT_ALL: ScopeIndex = indexLayer({
  namespace: "imagepolicy-reject-all",
  policies: [{ name: "reject-all", scopes: [""], requirement: { kind: "reject" } }],
});

/** Renderings of cluster layers for one CRI-O version, reused across reconciles: the current
 * cluster layer's (every namespace file is spliced from it) and, during a transition, the AND of
 * the old and the new. */
export class Renderings {
  readonly target: CrioVersion;
  #text: (revision: string) => string | undefined;
  #parsed: ((revision: string) => Layer | undefined) | undefined;
  readonly #cache: ValueCache;
  /** Where namespace documents are assembled, one after the other. */
  readonly #scratch = new Scratch();
  readonly #bases = new Map<string, BaseRendering>();
  /** Layers parsed during one reconcile (a transition renders each namespace twice). */
  readonly #indexes = new Map<string, ScopeIndex>();

  constructor(
    target: CrioVersion,
    text: (revision: string) => string | undefined,
    keyRef?: (data: string) => string,
  ) {
    this.target = target;
    this.#text = text;
    this.#cache = new ValueCache(target, keyRef);
  }

  /** Where layer texts come from now, and layers already parsed (renderings already made stay:
   * a revision names a text). */
  setText(
    text: (revision: string) => string | undefined,
    parsed?: (revision: string) => Layer | undefined,
  ): void {
    this.#text = text;
    this.#parsed = parsed;
  }

  /** Keeps only the rendering of these cluster layers (the current one), and forgets rendered
   * lists: between reconciles the agent holds one rendering. */
  retain(revisions: readonly string[]): void {
    const key = revisions.join("+");
    for (const k of [...this.#bases.keys()]) if (k !== key) this.#bases.delete(k);
    for (const b of this.#bases.values()) b.trim();
    this.#cache.trim();
    this.#indexes.clear();
    this.#parsed = undefined;
    this.#scratch.release();
  }

  /** The parsed layer of `revision` (kept until retain()); undefined when its text is not known
   * (or does not parse). */
  index(revision: string): ScopeIndex | undefined {
    let index = this.#indexes.get(revision);
    if (index !== undefined) return index;
    const parsed = this.#parsed?.(revision);
    if (parsed !== undefined) index = indexLayer(parsed);
    else {
      const text = this.#text(revision);
      if (text === undefined) return undefined;
      try {
        index = indexLayer(parseLayer(text));
      } catch {
        return undefined;
      }
    }
    this.#indexes.set(revision, index);
    return index;
  }

  /** The AND of these cluster layers, rendered; undefined when one is not known. */
  base(revisions: readonly string[]): BaseRendering | undefined {
    const key = revisions.join("+");
    let b = this.#bases.get(key);
    if (b === undefined) {
      const layers: ScopeIndex[] = [];
      for (const r of revisions) {
        const l = this.index(r);
        if (l === undefined) return undefined;
        layers.push(l);
      }
      b = new BaseRendering(layers, this.#cache);
      // At most the current one and one transition are kept.
      if (this.#bases.size >= 2) this.#bases.clear();
      this.#bases.set(key, b);
    }
    return b;
  }

  /** The file a namespace step writes: the first source that renders. Its bytes are valid until
   * the next call (assembled in one buffer reused from file to file). */
  namespace(
    base: readonly string[],
    sources: readonly Source[],
  ):
    | { rendered: Rendered & { ok: true }; source: Source; problems: string[] }
    | { problems: string[] } {
    const problems: string[] = [];
    const b = this.base(base);
    if (b === undefined) return { problems: [`cluster layers ${base.join(", ")} are not known`] };
    for (const source of sources) {
      const index = source.kind === "rejectAll" ? REJECT_ALL : this.index(source.revision);
      if (index === undefined) {
        problems.push(`layer ${source.kind === "layer" ? source.revision : ""} is not known`);
        continue;
      }
      const r = b.withNamespace(index, this.#scratch);
      if (r.ok) return { rendered: r, source, problems };
      problems.push(...r.problems);
    }
    return { problems };
  }
}

export interface ApplyContext {
  readonly paths: NodePaths;
  readonly fs: NodeFs;
  readonly renderings: Renderings;
  /** The text of a cluster layer (for its layer file). */
  readonly layerText: (revision: string) => string | undefined;
  readonly registriesDText: (document: RegistriesDDocument) => string;
  /** The key files policy files name (undefined: the renderings inline keys). */
  readonly keys?: KeyFiles;
  /** Stops between two steps when aborted (the files are consistent after every step). */
  readonly signal?: AbortSignal;
}

export interface ApplyResult {
  /** The manifest as the executor holds it (what the files hold). */
  readonly manifest: Manifest;
  /** The manifest text last written (or given). */
  readonly manifestText: string;
  /** The registries.d document on disk now. */
  readonly registriesD: RegistriesDDocument;
  /** Paths written and removed, in order, and the bytes written. */
  readonly written: readonly string[];
  readonly removed: readonly string[];
  readonly bytesWritten: number;
  /** Problems met (a layer that did not render, so a fallback was written). */
  readonly problems: readonly string[];
  /** Set when a step failed or the signal aborted; the steps before it stay done. */
  readonly error?: Error;
}

export async function applyPlan(
  plan: Plan,
  start: {
    readonly manifest: Manifest;
    readonly manifestText: string;
    readonly registriesD: RegistriesDDocument;
  },
  ctx: ApplyContext,
): Promise<ApplyResult> {
  const { paths, fs } = ctx;
  const written: string[] = [];
  const removed: string[] = [];
  const problems: string[] = [];
  let bytes = 0;
  let manifest = start.manifest;
  let manifestText = start.manifestText;
  let registriesD = start.registriesD;
  const namespaces = new Entries(manifest.namespaces);
  const identities = new Entries(manifest.identities);
  /** A file being replaced has no identity: the manifest lists it with "". */
  const replacing = (ns: string): void => {
    namespaces.set(ns, "");
    identities.delete(ns);
  };
  const nsPath = (ns: string): string => {
    const p = namespaceFilePath(paths, ns);
    if (p === undefined) throw new ApplyError(`namespace ${JSON.stringify(ns)} has no file name`);
    return p;
  };
  const write = async (path: string, data: string | readonly Uint8Array[]): Promise<void> => {
    await fs.write(path, data);
    written.push(path);
    bytes +=
      typeof data === "string" ? Buffer.byteLength(data) : data.reduce((n, d) => n + d.length, 0);
  };
  // The key files a document names exist, durable, before the document is written.
  const keysFor = async (keys: ReadonlySet<string>): Promise<void> => {
    if (ctx.keys === undefined || keys.size === 0) return;
    const added = await ctx.keys.ensure(keys, write);
    if (added.length > 0) await fs.sync();
  };
  const result = (error?: Error): ApplyResult => ({
    manifest: { ...manifest, namespaces: namespaces.snapshot(), identities: identities.snapshot() },
    manifestText,
    registriesD,
    written,
    removed,
    bytesWritten: bytes,
    problems,
    ...(error === undefined ? {} : { error }),
  });
  try {
    for (const step of plan.steps) {
      if (ctx.signal?.aborted === true) return result(new ApplyError("stopped"));
      switch (step.kind) {
        case "layerFile": {
          const path = layerFilePath(paths, step.revision);
          if (!(await fs.exists(path))) {
            const text = ctx.layerText(step.revision);
            if (text === undefined) throw new ApplyError(`layer ${step.revision} is not known`);
            await write(path, text);
          }
          break;
        }
        case "mark":
          for (const ns of step.namespaces) replacing(ns);
          break;
        case "checkpoint": {
          const next: Manifest = {
            ...manifest,
            ...(step.clusterLayers === undefined ? {} : { clusterLayers: step.clusterLayers }),
            ...(step.registriesD === undefined ? {} : { registriesD: step.registriesD }),
            namespaces: namespaces.snapshot(),
            identities: identities.snapshot(),
          };
          const text = serializeManifest(next);
          // Only a manifest on disk counts: the next plan starts from it if this write fails.
          // What it records is durable before it, and it before anything after it.
          if (text !== manifestText) {
            await fs.sync();
            await write(paths.manifest, text);
            await fs.sync();
          }
          manifest = next;
          manifestText = text;
          break;
        }
        case "registriesD":
          await write(paths.registriesDFile, ctx.registriesDText(step.document));
          registriesD = step.document;
          break;
        case "cluster": {
          const r = ctx.renderings.base([step.revision])?.document();
          if (r === undefined || !r.ok) {
            throw new ApplyError(
              `cluster layer ${step.revision} does not render: ${r === undefined ? "not known" : r.problems.join("; ")}`,
            );
          }
          // The files written before (tighter than both cluster layers) are durable before
          // cluster.json changes, and it before the files written after it.
          await keysFor(r.keys);
          await fs.sync();
          await write(paths.clusterJson, r.parts);
          await fs.sync();
          break;
        }
        case "namespace": {
          const r = ctx.renderings.namespace(step.base, step.sources);
          problems.push(...r.problems.map((p) => `namespace ${step.namespace}: ${p}`));
          if (!("rendered" in r)) {
            throw new ApplyError(
              `namespace ${step.namespace}: nothing renders, not even a rejection`,
            );
          }
          await keysFor(r.rendered.keys);
          const file = nsPath(step.namespace);
          // Being replaced until its identity is known. On disk, a file listed final with an
          // identity may be replaced without a mark: if the process stops before the next
          // checkpoint, the identity recorded no longer matches (manifest.ts).
          replacing(step.namespace);
          await write(file, r.rendered.parts);
          if (step.final) {
            const identity = await fs.identity(file);
            namespaces.set(step.namespace, sourceRevision(step.base.at(-1) ?? "", r.source));
            if (identity !== undefined) identities.set(step.namespace, identity);
          }
          break;
        }
        case "delete": {
          const path = nsPath(step.namespace);
          if (await fs.remove(path)) removed.push(path);
          namespaces.delete(step.namespace);
          identities.delete(step.namespace);
          break;
        }
        case "pruneLayerFiles": {
          for (const name of await fs.list(path.dirname(paths.manifest))) {
            const rev = layerFileRevision(name);
            if (rev !== undefined && !step.keep.includes(rev)) {
              if (await fs.remove(layerFilePath(paths, rev)))
                removed.push(layerFilePath(paths, rev));
            }
          }
          break;
        }
        default: {
          const _exhaustive: never = step;
          return _exhaustive;
        }
      }
    }
    await fs.sync();
  } catch (cause) {
    return result(cause instanceof Error ? cause : new ApplyError("step failed", { cause }));
  }
  return result();
}

/** A record of the manifest the executor changes entry by entry, and the copy in order the
 * manifest holds of it: the record it started from while nothing changed, made again only after
 * a change. */
class Entries {
  readonly #values: Record<string, string>;
  #recorded: Readonly<Record<string, string>> | undefined;

  constructor(r: Readonly<Record<string, string>>) {
    const initial = orderedKeys(r);
    this.#values = copyOf(r, initial.keys);
    this.#recorded = initial.wasInOrder ? r : undefined;
  }

  set(key: string, value: string): void {
    if (this.#values[key] !== value) this.#recorded = undefined;
    this.#values[key] = value;
  }

  delete(key: string): void {
    if (!Object.hasOwn(this.#values, key)) return;
    this.#recorded = undefined;
    Reflect.deleteProperty(this.#values, key);
  }

  snapshot(): Readonly<Record<string, string>> {
    return (this.#recorded ??= copyInOrder(this.#values));
  }
}

/** A copy of `r` with its keys in order, sorted only when they are not (only a new namespace
 * comes out of order). A loop over Object.keys: `for...in` and a spread of a record of 500 keys
 * allocated ~1 MiB per namespace change between them (docs/scale.md). */
function copyInOrder(r: Readonly<Record<string, string>>): Record<string, string> {
  return copyOf(r, orderedKeys(r).keys);
}

function orderedKeys(r: Readonly<Record<string, string>>): {
  readonly keys: string[];
  readonly wasInOrder: boolean;
} {
  const keys = Object.keys(r);
  for (let i = 1; i < keys.length; i++) {
    if (!((keys[i - 1] ?? "") < (keys[i] ?? ""))) return { keys: keys.sort(), wasInOrder: false };
  }
  return { keys, wasInOrder: true };
}

function copyOf(
  r: Readonly<Record<string, string>>,
  keys: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) out[k] = r[k] ?? "";
  return out;
}

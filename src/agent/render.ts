// Rendering one node file at a time (docs/design.md "Scale"): the AND of one or more cluster layers
// (the "base": the cluster layer for cluster.json and <namespace>.json, or the old and the new
// cluster layer while a node moves from one to the other) is rendered once, entry by entry, and
// every namespace file is spliced from those entries and the few its own layer decides. The bytes
// are those of combine() on the same layers (src/compiler/combine.ts renderValue, entryKeyText and
// DOCUMENT_TEXT are the one writer; test/unit/agent/render.test.ts compares them on random
// layers).
//
// An entry is `"scope": [requirements]`. A node holds few distinct requirement lists (a few keys,
// reject, accept...) under many scopes, so each list is rendered once (ValueCache), and each
// distinct requirement is checked by the strict policy.json parser once: every document written
// is made of checked requirements, laid out by the canonical writer above.

import {
  decideOnChain,
  DOCUMENT_TEXT,
  entryKeyText,
  joinValue,
  renderValue,
  valueItem,
  type ScopeIndex,
} from "../compiler/combine.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import { canonicalJson } from "../canonicalJson.ts";
import { render, requirementKey, simplify, type Requirement } from "../compiler/requirements.ts";
import { compareScopes, fallbackChain, type Scope } from "../compiler/scopes.ts";
import { parseRequirement } from "../policyjson/parse.ts";
import { parseStrictJson } from "../strictJson.ts";
import { keyMaterial, withKeyPaths } from "./keyFiles.ts";

export class RenderInvariantError extends Error {
  override readonly name = "RenderInvariantError";
}

/** A document as the pieces to write in order (a namespace document is one buffer, assembled
 * from the base document's runs: BaseRendering.withNamespace) and the key material (base64)
 * whose files it names, or why it cannot be rendered. */
export type Rendered =
  | { ok: true; parts: readonly Buffer[]; length: number; keys: ReadonlySet<string> }
  | { ok: false; problems: string[] };

const NO_KEYS: ReadonlySet<string> = new Set();

/** The document as one buffer (tests, small documents). */
export function joined(r: { readonly parts: readonly Buffer[]; readonly length: number }): Buffer {
  return Buffer.concat(r.parts, r.length);
}

/** A rendered, checked requirement list. */
type Value =
  | {
      readonly ok: true;
      readonly bytes: Buffer;
      readonly reqs: readonly Requirement[];
      /** Ids of the requirements (ValueCache.keyOf). */
      readonly key: string;
      /** Key material whose files the bytes name (empty when keys are inlined). */
      readonly keys: readonly string[];
    }
  | { readonly ok: false; readonly problems: readonly string[] };

const NOT_RENDERED: Value = { ok: false, problems: ["not rendered"] };
const PREFIX = Buffer.from(DOCUMENT_TEXT.prefix);
const SEPARATOR = Buffer.from(DOCUMENT_TEXT.separator);
const SUFFIX = Buffer.from(DOCUMENT_TEXT.suffix);
const EMPTY = Buffer.from(DOCUMENT_TEXT.empty);

/** Above this many lists (or combinations) the cache starts over, so its memory stays bounded
 * (renderings keep the values they hold). A cluster change with the large fixture meets ~4,700
 * distinct lists and ~5,100 combinations over its two bases: at 2,048 the cache started over
 * mid-change and rendered 11,400 lists instead of 4,700 (docs/scale.md). */
const MAX_ENTRIES = 8192;

/** Rendered requirement lists for one CRI-O version, by content. One per reconcile. */
export class ValueCache {
  readonly target: CrioVersion;
  readonly #keys = new WeakMap<Requirement, string>();
  readonly #ids = new Map<string, number>();
  readonly #listKeys = new WeakMap<readonly Requirement[], string>();
  readonly #values = new Map<string, Value>();
  /** AND of a value and a namespace entry's requirements: by the value, then the entry's ids. */
  #combined = new WeakMap<Value, Map<string, Value>>();
  #combinedSize = 0;
  readonly #checked = new Set<string>();
  /** Each distinct requirement's item (or problems), by requirementKey. */
  readonly #items = new Map<string, string | readonly string[]>();
  /** Lists rendered (and checked) so far: what the cache saved is the rest. */
  rendered = 0;
  /** The path a file names for a piece of key material (keyFiles.ts); undefined: inline keys,
   * as the compiler renders them. */
  readonly #keyRef: ((data: string) => string) | undefined;

  constructor(target: CrioVersion, keyRef?: (data: string) => string) {
    this.target = target;
    this.#keyRef = keyRef;
  }

  /** Forgets the lists rendered so far (renderings keep the values they hold). */
  trim(): void {
    this.#values.clear();
    this.#combined = new WeakMap();
    this.#combinedSize = 0;
  }

  /** requirementKey, once per requirement object. */
  readonly requirementKey = (r: Requirement): string => {
    let k = this.#keys.get(r);
    if (k === undefined) {
      k = requirementKey(r);
      this.#keys.set(r, k);
    }
    return k;
  };

  #keyOf(reqs: readonly Requirement[]): string {
    let key = this.#listKeys.get(reqs);
    if (key === undefined) {
      key = reqs
        .map((r) => {
          const k = this.requirementKey(r);
          let id = this.#ids.get(k);
          if (id === undefined) {
            id = this.#ids.size;
            this.#ids.set(k, id);
          }
          return id;
        })
        .join(",");
      this.#listKeys.set(reqs, key);
    }
    return key;
  }

  /** `reqs` (already simplified) rendered and checked. */
  value(reqs: readonly Requirement[]): Value {
    const key = this.#keyOf(reqs);
    let v = this.#values.get(key);
    if (v === undefined) {
      if (this.#values.size >= MAX_ENTRIES) this.#values.clear();
      v = this.#render(reqs, key);
      this.#values.set(key, v);
    }
    return v;
  }

  /** The value of `base` AND `extra` (an entry of a namespace layer). */
  and(base: Value, extra: readonly Requirement[]): Value {
    if (!base.ok) return base;
    const key = this.#keyOf(extra);
    let byExtra = this.#combined.get(base);
    let v = byExtra?.get(key);
    if (v === undefined) {
      if (this.#combinedSize >= MAX_ENTRIES) {
        this.#combined = new WeakMap();
        this.#combinedSize = 0;
        byExtra = undefined;
      }
      if (byExtra === undefined) {
        byExtra = new Map();
        this.#combined.set(base, byExtra);
      }
      v = this.value(simplify([...base.reqs, ...extra], this.requirementKey));
      byExtra.set(key, v);
      this.#combinedSize += 1;
    }
    return v;
  }

  #render(reqs: readonly Requirement[], key: string): Value {
    this.rendered += 1;
    // Each distinct requirement is rendered once; a list joins their items (combine.ts).
    const items: string[] = [];
    const problems: string[] = [];
    for (const req of reqs) {
      const item = this.#item(req);
      if (typeof item === "string") items.push(item);
      else problems.push(...item);
    }
    if (problems.length > 0) return { ok: false, problems };
    let text: string;
    if (items.length > 0) text = joinValue(items);
    else {
      const r = renderValue(reqs, this.target); // no requirement: accept
      if (!r.ok) return { ok: false, problems: r.problems };
      text = r.text;
    }
    const keys = this.#keyRef === undefined ? [] : [...new Set(reqs.flatMap(keyMaterial))];
    return { ok: true, bytes: Buffer.from(text), reqs, key, keys };
  }

  /** One requirement's item in a value, or why the target cannot take it; checked once. */
  #item(req: Requirement): string | readonly string[] {
    const k = this.requirementKey(req);
    let item = this.#items.get(k);
    if (item === undefined) {
      const ref = this.#keyRef;
      const r = renderValue([req], this.target, ref && ((p) => withKeyPaths(p, ref)));
      if (r.ok) {
        this.#check(req);
        item = valueItem(r.text);
      } else item = r.problems;
      if (this.#items.size >= MAX_ENTRIES) this.#items.clear();
      this.#items.set(k, item);
    }
    return item;
  }

  /** Each distinct requirement, rendered alone, passes the strict policy.json parser (once). */
  #check(req: Requirement): void {
    const key = this.requirementKey(req);
    if (this.#checked.has(key)) return;
    const ref = this.#keyRef;
    const text = canonicalJson(ref === undefined ? render(req) : withKeyPaths(render(req), ref));
    try {
      parseRequirement(parseStrictJson(text), "requirement");
    } catch (cause) {
      throw new RenderInvariantError(
        `a rendered requirement fails the strict parser: ${(cause as Error).message}: ${text}`,
        { cause },
      );
    }
    this.#checked.add(key);
  }
}

/** The requirements deciding a scope in the AND of `layers`, from its fallback chain. */
function andOnChain(
  layers: readonly ScopeIndex[],
  chain: readonly Scope[],
  key: (r: Requirement) => string,
): readonly Requirement[] {
  const decided: Requirement[] = [];
  let deciders = 0;
  let only: readonly Requirement[] = [];
  for (const l of layers) {
    const d = decideOnChain(l, chain);
    if (d === undefined) continue;
    deciders += 1;
    only = d.entry.requirements;
    decided.push(...only);
  }
  // One deciding layer: its entry is simplified already.
  return deciders === 1 ? only : simplify(decided, key);
}

/** Joins entries (key bytes, value bytes) into a document. */
function assemble(keys: readonly Buffer[], values: readonly Buffer[]): Buffer {
  if (keys.length === 0) return EMPTY;
  const parts: Buffer[] = [PREFIX];
  let length = PREFIX.length + SUFFIX.length + SEPARATOR.length * (keys.length - 1);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const v = values[i];
    if (k === undefined || v === undefined) throw new RenderInvariantError("entry missing");
    if (i > 0) parts.push(SEPARATOR);
    parts.push(k, v);
    length += k.length + v.length;
  }
  parts.push(SUFFIX);
  return Buffer.concat(parts, length);
}

/** One buffer namespace documents are assembled in, reused from file to file (the executor writes
 * each file before it renders the next): a cluster change assembles ~1,000 of ~150 KiB. */
export class Scratch {
  #buffer: Buffer | undefined;

  /** `length` bytes of the buffer, which grows when it must. */
  take(length: number): Buffer {
    if (this.#buffer === undefined || this.#buffer.length < length) {
      this.#buffer = Buffer.allocUnsafeSlow(Math.max(length, 2 * (this.#buffer?.length ?? 0)));
    }
    return this.#buffer.subarray(0, length);
  }

  /** Lets the buffer go (between reconciles). */
  release(): void {
    this.#buffer = undefined;
  }
}

/** The AND of `base` layers, rendered entry by entry for one CRI-O version. */
export class BaseRendering {
  readonly base: readonly ScopeIndex[];
  /** Features of the base the target cannot parse (then nothing renders). */
  readonly problems: readonly string[];
  readonly #cache: ValueCache;
  readonly #scopes: readonly Scope[];
  readonly #keys: readonly Buffer[];
  readonly #values: readonly Value[];
  readonly #chains: readonly (readonly Scope[])[];
  /** Scope -> indexes of the base scopes whose fallback chain holds it. */
  readonly #under = new Map<Scope, number[]>();
  readonly #base: ReadonlySet<Scope>;
  #document: Buffer | undefined;
  #material: ReadonlySet<string> | undefined;
  readonly #start: number[] = [];
  readonly #end: number[] = [];
  /** The base's value at scopes it does not list (a namespace's own scopes), by scope: many
   * namespaces name the same ones. Emptied by trim(). */
  readonly #atScope = new Map<Scope, Value>();
  /** withNamespace's working memory, reused from call to call (a cluster change makes ~1,000):
   * the value of each base entry the namespace decides, by index (undefined elsewhere), those
   * indexes, and the pieces of the document. */
  readonly #changed: (Value | undefined)[] = [];
  readonly #touched: number[] = [];
  readonly #pieces: (Buffer | number)[] = [];

  constructor(base: readonly ScopeIndex[], cache: ValueCache) {
    this.base = base;
    this.#cache = cache;
    const all = new Set<Scope>();
    for (const l of base) for (const s of l.scopes.keys()) all.add(s);
    this.#scopes = [...all].sort(compareScopes);
    this.#base = all;
    const problems = new Set<string>();
    const keys: Buffer[] = [];
    const values: Value[] = [];
    const chains: (readonly Scope[])[] = [];
    this.#scopes.forEach((scope, i) => {
      const chain = fallbackChain(scope);
      chains.push(chain);
      for (const s of chain) {
        const list = this.#under.get(s);
        if (list === undefined) this.#under.set(s, [i]);
        else list.push(i);
      }
      const v = cache.value(andOnChain(base, chain, cache.requirementKey));
      if (!v.ok) for (const p of v.problems) problems.add(p);
      keys.push(Buffer.from(entryKeyText(scope)));
      values.push(v);
    });
    this.#keys = keys;
    this.#values = values;
    this.#chains = chains;
    this.problems = [...problems].sort();
  }

  /** Forgets the values kept for scopes the base does not list (between reconciles). */
  trim(): void {
    this.#atScope.clear();
  }

  /** The base's value at `scope`, which it does not list: what its fallback chain decides. */
  #valueAt(scope: Scope): Value {
    let v = this.#atScope.get(scope);
    if (v === undefined) {
      const cache = this.#cache;
      v = cache.value(andOnChain(this.base, fallbackChain(scope), cache.requirementKey));
      if (this.#atScope.size >= MAX_ENTRIES) this.#atScope.clear();
      this.#atScope.set(scope, v);
    }
    return v;
  }

  /** The document of the base alone (cluster.json when the base is one cluster layer). */
  document(): Rendered {
    if (this.problems.length > 0) return { ok: false, problems: [...this.problems] };
    if (this.#document === undefined) {
      // Where each entry starts (its key) and ends (its value) in the document.
      let offset = PREFIX.length;
      this.#scopes.forEach((_, i) => {
        if (i > 0) offset += SEPARATOR.length;
        this.#start.push(offset);
        offset += (this.#keys[i]?.length ?? 0) + bytesOf(this.#values[i] ?? NOT_RENDERED).length;
        this.#end.push(offset);
      });
      this.#document = assemble(this.#keys, this.#values.map(bytesOf));
    }
    return {
      ok: true,
      parts: [this.#document],
      length: this.#document.length,
      keys: this.keyMaterial(),
    };
  }

  /** The key material the base's entries name. */
  keyMaterial(): ReadonlySet<string> {
    if (this.#material === undefined) {
      const keys = new Set<string>();
      for (const v of this.#values) if (v.ok) for (const k of v.keys) keys.add(k);
      this.#material = keys.size === 0 ? NO_KEYS : keys;
    }
    return this.#material;
  }

  /** The document of the base AND `namespace`: runs of base entries the namespace does not
   * touch are copied from the base document as they are. Assembled in `scratch` when given:
   * then the document is valid until the next one assembled there. */
  withNamespace(namespace: ScopeIndex, scratch?: Scratch): Rendered {
    try {
      return this.#withNamespace(namespace, scratch);
    } finally {
      for (const i of this.#touched) this.#changed[i] = undefined;
      this.#touched.length = 0;
      this.#pieces.length = 0;
    }
  }

  #withNamespace(namespace: ScopeIndex, scratch: Scratch | undefined): Rendered {
    const doc = this.document();
    if (!doc.ok) return doc;
    const base = doc.parts[0] ?? EMPTY;
    const cache = this.#cache;
    // Base scopes a namespace scope decides: their values change.
    const changed = this.#changed;
    const touched = this.#touched;
    namespace.scopes.forEach((_, s) => {
      const under = this.#under.get(s);
      if (under === undefined) return;
      for (const i of under) {
        if (changed[i] !== undefined) continue;
        const d = decideOnChain(namespace, this.#chains[i] ?? []);
        const v = this.#values[i];
        if (d !== undefined && v !== undefined) {
          changed[i] = cache.and(v, d.entry.requirements);
          touched.push(i);
        }
      }
    });
    // Scopes only the namespace has, with their values.
    const own: [Scope, Value][] = [];
    for (const scope of sortedScopes(namespace)) {
      const e = namespace.scopes.get(scope);
      if (e !== undefined && !this.#base.has(scope)) {
        own.push([scope, cache.and(this.#valueAt(scope), e.requirements)]);
      }
    }
    // The values the namespace brings: their problems, and the key files they name beside the
    // base's (a superset of the entries kept).
    let problems: Set<string> | undefined;
    const material = this.keyMaterial();
    let keys = material;
    const bring = (v: Value | undefined): void => {
      if (v === undefined) return;
      if (!v.ok) {
        problems ??= new Set();
        for (const p of v.problems) problems.add(p);
        return;
      }
      for (const k of v.keys) {
        if (keys.has(k)) continue;
        if (keys === material) keys = new Set(keys);
        (keys as Set<string>).add(k);
      }
    };
    for (const i of touched) bring(changed[i]);
    for (const [, v] of own) bring(v);
    if (problems !== undefined) return { ok: false, problems: [...problems].sort() };

    // The pieces in order: a Buffer, or a run of the base document as two numbers (start, end),
    // copied into one buffer at the end (no object per run, one write).
    const pieces = this.#pieces;
    pieces.push(PREFIX);
    let length = PREFIX.length + SUFFIX.length;
    let entries = 0;
    const separate = (): void => {
      if (entries++ === 0) return;
      pieces.push(SEPARATOR);
      length += SEPARATOR.length;
    };
    const entry = (key: Buffer, value: Value): void => {
      separate();
      const bytes = bytesOf(value);
      pieces.push(key, bytes);
      length += key.length + bytes.length;
    };
    let runStart = -1;
    const flush = (endExclusive: number): void => {
      if (runStart < 0) return;
      separate();
      const from = this.#start[runStart] ?? 0;
      const to = this.#end[endExclusive - 1] ?? from;
      pieces.push(from, to);
      length += to - from;
      runStart = -1;
    };
    let j = 0;
    for (let i = 0; i < this.#scopes.length; i++) {
      const scope = this.#scopes[i] ?? "";
      for (
        let next = own[j];
        next !== undefined && compareScopes(next[0], scope) < 0;
        next = own[++j]
      ) {
        flush(i);
        entry(Buffer.from(entryKeyText(next[0])), next[1]);
      }
      const v = changed[i];
      if (v === undefined) {
        if (runStart < 0) runStart = i;
        continue;
      }
      flush(i);
      entry(this.#keys[i] ?? Buffer.alloc(0), v);
    }
    flush(this.#scopes.length);
    for (; j < own.length; j++) {
      const [scope, v] = own[j] ?? ["", undefined];
      if (v !== undefined) entry(Buffer.from(entryKeyText(scope)), v);
    }
    if (entries === 0) return { ok: true, parts: [EMPTY], length: EMPTY.length, keys };
    pieces.push(SUFFIX);
    const out = scratch === undefined ? Buffer.allocUnsafe(length) : scratch.take(length);
    let at = 0;
    for (let k = 0; k < pieces.length; k++) {
      const p = pieces[k];
      if (typeof p === "number") {
        const to = pieces[++k] as number;
        at += base.copy(out, at, p, to);
      } else if (p !== undefined) at += p.copy(out, at);
    }
    if (at !== length) throw new RenderInvariantError(`assembled ${at} bytes, counted ${length}`);
    return { ok: true, parts: [out], length, keys };
  }
}

/** A layer's scopes in document order, once per parsed layer (a transition renders each
 * namespace on two bases). */
const scopeOrder = new WeakMap<ScopeIndex, readonly Scope[]>();
function sortedScopes(index: ScopeIndex): readonly Scope[] {
  let order = scopeOrder.get(index);
  if (order === undefined) {
    order = [...index.scopes.keys()].sort(compareScopes);
    scopeOrder.set(index, order);
  }
  return order;
}

function bytesOf(v: Value): Buffer {
  if (!v.ok) throw new RenderInvariantError("an unrendered value");
  return v.bytes;
}

// The manifest of the files the agent owns (docs/design.md "Files on the node"):
// `.imagepolicy-manifest` beside cluster.json, a name CRI-O never reads as a namespace policy. The
// agent deletes only namespace files listed here, and only in the policy directory recorded here.
// It is also how the agent knows what every file holds without reading it back (docs/scale.md):
//
// - clusterLayers: the revisions of the cluster layers cluster.json may hold: one at rest, more
//   while the agent moves from one cluster layer to the next (the new one is listed before
//   cluster.json is replaced). Each one's layer.json is kept beside the manifest in
//   `.imagepolicy-cluster-layer-<revision>` (hostPaths.ts layerFileName), so that after a crash at any point
//   the next transition can still write namespace files tighter than every one of them.
// - namespaces: the revision each `<namespace>.json` holds ("<cluster>.<namespace>"), or ""
//   while it is being replaced: a file listed with "" holds something no looser than
//   cluster.json, and is rewritten before it is reported. A file is listed before it is first
//   written, so a crash never leaves an unlisted file of ours behind.
// - identities: what identified each namespace file's bytes (NodeFs.identity: inode, size and
//   times) when it was last written at the revision listed. A listed file whose identity differs
//   at load was replaced after the manifest was written, so it counts as being replaced. This is
//   what lets a namespace change replace a file without marking it first (one manifest write
//   instead of two, docs/scale.md): a crash between the file and the manifest leaves a file whose
//   identity no longer matches. A file without a recorded identity (a new one, or one listed by
//   an older agent) is still marked first. Absent in the manifests of older agents.
// - registriesD: the inputs the registries.d file was last computed from ("" when unknown).
//
// Version 1 (the agent before this one) kept the cluster layers' text inline; it is read and
// turned into version 2 (parseManifest returns the texts).

import { canonicalJson } from "../canonicalJson.ts";
import { parseStrictJson } from "../strictJson.ts";
import { layerRevision } from "../layerConfigMap.ts";
import { isDns1123Label } from "./hostPaths.ts";

export interface Manifest {
  readonly version: 2;
  /** The policy directory (host path) the namespace files below live in. */
  readonly policyDir: string;
  /** Revisions of the cluster layers cluster.json may hold; empty when unknown. */
  readonly clusterLayers: readonly string[];
  /** namespace -> revision of `<namespace>.json`, "" while being replaced. */
  readonly namespaces: Readonly<Record<string, string>>;
  /** namespace -> identity of `<namespace>.json` as written at its listed revision (none for a
   * file being replaced or listed by an older agent). */
  readonly identities: Readonly<Record<string, string>>;
  /** What the registries.d file was computed from; "" when unknown. */
  readonly registriesD: string;
}

export class ManifestParseError extends Error {
  override readonly name = "ManifestParseError";
}

const REVISION = /^[0-9a-f]{16}$/;
const FILE_REVISION = /^(?:|[0-9a-f]{16}\.(?:[0-9a-f]{16}|unrendered))$/;
/** What NodeFs.identity returns: printable, without quotes or backslashes. */
const IDENTITY = /^[0-9A-Za-z:._-]{1,200}$/;

export function emptyManifest(policyDir: string): Manifest {
  return {
    version: 2,
    policyDir,
    clusterLayers: [],
    namespaces: {},
    identities: {},
    registriesD: "",
  };
}

/** The manifest's canonical JSON (src/canonicalJson.ts). JSON.stringify gives the same bytes,
 * at a third of the time and without the intermediate strings, when the namespaces are in order
 * (it keeps insertion order) and none is all digits (it would write array indexes first); it is
 * written once per namespace change, and several times per cluster change. */
export function serializeManifest(m: Manifest): string {
  if (!stringifiesInOrder(m.namespaces) || !stringifiesInOrder(m.identities)) {
    return canonicalJson(m);
  }
  // In canonical key order.
  const ordered = {
    clusterLayers: m.clusterLayers,
    identities: m.identities,
    namespaces: m.namespaces,
    policyDir: m.policyDir,
    registriesD: m.registriesD,
    version: m.version,
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/** JSON.stringify writes `r`'s keys in sorted order: they are in order, none all digits. */
function stringifiesInOrder(r: Readonly<Record<string, string>>): boolean {
  const names = Object.keys(r);
  for (let i = 0; i < names.length; i++) {
    const name = names[i] ?? "";
    if (/^[0-9]+$/.test(name) || (i > 0 && !((names[i - 1] ?? "") < name))) return false;
  }
  return true;
}

export interface ParsedManifest {
  readonly manifest: Manifest;
  /** Layer texts a version 1 manifest carried inline (revision -> layer.json). */
  readonly inlineLayers: ReadonlyMap<string, string>;
}

type Fields = Readonly<Record<string, unknown>>;

function fields(v: unknown, allowed: readonly string[], where: string): Fields {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ManifestParseError(`invalid manifest: ${where} is not an object`);
  }
  const o: Fields = Object.fromEntries(Object.entries(v));
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k))
      throw new ManifestParseError(`invalid manifest: unknown field ${where}.${k}`);
  }
  return o;
}

function text(o: Fields, key: string, re?: RegExp): string {
  const v = o[key];
  if (typeof v !== "string" || (re !== undefined && !re.test(v))) {
    throw new ManifestParseError(`invalid manifest: ${key} is not a valid string`);
  }
  return v;
}

function strings(o: Fields, key: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === "string" && x !== "")) {
    throw new ManifestParseError(`invalid manifest: ${key} is not a list of strings`);
  }
  return v;
}

function namespaces(v: unknown, value: RegExp, where = "namespaces"): Record<string, string> {
  const o = fields(v, Object.keys(v ?? {}), where);
  const out: Record<string, string> = {};
  for (const [ns, rev] of Object.entries(o)) {
    if (!isDns1123Label(ns))
      throw new ManifestParseError(`invalid manifest: namespace ${JSON.stringify(ns)}`);
    if (typeof rev !== "string" || !value.test(rev)) {
      throw new ManifestParseError(`invalid manifest: ${where}.${ns} is not valid`);
    }
    out[ns] = rev;
  }
  return out;
}

/** Strict: unknown fields, duplicate keys, wrong types and malformed revisions are errors. */
export function parseManifest(input: string): ParsedManifest {
  let value: unknown;
  try {
    value = parseStrictJson(input);
  } catch (cause) {
    throw new ManifestParseError(`manifest is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  const version = fields(value, Object.keys(value ?? {}), "$")["version"];
  if (version === 2) {
    const o = fields(
      value,
      ["version", "policyDir", "clusterLayers", "namespaces", "identities", "registriesD"],
      "$",
    );
    const clusterLayers = strings(o, "clusterLayers");
    if (!clusterLayers.every((r) => REVISION.test(r))) {
      throw new ManifestParseError("invalid manifest: clusterLayers holds a malformed revision");
    }
    const ns = namespaces(o["namespaces"], FILE_REVISION);
    const ids =
      o["identities"] === undefined ? {} : namespaces(o["identities"], IDENTITY, "identities");
    for (const k of Object.keys(ids)) {
      if (ns[k] === undefined || ns[k] === "") {
        throw new ManifestParseError(`invalid manifest: identity of ${k}, a file not listed final`);
      }
    }
    return {
      manifest: {
        version: 2,
        policyDir: text(o, "policyDir", /^\/./),
        clusterLayers,
        namespaces: ns,
        identities: ids,
        registriesD: text(o, "registriesD"),
      },
      inlineLayers: new Map(),
    };
  }
  if (version === 1) {
    const o = fields(
      value,
      ["version", "policyDir", "clusterLayers", "clusterRevision", "namespaces"],
      "$",
    );
    const texts = strings(o, "clusterLayers");
    text(o, "clusterRevision");
    const inlineLayers = new Map(texts.map((t) => [layerRevision(t), t] as const));
    // Version 1 marked a file being replaced "<old>+<new>"; such a file counts as being replaced.
    const ns = namespaces(o["namespaces"], /^[0-9a-z.+]*$/);
    for (const [k, rev] of Object.entries(ns)) if (!FILE_REVISION.test(rev)) ns[k] = "";
    return {
      manifest: {
        version: 2,
        policyDir: text(o, "policyDir", /^\/./),
        clusterLayers: [...inlineLayers.keys()],
        namespaces: ns,
        identities: {},
        registriesD: "",
      },
      inlineLayers,
    };
  }
  throw new ManifestParseError(`invalid manifest: unknown version ${JSON.stringify(version)}`);
}

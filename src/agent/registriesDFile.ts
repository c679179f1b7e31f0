// The node's registries.d file (docs/design.md "Files on the node", registries.d).
//
// The compiler computes which scopes need `use-sigstore-attachments` or a `lookaside`; here the
// agent adapts that document to its node: the same entry for every mirror location of a scope
// that needs sigstore attachments (registries.conf), and no key that another registries.d file on
// the node already defines (a key defined in two files makes containers/image fail every pull on
// the node). What is left out is reported. Pure, except readOtherKeys (synchronous reads).

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { indexLayer, type ScopeIndex } from "../compiler/combine.ts";
import type { Layer } from "../compiler/layer.ts";
import {
  registriesD,
  type LookasideConflict,
  type RegistriesDDocument,
  type RegistriesDEntry,
} from "../compiler/registriesD.ts";
import type { Requirement } from "../compiler/requirements.ts";
import { mirrorScopes, type RegistryMirrors } from "./registriesConf.ts";
import { readYaml, writeYamlSubset, type SubsetValue } from "./yamlSubset.ts";

export const DEFAULT_DOCKER = "default-docker";

/** Keys other registries.d files define: "default-docker" or a docker scope, with the file. */
export type OtherKeys = ReadonlyMap<string, string>;

export interface OmittedKey {
  /** A docker scope, or "default-docker". */
  readonly key: string;
  /** The other file that defines it. */
  readonly definedIn: string;
}

export interface NodeRegistriesD {
  readonly document: RegistriesDDocument;
  readonly omitted: readonly OmittedKey[];
}

function mergeEntry(a: RegistriesDEntry | undefined, b: RegistriesDEntry): RegistriesDEntry {
  const sig = a?.["use-sigstore-attachments"] === true || b["use-sigstore-attachments"] === true;
  const lookaside = b.lookaside ?? a?.lookaside;
  return {
    ...(sig ? { "use-sigstore-attachments": true as const } : {}),
    ...(lookaside === undefined ? {} : { lookaside }),
  };
}

function build(
  defaultDocker: RegistriesDEntry | undefined,
  docker: ReadonlyMap<string, RegistriesDEntry>,
): RegistriesDDocument {
  const sorted = [...docker].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    ...(defaultDocker === undefined ? {} : { [DEFAULT_DOCKER]: defaultDocker }),
    ...(sorted.length === 0 ? {} : { docker: Object.fromEntries(sorted) }),
  };
}

/** Every entry of both, field by field (sigstore attachments if either wants them; `b`'s
 * lookaside wins): what the node needs while it moves from the policies of `a` to those of `b`. */
export function unionRegistriesD(
  a: RegistriesDDocument,
  b: RegistriesDDocument,
): RegistriesDDocument {
  const docker = new Map<string, RegistriesDEntry>(Object.entries(a.docker ?? {}));
  for (const [k, e] of Object.entries(b.docker ?? {})) docker.set(k, mergeEntry(docker.get(k), e));
  const da = a[DEFAULT_DOCKER];
  const db = b[DEFAULT_DOCKER];
  const dd = db === undefined ? da : mergeEntry(da, db);
  return build(dd, docker);
}

/** Adds mirror locations, then leaves out what another file defines. */
export function nodeRegistriesD(
  compiled: RegistriesDDocument,
  registries: readonly RegistryMirrors[],
  others: OtherKeys,
): NodeRegistriesD {
  const docker = new Map<string, RegistriesDEntry>(Object.entries(compiled.docker ?? {}));
  for (const [scope, entry] of Object.entries(compiled.docker ?? {})) {
    if (entry["use-sigstore-attachments"] !== true) continue;
    for (const m of mirrorScopes(scope, registries)) {
      docker.set(m, mergeEntry(docker.get(m), { "use-sigstore-attachments": true }));
    }
  }
  const omitted: OmittedKey[] = [];
  for (const key of [...docker.keys()]) {
    const file = others.get(key);
    if (file !== undefined) {
      docker.delete(key);
      omitted.push({ key, definedIn: file });
    }
  }
  let dd = compiled[DEFAULT_DOCKER];
  const ddFile = others.get(DEFAULT_DOCKER);
  if (dd !== undefined && ddFile !== undefined) {
    omitted.push({ key: DEFAULT_DOCKER, definedIn: ddFile });
    dd = undefined;
  }
  const document = build(dd, docker);
  return { document, omitted: omitted.sort(byKey) };
}

function byKey(a: OmittedKey, b: OmittedKey): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The agent's registries.d file: block YAML in the subset it reads back without the yaml
 * package (yamlSubset.ts), keys sorted. */
export function registriesDText(document: RegistriesDDocument): string {
  const entry = (e: RegistriesDEntry): SubsetValue =>
    new Map<string, SubsetValue>([
      ...(e["use-sigstore-attachments"] === true
        ? [["use-sigstore-attachments", true] as const]
        : []),
      ...(e.lookaside === undefined ? [] : [["lookaside", e.lookaside] as const]),
    ]);
  const doc = new Map<string, SubsetValue>();
  const dd = document[DEFAULT_DOCKER];
  if (dd !== undefined) doc.set(DEFAULT_DOCKER, entry(dd));
  const docker = Object.entries(document.docker ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (docker.length > 0) doc.set("docker", new Map(docker.map(([k, e]) => [k, entry(e)])));
  return (
    "# Written by imagepolicy-operator's agent; do not edit. Scopes (and their mirrors) that need\n" +
    "# sigstore attachments or a GPG lookaside for cluster.json and <namespace>.json.\n" +
    writeYamlSubset(doc)
  );
}

function ownEntry(v: unknown): RegistriesDEntry | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v);
  if (!keys.every((k) => k === "use-sigstore-attachments" || k === "lookaside")) return undefined;
  const sig: unknown = Reflect.get(v, "use-sigstore-attachments");
  const lookaside: unknown = Reflect.get(v, "lookaside");
  if (sig !== undefined && sig !== true) return undefined;
  if (lookaside !== undefined && (typeof lookaside !== "string" || lookaside === "")) {
    return undefined;
  }
  return {
    ...(sig === true ? { "use-sigstore-attachments": true as const } : {}),
    ...(typeof lookaside === "string" ? { lookaside } : {}),
  };
}

/** The agent's own file as last written; undefined when it cannot be read back. */
export function parseOwnRegistriesD(text: string): RegistriesDDocument | undefined {
  let doc: unknown;
  try {
    doc = readYaml(text) ?? {};
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  if (!Object.keys(doc).every((k) => k === DEFAULT_DOCKER || k === "docker")) return undefined;
  const dd: unknown = Reflect.get(doc, DEFAULT_DOCKER);
  const dockerValue: unknown = Reflect.get(doc, "docker");
  const defaultDocker = dd === undefined ? undefined : ownEntry(dd);
  if (dd !== undefined && defaultDocker === undefined) return undefined;
  const docker = new Map<string, RegistriesDEntry>();
  if (dockerValue !== undefined) {
    if (typeof dockerValue !== "object" || dockerValue === null) return undefined;
    for (const [k, v] of Object.entries(dockerValue)) {
      const e = ownEntry(v);
      if (e === undefined) return undefined;
      docker.set(k, e);
    }
  }
  return build(defaultDocker, docker);
}

export class RegistriesDReadError extends Error {
  override readonly name = "RegistriesDReadError";
}

/** Keys defined by every `*.yaml` in `dirs` except `ownFile` (containers/image reads only files
 * ending in `.yaml`). A missing directory has none; an unreadable file throws (the agent cannot
 * know which keys are safe to write). */
export function readOtherKeys(dirs: readonly string[], ownFile: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new RegistriesDReadError(`cannot list ${dir}`, { cause });
    }
    for (const name of names.filter((n) => n.endsWith(".yaml")).sort()) {
      const file = path.join(dir, name);
      if (file === ownFile) continue;
      let doc: unknown;
      try {
        doc = readYaml(readFileSync(file, "utf8")) ?? {};
      } catch (cause) {
        throw new RegistriesDReadError(`cannot read ${file}: ${(cause as Error).message}`, {
          cause,
        });
      }
      if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
        throw new RegistriesDReadError(`${file} is not a registries.d document`);
      }
      const docker: unknown = Reflect.get(doc, "docker") ?? {};
      if (typeof docker !== "object" || docker === null || Array.isArray(docker)) {
        throw new RegistriesDReadError(`${file} is not a registries.d document`);
      }
      if (Reflect.get(doc, DEFAULT_DOCKER) !== undefined && !keys.has(DEFAULT_DOCKER)) {
        keys.set(DEFAULT_DOCKER, file);
      }
      for (const k of Object.keys(docker)) if (!keys.has(k)) keys.set(k, file);
    }
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// What registries.d needs of each layer, without its keys

const SIGSTORE: Requirement = { kind: "sigstoreKeys", keys: ["AA=="] };
const GPG: Requirement = { kind: "gpg", keyring: "AA==" };

/** What registries.d needs of a requirement: whether it rejects, needs sigstore attachments, or a
 * lookaside (compiler/registriesD.ts needsOf reads only these). */
function needs(r: Requirement): Requirement {
  switch (r.kind) {
    case "reject":
    case "accept":
      return r;
    case "sigstoreKeys":
    case "fulcio":
    case "pki":
      return SIGSTORE;
    case "gpg":
      return r.lookaside === undefined
        ? GPG
        : { kind: "gpg", keyring: "AA==", lookaside: r.lookaside };
    default: {
      const _exhaustive: never = r;
      return _exhaustive;
    }
  }
}

/** A layer's index with each requirement reduced to what registries.d needs of it: the agent
 * keeps one per namespace (no keys: a small fraction of the layer) to recompute registries.d
 * without parsing every layer again. */
export function registriesIndex(layer: Layer): ScopeIndex {
  return indexLayer({
    ...layer,
    policies: layer.policies.map((p) => ({ ...p, requirement: needs(p.requirement) })),
  });
}

export interface NodeRegistriesDPlan extends NodeRegistriesD {
  /** The union with what is on disk now: written before the policies that need it. */
  readonly union: RegistriesDDocument;
  readonly conflicts: readonly LookasideConflict[];
}

/** registries.d on this node for the layers' compiled document (registriesD() of the cluster
 * and namespace layers: the costly part, which the caller keeps). */
export function computeRegistriesD(
  compiled: ReturnType<typeof registriesD>,
  current: RegistriesDDocument,
  registries: readonly RegistryMirrors[],
  others: OtherKeys,
): NodeRegistriesDPlan {
  const final = nodeRegistriesD(compiled.document, registries, others);
  const made = nodeRegistriesD(unionRegistriesD(current, compiled.document), registries, others);
  // Equal documents become the same object, so that every later plan compares them by identity.
  // Their texts are made here, when what registries.d depends on moved (after a write, a start,
  // a cluster change), not in the next namespace change before its file: the first namespace
  // change after a start made two of them (a few thousand scopes each; docs/scale.md).
  const union = sameDocument(made.document, current) ? current : made.document;
  const document = sameDocument(final.document, union) ? union : final.document;
  return { ...final, document, union, conflicts: compiled.conflicts };
}

/** Whether two documents say the same (the same object, or the same canonical text). */
export function sameDocument(a: RegistriesDDocument, b: RegistriesDDocument): boolean {
  return a === b || documentText(a) === documentText(b);
}

/** Documents are not changed once made, and the same ones are compared again (a document of a
 * few thousand scopes: ~10 ms each time). */
const documentTexts = new WeakMap<RegistriesDDocument, string>();

function documentText(d: RegistriesDDocument): string {
  let text = documentTexts.get(d);
  if (text === undefined) {
    const docker = Object.entries(d.docker ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
    text = JSON.stringify([d["default-docker"] ?? null, docker]);
    documentTexts.set(d, text);
  }
  return text;
}

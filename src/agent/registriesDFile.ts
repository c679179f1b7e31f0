// The node's registries.d file (docs/design.md "Files on the node", registries.d).
//
// The compiler computes which scopes need `use-sigstore-attachments` or a `lookaside`; here the
// agent adapts that document to its node: the same entry for every mirror location of a scope
// that needs sigstore attachments (registries.conf), and no key that another registries.d file on
// the node already defines (a key defined in two files makes containers/image fail every pull on
// the node). What is left out is reported. Pure, except readOtherKeys.

import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { parse, stringify } from "yaml";
import { z } from "zod";
import type { RegistriesDDocument, RegistriesDEntry } from "../compiler/registriesD.ts";
import { mirrorScopes, type RegistryMirrors } from "./registriesConf.ts";

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
  readonly text: string;
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
  return { document, text: registriesDText(document), omitted: omitted.sort(byKey) };
}

function byKey(a: OmittedKey, b: OmittedKey): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export function registriesDText(document: RegistriesDDocument): string {
  return (
    "# Written by imagepolicy-operator's agent; do not edit. Scopes (and their mirrors) that need\n" +
    "# sigstore attachments or a GPG lookaside for cluster.json and <namespace>.json.\n" +
    stringify(document, { sortMapEntries: true, lineWidth: 0 })
  );
}

const entrySchema = z.strictObject({
  "use-sigstore-attachments": z.literal(true).optional(),
  lookaside: z.string().min(1).optional(),
});
const ownSchema = z.strictObject({
  [DEFAULT_DOCKER]: entrySchema.optional(),
  docker: z.record(z.string(), entrySchema).optional(),
});

/** The agent's own file as last written; undefined when it cannot be read back. */
export function parseOwnRegistriesD(text: string): RegistriesDDocument | undefined {
  try {
    const r = ownSchema.safeParse(parse(text) ?? {});
    return r.success ? (r.data as RegistriesDDocument) : undefined;
  } catch {
    return undefined;
  }
}

export class RegistriesDReadError extends Error {
  override readonly name = "RegistriesDReadError";
}

const otherSchema = z
  .object({
    [DEFAULT_DOCKER]: z.unknown().optional(),
    docker: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .loose();

/** Keys defined by every `*.yaml` in `dirs` except `ownFile` (containers/image reads only files
 * ending in `.yaml`). A missing directory has none; an unreadable file throws (the agent cannot
 * know which keys are safe to write). */
export async function readOtherKeys(
  dirs: readonly string[],
  ownFile: string,
): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new RegistriesDReadError(`cannot list ${dir}`, { cause });
    }
    for (const name of names.filter((n) => n.endsWith(".yaml")).sort()) {
      const file = path.join(dir, name);
      if (file === ownFile) continue;
      let doc: unknown;
      try {
        doc = parse(await readFile(file, "utf8")) ?? {};
      } catch (cause) {
        throw new RegistriesDReadError(`cannot read ${file}: ${(cause as Error).message}`, {
          cause,
        });
      }
      const r = otherSchema.safeParse(doc);
      if (!r.success) throw new RegistriesDReadError(`${file} is not a registries.d document`);
      if (r.data[DEFAULT_DOCKER] !== undefined && !keys.has(DEFAULT_DOCKER)) {
        keys.set(DEFAULT_DOCKER, file);
      }
      for (const k of Object.keys(r.data.docker ?? {})) if (!keys.has(k)) keys.set(k, file);
    }
  }
  return keys;
}

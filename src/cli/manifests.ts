// Reads Kubernetes manifests from files and directories: multi-document YAML (or JSON), duplicate
// keys are errors, every document parsed through the one object entry point.

import { readdir, readFile, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseObject } from "../api/parse.ts";
import type { AnyImagePolicy, Secret } from "../api/types.ts";
import type { Diagnostic } from "../compiler/diagnostics.ts";

export class ManifestReadError extends Error {
  override readonly name = "ManifestReadError";
}

export interface Manifests {
  readonly policies: AnyImagePolicy[];
  readonly secrets: Secret[];
  readonly diagnostics: Diagnostic[];
}

const MANIFEST_EXTENSIONS = new Set([".yaml", ".yml", ".json"]);

export async function expand(path: string): Promise<string[]> {
  let s;
  try {
    s = await stat(path);
  } catch (cause) {
    throw new ManifestReadError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  if (!s.isDirectory()) return [path];
  const entries = (await readdir(path)).sort();
  const out: string[] = [];
  for (const e of entries) {
    const p = join(path, e);
    if ((await stat(p)).isDirectory()) out.push(...(await expand(p)));
    else if (MANIFEST_EXTENSIONS.has(extname(e)) && e !== "kustomization.yaml") out.push(p);
  }
  return out;
}

export async function readManifests(paths: readonly string[]): Promise<Manifests> {
  const policies: AnyImagePolicy[] = [];
  const secrets: Secret[] = [];
  const diagnostics: Diagnostic[] = [];
  const files = (await Promise.all(paths.map(expand))).flat();
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (cause) {
      throw new ManifestReadError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
    }
    const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
    for (const doc of Array.isArray(docs) ? docs : [docs]) {
      if (doc.errors.length > 0) {
        throw new ManifestReadError(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      }
      const value: unknown = doc.toJS();
      if (value === null || value === undefined) continue;
      const parsed = parseObject(value);
      if (!parsed.ok) diagnostics.push(...parsed.diagnostics);
      else if (parsed.kind === "policy") policies.push(parsed.policy);
      else if (parsed.kind === "secret") secrets.push(parsed.secret);
    }
  }
  return { policies, secrets, diagnostics };
}

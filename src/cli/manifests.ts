// Reads Kubernetes manifests from files and directories: multi-document YAML (or JSON), duplicate
// keys are errors, every document parsed through the one object entry point.
//
// Two rules keep a hostile input tree from reaching what it should not (docs/security.md):
// - a directory is read without leaving it: a symbolic link inside it whose target lies outside
//   the directory given on the command line is an error, never followed (a link back into the
//   tree is followed once);
// - an error names the file, line and column, never the file's contents (the input may hold key
//   material, and the error lands in CI logs).

import { lstat, readdir, readFile, realpath, stat } from "node:fs/promises";
import { extname, join, relative, isAbsolute } from "node:path";
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

function ioMessage(cause: unknown): string {
  const code = (cause as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "unreadable";
}

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** The manifest files of `path` (a file, or a directory read recursively inside itself). */
export async function expand(path: string): Promise<string[]> {
  let s;
  try {
    s = await stat(path);
  } catch (cause) {
    throw new ManifestReadError(`cannot read ${path}: ${ioMessage(cause)}`, { cause });
  }
  if (!s.isDirectory()) return [path];
  const root = await realpath(path);
  const visited = new Set<string>([root]);
  const walk = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    for (const e of (await readdir(dir)).sort()) {
      const p = join(dir, e);
      const l = await lstat(p);
      let isDirectory = l.isDirectory();
      if (l.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(p);
        } catch (cause) {
          throw new ManifestReadError(`${p}: dangling symbolic link`, { cause });
        }
        if (!inside(root, target)) {
          throw new ManifestReadError(
            `${p}: symbolic link to outside ${path} (not followed: only files inside the input tree are read)`,
          );
        }
        isDirectory = (await stat(target)).isDirectory();
        if (isDirectory) {
          if (visited.has(target)) continue;
          visited.add(target);
        }
      } else if (isDirectory) {
        const real = await realpath(p);
        if (visited.has(real)) continue;
        visited.add(real);
      }
      if (isDirectory) out.push(...(await walk(p)));
      else if ((l.isFile() || l.isSymbolicLink()) && MANIFEST_EXTENSIONS.has(extname(e))) {
        if (e !== "kustomization.yaml") out.push(p);
      }
    }
    return out;
  };
  return walk(path);
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
      throw new ManifestReadError(`cannot read ${file}: ${ioMessage(cause)}`, { cause });
    }
    // prettyErrors off: the library would quote the offending lines.
    const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
    for (const doc of Array.isArray(docs) ? docs : [docs]) {
      if (doc.errors.length > 0) {
        const where = doc.errors.map((e) => {
          const before = text.slice(0, e.pos[0]);
          const line = before.split("\n").length;
          const col = e.pos[0] - before.lastIndexOf("\n");
          return `line ${line}, column ${col}: ${e.code}`;
        });
        throw new ManifestReadError(`${file}: not valid YAML: ${where.join("; ")}`);
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

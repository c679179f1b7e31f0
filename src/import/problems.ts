// What the import says about its input: refusals (the object is not converted) and warnings (it
// is, with a difference in meaning the user should know). Both name the source object as the
// user wrote it: apiVersion, kind, name.

import type { z } from "zod";

export interface SourceRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

export interface ImportProblem {
  readonly source: SourceRef;
  /** Field path in the source object, like `spec.authorities[1].keyless.identities[0]`. */
  readonly field: string;
  readonly message: string;
}

export interface ImportWarning {
  readonly source: SourceRef;
  readonly message: string;
}

export function describeSource(s: SourceRef): string {
  const name = s.namespace === undefined ? s.name : `${s.namespace}/${s.name}`;
  return `${s.apiVersion} ${s.kind} ${name}`;
}

export function formatProblem(p: ImportProblem): string {
  return `${describeSource(p.source)}: ${p.field}: ${p.message}`;
}

export function formatWarning(w: ImportWarning): string {
  return `${describeSource(w.source)}: ${w.message}`;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "." : out;
}

/** One problem per schema issue, at the issue's path. */
export function schemaProblems(source: SourceRef, error: z.ZodError): ImportProblem[] {
  return error.issues.map((i) => ({
    source,
    field: fieldPath(i.path),
    message: i.message,
  }));
}

function field(v: unknown, key: string): unknown {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? (v as Readonly<Record<string, unknown>>)[key]
    : undefined;
}

/** The identity of a document that may not parse: what it says about itself, or placeholders. */
export function sourceOf(v: unknown): SourceRef {
  const md = field(v, "metadata");
  const str = (x: unknown, fallback: string): string => (typeof x === "string" ? x : fallback);
  const namespace = field(md, "namespace");
  return {
    apiVersion: str(field(v, "apiVersion"), "<no apiVersion>"),
    kind: str(field(v, "kind"), "<no kind>"),
    name: str(field(md, "name"), "<unnamed>"),
    ...(typeof namespace === "string" ? { namespace } : {}),
  };
}

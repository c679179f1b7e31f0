// One entry point for policy objects and Secrets from any source (files, the API server):
// unknown input in, typed objects or diagnostics out.

import type { z } from "zod";
import type { Diagnostic } from "../compiler/diagnostics.ts";
import {
  clusterImagePolicySchema,
  imagePolicySchema,
  secretSchema,
  type AnyImagePolicy,
  type ObjectRef,
  type Secret,
} from "./types.ts";

export type ParsedObject =
  | { ok: true; kind: "policy"; policy: AnyImagePolicy }
  | { ok: true; kind: "secret"; secret: Secret }
  | { ok: true; kind: "ignored"; description: string }
  | { ok: false; diagnostics: Diagnostic[] };

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "." : out;
}

function issues(ref: ObjectRef, error: z.ZodError): Diagnostic[] {
  return error.issues.map((i) => ({
    object: ref,
    field: formatPath(i.path),
    reason: "Invalid",
    message: i.message,
  }));
}

function field(v: unknown, key: string): unknown {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>)[key] : undefined;
}

function refGuess(kind: ObjectRef["kind"], v: unknown): ObjectRef {
  const md = field(v, "metadata");
  const name = field(md, "name");
  const namespace = field(md, "namespace");
  return {
    kind,
    name: typeof name === "string" ? name : "<unnamed>",
    ...(typeof namespace === "string" ? { namespace } : {}),
  };
}

/** Parses one Kubernetes object. Kinds other than the two policies and Secret are ignored (a
 * manifest directory may hold Namespaces, kustomizations, ...). */
export function parseObject(v: unknown): ParsedObject {
  const kind = field(v, "kind");
  const apiVersion = field(v, "apiVersion");
  if (kind === "ClusterImagePolicy" || kind === "ImagePolicy") {
    const schema = kind === "ClusterImagePolicy" ? clusterImagePolicySchema : imagePolicySchema;
    const r = schema.safeParse(v);
    return r.success
      ? { ok: true, kind: "policy", policy: r.data }
      : { ok: false, diagnostics: issues(refGuess(kind, v), r.error) };
  }
  if (kind === "Secret" && apiVersion === "v1") {
    const r = secretSchema.safeParse(v);
    return r.success
      ? { ok: true, kind: "secret", secret: r.data }
      : { ok: false, diagnostics: issues(refGuess("Secret", v), r.error) };
  }
  return { ok: true, kind: "ignored", description: `${String(apiVersion)}/${String(kind)}` };
}

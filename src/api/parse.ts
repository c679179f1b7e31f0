// One entry point for policy objects and Secrets from any source (files, the API server):
// unknown input in, typed objects or diagnostics out. A policy object is checked exactly as the
// API server checks a create against the CRDs (src/api/schema.ts `check`, over the definition in
// src/api/policy.ts), so that the CLI refuses what `kubectl apply` would, with the same field
// paths and messages, and the controller has a second gate for objects admitted under an older CRD.

import type { Diagnostic } from "../compiler/diagnostics.ts";
import { clusterImagePolicy, imagePolicy, imagePolicyNodeStatus } from "./policy.ts";
import { check, isJsonObject, toJson, type FieldError, type Node } from "./schema.ts";
import { secretSchema, type AnyImagePolicy, type ObjectRef, type Secret } from "./types.ts";

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
  return out;
}

function field(v: unknown, key: string): unknown {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  return Object.getOwnPropertyDescriptor(v, key)?.value;
}

function refGuess(kind: ObjectRef["kind"], v: unknown): ObjectRef {
  const md = field(v, "metadata");
  const name = field(md, "name");
  const namespace = field(md, "namespace");
  return {
    kind,
    name: typeof name === "string" ? name : "<unnamed>",
    ...(typeof namespace === "string" && kind !== "ClusterImagePolicy" ? { namespace } : {}),
  };
}

function toDiagnostic(object: ObjectRef, e: FieldError): Diagnostic {
  return { object, field: e.field, reason: "Invalid", message: e.detail, admission: e.type };
}

/** The admission verdict on one object of this API. */
function admit<T>(
  root: Node<T>,
  kind: ObjectRef["kind"],
  v: unknown,
): { ok: true; value: T } | { ok: false; diagnostics: Diagnostic[] } {
  const ref = refGuess(kind, v);
  const json = toJson(v);
  if (json === undefined || !isJsonObject(json)) {
    return {
      ok: false,
      diagnostics: [
        {
          object: ref,
          field: "",
          reason: "Invalid",
          message: "not a JSON object",
          admission: "TypeInvalid",
        },
      ],
    };
  }
  const r = check(root, json);
  return r.ok
    ? { ok: true, value: r.value }
    : { ok: false, diagnostics: r.errors.map((e) => toDiagnostic(ref, e)) };
}

/** Parses one Kubernetes object. Kinds other than the two policies and Secret are ignored (a
 * manifest directory may hold Namespaces, kustomizations, ...); ImagePolicyNodeStatus objects are
 * checked, then ignored. */
export function parseObject(v: unknown): ParsedObject {
  const kind = field(v, "kind");
  const apiVersion = field(v, "apiVersion");
  if (kind === "ClusterImagePolicy") {
    const r = admit(clusterImagePolicy, kind, v);
    return r.ok ? { ok: true, kind: "policy", policy: r.value } : r;
  }
  if (kind === "ImagePolicy") {
    const r = admit(imagePolicy, kind, v);
    return r.ok ? { ok: true, kind: "policy", policy: r.value } : r;
  }
  if (kind === "ImagePolicyNodeStatus") {
    const r = admit(imagePolicyNodeStatus, kind, v);
    return r.ok ? { ok: true, kind: "ignored", description: `${String(apiVersion)}/${kind}` } : r;
  }
  if (kind === "Secret" && apiVersion === "v1") {
    const r = secretSchema.safeParse(v);
    return r.success
      ? { ok: true, kind: "secret", secret: r.data }
      : {
          ok: false,
          diagnostics: r.error.issues.map((i) => ({
            object: refGuess("Secret", v),
            field: formatPath(i.path),
            reason: "Invalid",
            message: i.message,
          })),
        };
  }
  return { ok: true, kind: "ignored", description: `${String(apiVersion)}/${String(kind)}` };
}

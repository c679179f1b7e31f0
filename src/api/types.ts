// API types as users write them: ClusterImagePolicy and ImagePolicy (imagepolicy.dev/v1alpha1),
// inferred from the API's single definition (src/api/policy.ts), from which the CRDs in crds/ are
// rendered too. Unions are discriminated unions: `rootOfTrust.policyType` selects which block
// exists, `signedIdentity.matchPolicy` likewise, and a key source has exactly one of keyData and
// keySecretRef, so that code reading a parsed object narrows instead of re-checking presence.

import { z } from "zod";
import { API_VERSION, GROUP, VERSION, clusterImagePolicy, imagePolicy } from "./policy.ts";
import { check, toJson, type Node } from "./schema.ts";

export { API_VERSION, GROUP, VERSION };

export type ClusterImagePolicy = z.infer<typeof clusterImagePolicy.zod>;
export type ImagePolicy = z.infer<typeof imagePolicy.zod>;
export type AnyImagePolicy = ClusterImagePolicy | ImagePolicy;
export type PolicySpec = ClusterImagePolicy["spec"] | ImagePolicy["spec"];
export type RootOfTrust = PolicySpec["policy"]["rootOfTrust"];
export type SignedIdentitySpec = NonNullable<PolicySpec["policy"]["signedIdentity"]>;
export type KeySecretRef = { name: string; namespace?: string; key: string };

const name253 = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
const name63 = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);

/** A core/v1 Secret, as far as policies read one: Kubernetes validates it, not this API. */
export const secretSchema = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: z.looseObject({ name: name253, namespace: name63.optional() }),
  data: z.record(z.string(), z.base64()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});
export type Secret = z.infer<typeof secretSchema>;

/** The identity of an object in diagnostics, layers, plans and statuses: the one ObjectRef. A
 * policy object's is made only by policyRef (and refOf, refOfObject, which call it). */
export interface ObjectRef {
  readonly kind: "ClusterImagePolicy" | "ImagePolicy" | "ImagePolicyNodeStatus" | "Secret";
  readonly name: string;
  readonly namespace?: string;
}

/** The ref of a policy object: with a namespace an ImagePolicy (of that namespace's layer),
 * without one a ClusterImagePolicy (of the cluster layer). The two kinds differ in scope only, so
 * the layer a policy sits in names its kind. */
export function policyRef(name: string, namespace: string | undefined): ObjectRef {
  return namespace === undefined
    ? { kind: "ClusterImagePolicy", name }
    : { kind: "ImagePolicy", name, namespace };
}

export function refOf(o: AnyImagePolicy): ObjectRef {
  return policyRef(o.metadata.name, o.kind === "ImagePolicy" ? o.metadata.namespace : undefined);
}

/** The ref of a policy object as the API server serves it, before it is parsed (its kind and
 * metadata alone): what a refused object is still known by. Undefined for anything else. */
export function refOfObject(v: unknown): ObjectRef | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const kind: unknown = Reflect.get(v, "kind");
  const metadata: unknown = Reflect.get(v, "metadata");
  if (typeof metadata !== "object" || metadata === null) return undefined;
  const name: unknown = Reflect.get(metadata, "name");
  const namespace: unknown = Reflect.get(metadata, "namespace");
  if (typeof name !== "string") return undefined;
  if (kind === "ClusterImagePolicy") return policyRef(name, undefined);
  if (kind === "ImagePolicy" && typeof namespace === "string") return policyRef(name, namespace);
  return undefined;
}

/** One string per object, for maps and work-queue keys: `ClusterImagePolicy//a`,
 * `ImagePolicy/team/b`. */
export function refKey(ref: ObjectRef): string {
  return `${ref.kind}/${ref.namespace ?? ""}/${ref.name}`;
}

export function describeRef(r: ObjectRef): string {
  return r.namespace === undefined ? `${r.kind}/${r.name}` : `${r.kind} ${r.namespace}/${r.name}`;
}

/** A zod face of a resource's parser (`safeParse`, failing with a ZodError whose issues carry the
 * API server's field paths and messages), for callers that only need a verdict. */
export interface SafeParser<T> {
  safeParse(v: unknown): { success: true; data: T } | { success: false; error: z.ZodError };
}

/** "spec.scopes[0]" -> ["spec", "scopes", 0]. */
function pathOf(field: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of field.split(".")) {
    if (part === "") continue;
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null) {
      out.push(part);
      continue;
    }
    if (m[1] !== undefined && m[1] !== "") out.push(m[1]);
    for (const i of (m[2] ?? "").matchAll(/\[(\d+)\]/g)) out.push(Number(i[1]));
  }
  return out;
}

function safeParser<T>(root: Node<T>): SafeParser<T> {
  return {
    safeParse(v) {
      const json = toJson(v);
      const r = json === undefined ? undefined : check(root, json);
      if (r?.ok === true) return { success: true, data: r.value };
      const errors = r === undefined ? [{ field: "", detail: "not a JSON value" }] : r.errors;
      return {
        success: false,
        error: new z.ZodError(
          errors.map((e) => ({
            code: "custom",
            path: pathOf(e.field),
            message: e.detail,
            input: v,
          })),
        ),
      };
    },
  };
}

export const clusterImagePolicySchema = safeParser(clusterImagePolicy);
export const imagePolicySchema = safeParser(imagePolicy);

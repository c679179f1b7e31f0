// A custom resource as the API server handles a create: the root object with apiVersion, kind,
// metadata (Kubernetes' ObjectMeta, validated by the API server itself, not by the CRD schema),
// spec (the schema of src/api/policy.ts) and status (in the schema, but dropped from a create when
// the status subresource is on, so never validated here), plus the rules at the resource root.

import { z } from "zod";
import { DNS1123_LABEL_REGEX, DNS1123_SUBDOMAIN_REGEX, regex } from "./patterns.ts";
import {
  Node,
  OMIT,
  child,
  fieldError,
  isJsonObject,
  own,
  type FieldError,
  type Json,
  type JsonObject,
  type OpenApi,
  type Rule,
} from "./schema.ts";

/** The JSON fields of metav1.ObjectMeta: any other key under metadata is an unknown field. */
const OBJECT_META_FIELDS = new Set([
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
]);

/** metadata of a cluster-scoped object. */
export const clusterObjectMeta = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
/** metadata of a namespaced object: the CLI needs the namespace in the file (kubectl would take
 * it from the kubeconfig or -n). */
export const namespacedObjectMeta = clusterObjectMeta.extend({ namespace: z.string() });

const SUBDOMAIN = regex(DNS1123_SUBDOMAIN_REGEX);
const LABEL_RE = regex(`^(?=.{1,63}$)${DNS1123_LABEL_REGEX.slice(1)}`);
const SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for " +
  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/** What the API server checks of metadata on a create (apimachinery ValidateObjectMeta with
 * NameIsDNSSubdomain): the name, and the types of the fields this project reads. */
function objectMetaErrors(v: Json | undefined, namespaced: boolean, out: FieldError[]): void {
  const path = "metadata";
  const md = v === undefined || v === null ? {} : v;
  if (!isJsonObject(md)) {
    out.push(fieldError("TypeInvalid", path, OMIT, "metadata must be an object"));
    return;
  }
  const name = own(md, "name");
  const generateName = own(md, "generateName");
  if (name === undefined || name === null || name === "") {
    if (typeof generateName !== "string" || generateName === "") {
      out.push(
        fieldError("Required", child(path, "name"), OMIT, "name or generateName is required"),
      );
    }
  } else if (typeof name !== "string") {
    out.push(fieldError("TypeInvalid", child(path, "name"), OMIT, "name must be a string"));
  } else {
    if (name.length > 253) {
      out.push(
        fieldError("Invalid", child(path, "name"), name, "must be no more than 253 characters"),
      );
    }
    if (!SUBDOMAIN.test(name)) {
      out.push(fieldError("Invalid", child(path, "name"), name, SUBDOMAIN_MESSAGE));
    }
  }
  if (namespaced) {
    const ns = own(md, "namespace");
    if (typeof ns !== "string" || ns === "") {
      out.push(
        fieldError(
          "Required",
          child(path, "namespace"),
          OMIT,
          "the namespace must be in the manifest: no kubeconfig supplies it offline",
        ),
      );
    } else if (!LABEL_RE.test(ns)) {
      out.push(
        fieldError(
          "Invalid",
          child(path, "namespace"),
          ns,
          "a namespace must be a lowercase RFC 1123 label",
        ),
      );
    }
  }
  for (const key of ["labels", "annotations"]) {
    const m = own(md, key);
    if (m === undefined || m === null) continue;
    if (!isJsonObject(m) || Object.values(m).some((x) => typeof x !== "string")) {
      out.push(
        fieldError("TypeInvalid", child(path, key), OMIT, `${key} must map strings to strings`),
      );
    }
  }
  const generation = own(md, "generation");
  if (generation !== undefined && generation !== null && !Number.isInteger(generation)) {
    out.push(
      fieldError("TypeInvalid", child(path, "generation"), OMIT, "generation must be an integer"),
    );
  }
}

const ROOT_FIELDS = new Set(["apiVersion", "kind", "metadata", "spec", "status"]);

export interface ResourceOptions<K extends string, M, S> {
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: z.ZodType<M>;
  readonly namespaced: boolean;
  readonly spec: Node<S>;
  readonly status: Node<unknown>;
  readonly rules?: readonly Rule<JsonObject>[];
}

export type Resource<K extends string, M, S> = {
  apiVersion: string;
  kind: K;
  metadata: M;
  spec: S;
  [key: string]: unknown;
};

export class ResourceNode<K extends string, M, S> extends Node<Resource<K, M, S>> {
  readonly zod: z.ZodType<Resource<K, M, S>>;
  readonly #o: ResourceOptions<K, M, S>;
  constructor(o: ResourceOptions<K, M, S>) {
    super();
    this.#o = o;
    this.zod = z.looseObject({
      apiVersion: z.string(),
      kind: z.literal(o.kind),
      metadata: o.metadata,
      spec: o.spec.zod,
    });
  }
  get kind(): K {
    return this.#o.kind;
  }
  openapi(): OpenApi {
    const s: OpenApi = {
      type: "object",
      required: ["spec"],
      properties: {
        apiVersion: {
          type: "string",
          description: `APIVersion is the versioned schema of this object, ${this.#o.apiVersion}.`,
          maxLength: 253,
        },
        kind: {
          type: "string",
          description: "Kind is the REST resource this object represents.",
          maxLength: 63,
        },
        // The API server allows nothing but `type: object` here (not even a description).
        metadata: { type: "object" },
        spec: this.#o.spec.openapi(),
        status: this.#o.status.openapi(),
      },
    };
    const rules = this.#o.rules ?? [];
    if (rules.length > 0) {
      s["x-kubernetes-validations"] = rules.map((r) => ({ rule: r.rule, message: r.message }));
    }
    return s;
  }
  override unknownFields(v: Json, path: string, out: string[]): void {
    if (!isJsonObject(v)) return;
    for (const k of Object.keys(v)) {
      if (!ROOT_FIELDS.has(k)) out.push(child(path, k));
    }
    const md = own(v, "metadata");
    if (isJsonObject(md)) {
      for (const k of Object.keys(md)) {
        if (!OBJECT_META_FIELDS.has(k)) out.push(child("metadata", k));
      }
    }
    const spec = own(v, "spec");
    const status = own(v, "status");
    if (spec !== undefined) this.#o.spec.unknownFields(spec, "spec", out);
    if (status !== undefined) this.#o.status.unknownFields(status, "status", out);
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (!isJsonObject(v)) {
      out.push(fieldError("TypeInvalid", path, OMIT, "the object must be a JSON object"));
      return;
    }
    const apiVersion = own(v, "apiVersion");
    if (apiVersion !== this.#o.apiVersion) {
      out.push(
        fieldError("Invalid", "apiVersion", apiVersion ?? null, `must be ${this.#o.apiVersion}`),
      );
    }
    objectMetaErrors(own(v, "metadata"), this.#o.namespaced, out);
    const spec = own(v, "spec");
    if (spec === undefined || spec === null) out.push(fieldError("Required", "spec", OMIT, ""));
    else this.#o.spec.schemaErrors(spec, "spec", out);
  }
  ruleErrors(v: Json, _path: string, out: FieldError[]): void {
    if (!isJsonObject(v)) return;
    const spec = own(v, "spec");
    if (spec !== undefined && spec !== null) this.#o.spec.ruleErrors(spec, "spec", out);
    for (const r of this.#o.rules ?? []) {
      if (!r.holds(v)) out.push(fieldError("Invalid", "", OMIT, r.message, r.rule));
    }
  }
  allRules(): readonly string[] {
    return [...this.#o.spec.allRules(), ...(this.#o.rules ?? []).map((r) => r.rule)];
  }
}

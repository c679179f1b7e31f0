// `imagepolicy import` without the I/O (pure): parsed input documents in; this project's objects,
// per-object refusals, warnings and the Secrets to copy out.
//
// 1. Every document is classified: policy-controller ClusterImagePolicies, OpenShift
//    ClusterImagePolicies and ImagePolicies are converted one by one (policyController.ts,
//    openshift.ts); Secrets and policy-controller's `config-policy-controller` ConfigMap are read
//    as inputs to that; every other kind is ignored and counted.
// 2. The converted policy-controller policies get the scopes that keep their AND (preserveAnd.ts),
//    and, when policy-controller denied images that no policy matches, a `*` Reject policy.
// 3. Every output object passes this project's parser and validation (the compile path) before
//    it is returned; a failure there is a refusal of its source object, never a partial object.
// 4. All or nothing: with any refusal no object is returned unless `partial` is set.

import {
  clusterImagePolicySchema,
  imagePolicySchema,
  type AnyImagePolicy,
  type ClusterImagePolicy,
} from "../api/types.ts";
import { LATEST_KNOWN } from "../compiler/crioVersion.ts";
import { validatePolicy, type SecretLookup } from "../compiler/validate.ts";
import {
  schemaProblems,
  sourceOf,
  type ImportProblem,
  type ImportWarning,
  type SourceRef,
} from "./problems.ts";
import {
  convertOpenShift,
  isOpenShift,
  nestedScopeWarnings,
  type ConvertedOpenShift,
} from "./openshift.ts";
import {
  convertPolicyController,
  isPolicyController,
  POLICY_CONTROLLER_GROUP,
  POLICY_CONTROLLER_VERSIONS,
  type ConvertedPolicy,
  type InputSecret,
  type PolicyControllerOptions,
  type SecretCopy,
} from "./policyController.ts";
import { preserveAnd } from "./preserveAnd.ts";
import { z } from "zod";

export const IMPORTED_FROM_ANNOTATION = "imagepolicy.dev/imported-from";
export const NO_MATCH_POLICY_NAME = "policy-controller-no-match";
const NO_MATCH_CONFIGMAP = "config-policy-controller";
const MAX_SCOPES = 256;

export type NoMatchPolicy = "allow" | "deny";

export interface ImportOptions extends Omit<PolicyControllerOptions, "secret"> {
  /** From the command line; undefined: from the input's config-policy-controller ConfigMap, else
   * policy-controller's default, deny. */
  readonly noMatchPolicy: NoMatchPolicy | undefined;
  /** Return the converted objects even when others were refused. */
  readonly partial: boolean;
}

export interface ImportResult {
  /** ClusterImagePolicies by name, then ImagePolicies by namespace and name. */
  readonly objects: readonly AnyImagePolicy[];
  readonly problems: readonly ImportProblem[];
  readonly warnings: readonly ImportWarning[];
  /** About the run as a whole. */
  readonly notes: readonly string[];
  /** The Secrets to copy for the objects returned. */
  readonly secretCopies: readonly SecretCopy[];
  /** `apiVersion/kind` of every ignored document, with counts. */
  readonly ignored: readonly string[];
}

function field(v: unknown, key: string): unknown {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? (v as Readonly<Record<string, unknown>>)[key]
    : undefined;
}

/** `kind: List` and `kind: XList` (what `kubectl get -o yaml` prints) become their items. */
function flatten(docs: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const d of docs) {
    const kind = field(d, "kind");
    const items = field(d, "items");
    if (typeof kind === "string" && kind.endsWith("List") && Array.isArray(items)) {
      out.push(...flatten(items));
    } else {
      out.push(d);
    }
  }
  return out;
}

const secretSchema = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: z.looseObject({ name: z.string().min(1), namespace: z.string().min(1).optional() }),
  data: z.record(z.string(), z.base64()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});

const configMapSchema = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("ConfigMap"),
  metadata: z.looseObject({ name: z.string(), namespace: z.string().optional() }),
  data: z.record(z.string(), z.string()).optional(),
});

interface Classified {
  readonly policyController: {
    value: unknown;
    version: (typeof POLICY_CONTROLLER_VERSIONS)[number];
  }[];
  readonly openShift: { value: unknown; kind: "ClusterImagePolicy" | "ImagePolicy" }[];
  readonly secrets: InputSecret[];
  readonly noMatch: { value: string; source: SourceRef } | undefined;
  readonly problems: ImportProblem[];
  readonly ignored: Map<string, number>;
}

function classify(docs: readonly unknown[], opts: ImportOptions): Classified {
  const c: Classified = {
    policyController: [],
    openShift: [],
    secrets: [],
    noMatch: undefined,
    problems: [],
    ignored: new Map(),
  };
  let noMatch: Classified["noMatch"];
  for (const doc of flatten(docs)) {
    if (doc === null || doc === undefined) continue;
    const apiVersion = field(doc, "apiVersion");
    const kind = field(doc, "kind");
    if (isPolicyController(apiVersion, kind)) {
      const version = POLICY_CONTROLLER_VERSIONS.find(
        (v) => apiVersion === `${POLICY_CONTROLLER_GROUP}/${v}`,
      );
      if (version === undefined) {
        c.problems.push({
          source: sourceOf(doc),
          field: "apiVersion",
          message: `unknown policy-controller version; the import reads ${POLICY_CONTROLLER_VERSIONS.map((v) => `${POLICY_CONTROLLER_GROUP}/${v}`).join(" and ")}`,
        });
      } else {
        c.policyController.push({ value: doc, version });
      }
      continue;
    }
    if (isOpenShift(apiVersion, kind)) {
      c.openShift.push({
        value: doc,
        kind: kind === "ImagePolicy" ? "ImagePolicy" : "ClusterImagePolicy",
      });
      continue;
    }
    if (apiVersion === "v1" && kind === "Secret") {
      const s = secretSchema.safeParse(doc);
      if (!s.success) {
        c.problems.push(...schemaProblems(sourceOf(doc), s.error));
        continue;
      }
      const data: Record<string, string> = { ...s.data.data };
      for (const [k, v] of Object.entries(s.data.stringData ?? {})) {
        data[k] = Buffer.from(v, "utf8").toString("base64");
      }
      c.secrets.push({
        namespace: s.data.metadata.namespace ?? "default",
        name: s.data.metadata.name,
        data,
      });
      continue;
    }
    if (apiVersion === "v1" && kind === "ConfigMap") {
      const m = configMapSchema.safeParse(doc);
      if (
        m.success &&
        m.data.metadata.name === NO_MATCH_CONFIGMAP &&
        (m.data.metadata.namespace ?? opts.policyControllerNamespace) ===
          opts.policyControllerNamespace
      ) {
        const value = m.data.data?.["no-match-policy"];
        if (value !== undefined) noMatch = { value, source: sourceOf(doc) };
        continue;
      }
    }
    const key = `${String(apiVersion)}/${String(kind)}`;
    c.ignored.set(key, (c.ignored.get(key) ?? 0) + 1);
  }
  return { ...c, noMatch };
}

function noMatchPolicy(
  c: Classified,
  opts: ImportOptions,
  problems: ImportProblem[],
  notes: string[],
): NoMatchPolicy {
  if (opts.noMatchPolicy !== undefined) return opts.noMatchPolicy;
  const fromInput = c.noMatch;
  if (fromInput === undefined) {
    notes.push(
      `no ${NO_MATCH_CONFIGMAP} ConfigMap with no-match-policy in the input: using policy-controller's default, deny (--no-match-policy allow|deny to choose)`,
    );
    return "deny";
  }
  if (fromInput.value === "allow" || fromInput.value === "deny") return fromInput.value;
  problems.push({
    source: fromInput.source,
    field: 'data["no-match-policy"]',
    message:
      fromInput.value === "warn"
        ? "warn admits unmatched images and only reports them; policy.json accepts or refuses: re-run with --no-match-policy allow (what warn admits) or deny"
        : `unknown value ${JSON.stringify(fromInput.value)}; re-run with --no-match-policy allow or deny`,
  });
  return "deny";
}

function metadataFor(
  source: SourceRef,
  name: string,
  namespace?: string,
): { name: string; namespace?: string; annotations: Record<string, string> } {
  return {
    name,
    ...(namespace === undefined ? {} : { namespace }),
    annotations: { [IMPORTED_FROM_ANNOTATION]: `${source.apiVersion} ${source.kind}` },
  };
}

const scopeText = (s: string): string => (s === "" ? "*" : s);

interface Output {
  readonly source: SourceRef;
  readonly object: AnyImagePolicy;
  /** Secrets referenced that were not in the input: not found at validation, by design. */
  readonly unseenSecrets: ReadonlySet<string>;
  /** The Secrets the user must copy for it. */
  readonly copies: readonly SecretCopy[];
}

function compareOutput(a: AnyImagePolicy, b: AnyImagePolicy): number {
  const key = (o: AnyImagePolicy): string =>
    `${o.kind === "ClusterImagePolicy" ? "0" : "1"}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
  const ka = key(a);
  const kb = key(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function convertedSchemaProblems(
  source: SourceRef,
  error: Parameters<typeof schemaProblems>[1],
): ImportProblem[] {
  return schemaProblems(source, error).map((p) => ({
    ...p,
    field: `(converted) ${p.field}`,
    message: `the converted object fails this project's schema: ${p.message}`,
  }));
}

/** Runs the output through this project's parser and validation, as `imagepolicy compile` would. */
function validateOutput(out: Output, secrets: SecretLookup): ImportProblem[] {
  const schema =
    out.object.kind === "ClusterImagePolicy" ? clusterImagePolicySchema : imagePolicySchema;
  const parsed = schema.safeParse(out.object);
  if (!parsed.success) return convertedSchemaProblems(out.source, parsed.error);
  const compiled = validatePolicy(parsed.data, secrets, LATEST_KNOWN);
  if (compiled.ok) return [];
  // A Secret that was not in the input is checked by the controller once the user copies it.
  const unseen = (message: string): boolean =>
    [...out.unseenSecrets].some((s) => message.startsWith(`Secret ${s} `));
  return compiled.diagnostics
    .filter((d) => !(d.reason === "SecretNotFound" && unseen(d.message)))
    .map((d) => ({
      source: out.source,
      field: `(converted) ${d.field}`,
      message: `the converted object fails this project's validation: ${d.message}`,
    }));
}

export function importObjects(docs: readonly unknown[], opts: ImportOptions): ImportResult {
  const c = classify(docs, opts);
  const problems: ImportProblem[] = [...c.problems];
  const warnings: ImportWarning[] = [];
  const notes: string[] = [];
  const secretIndex = new Map(c.secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  const pcOpts: PolicyControllerOptions = {
    ...opts,
    secret: (ns, name) => secretIndex.get(`${ns}/${name}`),
  };

  const pc: ConvertedPolicy[] = [];
  for (const { value, version } of c.policyController) {
    const r = convertPolicyController(value, version, pcOpts);
    if (r.ok) pc.push(r.converted);
    else problems.push(...r.problems);
  }
  const os: ConvertedOpenShift[] = [];
  for (const { value, kind } of c.openShift) {
    const r = convertOpenShift(value, kind);
    if (r.ok) os.push(r.converted);
    else problems.push(...r.problems);
  }

  const outputs: Output[] = [];
  const secretCopies: SecretCopy[] = [];
  const preservedAll = preserveAnd(pc);
  for (const [i, p] of pc.entries()) {
    const preserved = preservedAll[i];
    if (preserved === undefined) continue;
    for (const w of p.warnings) warnings.push({ source: p.source, message: w });
    for (const a of preserved.added) {
      warnings.push({
        source: p.source,
        message: `scope ${scopeText(a.scope)} added (a scope of ${a.from.join(", ")}, under one of this policy's): policy-controller requires every matching policy, so this one must apply there too`,
      });
    }
    if (preserved.scopes.length > MAX_SCOPES) {
      problems.push({
        source: p.source,
        field: "spec.images",
        message: `${preserved.scopes.length} scopes with those of nested policies; a policy holds at most ${MAX_SCOPES}`,
      });
      continue;
    }
    secretCopies.push(...p.secretCopies);
    const object: ClusterImagePolicy = {
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ClusterImagePolicy",
      metadata: metadataFor(p.source, p.name),
      spec: { scopes: preserved.scopes.map(scopeText), policy: p.policy },
    };
    const unseen = new Set(
      p.secretCopies.filter((s) => !s.seen).map((s) => `${s.toNamespace}/${s.name}`),
    );
    outputs.push({ source: p.source, object, unseenSecrets: unseen, copies: p.secretCopies });
  }

  if (c.policyController.length > 0) {
    notes.push(
      "policy-controller checked pods only in namespaces labelled policy.sigstore.dev/include=true; these ClusterImagePolicies apply to every pull on every node, in every namespace",
      "policy-controller checked that a signature covers the image digest; policy.json also checks the repository the signature names (MatchRepository): images copied to another repository need their own signatures",
    );
    const noMatch = noMatchPolicy(c, opts, problems, notes);
    const everything = pc.some((p) => p.scopes.includes(""));
    if (noMatch === "deny" && !everything) {
      const source: SourceRef = {
        apiVersion: "v1",
        kind: "ConfigMap",
        name: NO_MATCH_CONFIGMAP,
        namespace: opts.policyControllerNamespace,
      };
      const object: ClusterImagePolicy = {
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ClusterImagePolicy",
        metadata: metadataFor(source, NO_MATCH_POLICY_NAME),
        spec: { scopes: ["*"], policy: { rootOfTrust: { policyType: "Reject" } } },
      };
      outputs.push({ source, object, unseenSecrets: new Set(), copies: [] });
      notes.push(
        `no-match-policy deny: ClusterImagePolicy ${NO_MATCH_POLICY_NAME} refuses every image that no imported policy covers, in every namespace; add policies for the images your nodes and system namespaces pull (the pause image, kube-system) before applying it`,
      );
    }
  }

  for (const o of os) {
    // The OpenShift spec is carried over as it is; the API's parser types it (its unions are
    // discriminated), and refuses what this project's API refuses (docs/api.md).
    const parsed =
      o.kind === "ClusterImagePolicy"
        ? clusterImagePolicySchema.safeParse({
            apiVersion: "imagepolicy.dev/v1alpha1",
            kind: "ClusterImagePolicy",
            metadata: metadataFor(o.source, o.name),
            spec: o.spec,
          })
        : imagePolicySchema.safeParse({
            apiVersion: "imagepolicy.dev/v1alpha1",
            kind: "ImagePolicy",
            metadata: {
              ...metadataFor(o.source, o.name, o.namespace),
              namespace: o.namespace ?? "",
            },
            spec: o.spec,
          });
    if (!parsed.success) {
      problems.push(...convertedSchemaProblems(o.source, parsed.error));
      continue;
    }
    outputs.push({ source: o.source, object: parsed.data, unseenSecrets: new Set(), copies: [] });
  }
  for (const w of nestedScopeWarnings(os)) warnings.push(w);
  if (os.some((o) => o.kind === "ImagePolicy")) {
    notes.push(
      "OpenShift ignores an ImagePolicy scope equal to or under a ClusterImagePolicy scope; here the ImagePolicy adds its requirements there: warnings name such scopes among the objects read, check the ClusterImagePolicies not given with -f too",
    );
  }

  // Two sources may not become one object.
  const byKey = new Map<string, Output[]>();
  for (const o of outputs) {
    const key = `${o.object.kind}/${o.object.metadata.namespace ?? ""}/${o.object.metadata.name}`;
    byKey.set(key, [...(byKey.get(key) ?? []), o]);
  }
  const unique: Output[] = [];
  for (const group of byKey.values()) {
    const [only] = group;
    if (only !== undefined && group.length === 1) {
      unique.push(only);
      continue;
    }
    for (const o of group) {
      problems.push({
        source: o.source,
        field: "metadata.name",
        message: `${group.length} input objects would become ${o.object.kind} ${o.object.metadata.name}; rename all but one`,
      });
    }
  }

  const lookup: SecretLookup = (namespace, name, key) => {
    for (const copy of secretCopies) {
      if (copy.toNamespace === namespace && copy.name === name && copy.seen) {
        return secretIndex.get(`${copy.fromNamespace}/${copy.name}`)?.data[key];
      }
    }
    return undefined;
  };
  const valid: AnyImagePolicy[] = [];
  const copies = new Map<string, SecretCopy>();
  for (const o of unique) {
    const found = validateOutput(o, lookup);
    problems.push(...found);
    if (found.length > 0) continue;
    valid.push(o.object);
    for (const s of o.copies)
      copies.set(`${s.fromNamespace}/${s.name}/${s.toNamespace}/${s.key}`, s);
  }

  const written = problems.length > 0 && !opts.partial ? [] : valid.sort(compareOutput);
  return {
    objects: written,
    problems,
    warnings,
    notes,
    secretCopies:
      written.length === 0
        ? []
        : [...copies.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    ignored: [...c.ignored].sort().map(([k, n]) => `${k} (${n})`),
  };
}

// OpenShift config.openshift.io/v1 ClusterImagePolicy and ImagePolicy -> this project's objects
// (pure). This project's spec is a superset of OpenShift's with the same field names and the same
// meaning, so the conversion keeps the spec and changes the apiVersion. The source is parsed
// strictly against OpenShift's own fields (openshift/api config/v1 types_image_policy.go and
// types_cluster_image_policy.go): a field OpenShift does not define is an error, not something
// this project's extensions happen to accept.
//
// The one difference in meaning: OpenShift ignores an ImagePolicy scope equal to or nested under
// a ClusterImagePolicy scope (the cluster policy alone applies there); here the ImagePolicy adds
// its requirements. nestedScopeWarnings says so for the objects it is given.

import { z } from "zod";
import { fallbackChain, parseScope } from "../compiler/scopes.ts";
import { schemaProblems, sourceOf, type ImportProblem, type SourceRef } from "./problems.ts";

export const OPENSHIFT_API_VERSION = "config.openshift.io/v1";

const str = z.string();
const policy = z.strictObject({
  rootOfTrust: z.strictObject({
    policyType: z.enum(["PublicKey", "FulcioCAWithRekor", "PKI"]),
    publicKey: z.strictObject({ keyData: str, rekorKeyData: str.optional() }).optional(),
    fulcioCAWithRekor: z
      .strictObject({
        fulcioCAData: str,
        rekorKeyData: str,
        fulcioSubject: z.strictObject({ oidcIssuer: str, signedEmail: str }),
      })
      .optional(),
    pki: z
      .strictObject({
        caRootsData: str,
        caIntermediatesData: str.optional(),
        pkiCertificateSubject: z.strictObject({
          email: str.optional(),
          hostname: str.optional(),
        }),
      })
      .optional(),
  }),
  signedIdentity: z
    .strictObject({
      matchPolicy: z.enum([
        "MatchRepoDigestOrExact",
        "MatchRepository",
        "ExactRepository",
        "RemapIdentity",
      ]),
      exactRepository: z.strictObject({ repository: str }).optional(),
      remapIdentity: z.strictObject({ prefix: str, signedPrefix: str }).optional(),
    })
    .optional(),
});

const spec = z.strictObject({ scopes: z.array(str).min(1), policy });
export type OpenShiftSpec = z.infer<typeof spec>;

function objectSchema(kind: "ClusterImagePolicy" | "ImagePolicy") {
  return z.strictObject({
    apiVersion: z.literal(OPENSHIFT_API_VERSION),
    kind: z.literal(kind),
    metadata:
      kind === "ImagePolicy"
        ? z.looseObject({ name: str.min(1), namespace: str.min(1) })
        : z.looseObject({ name: str.min(1) }),
    spec,
    status: z.unknown().optional(),
  });
}

const schemas = {
  ClusterImagePolicy: objectSchema("ClusterImagePolicy"),
  ImagePolicy: objectSchema("ImagePolicy"),
};

export interface ConvertedOpenShift {
  readonly source: SourceRef;
  readonly kind: "ClusterImagePolicy" | "ImagePolicy";
  readonly name: string;
  readonly namespace?: string;
  /** The spec as OpenShift has it: valid for this project's API unchanged. */
  readonly spec: OpenShiftSpec;
}

export type OpenShiftResult =
  | { readonly ok: true; readonly converted: ConvertedOpenShift }
  | { readonly ok: false; readonly problems: readonly ImportProblem[] };

export function isOpenShift(apiVersion: unknown, kind: unknown): boolean {
  return (
    apiVersion === OPENSHIFT_API_VERSION &&
    (kind === "ClusterImagePolicy" || kind === "ImagePolicy")
  );
}

export function convertOpenShift(
  value: unknown,
  kind: "ClusterImagePolicy" | "ImagePolicy",
): OpenShiftResult {
  const source = sourceOf(value);
  const parsed = schemas[kind].safeParse(value);
  if (!parsed.success) return { ok: false, problems: schemaProblems(source, parsed.error) };
  const md = parsed.data.metadata;
  const namespace = typeof md["namespace"] === "string" ? md["namespace"] : undefined;
  return {
    ok: true,
    converted: {
      source,
      kind,
      name: md.name,
      ...(kind === "ImagePolicy" && namespace !== undefined ? { namespace } : {}),
      spec: parsed.data.spec,
    },
  };
}

/** One warning per ImagePolicy scope that OpenShift would have ignored because a
 * ClusterImagePolicy scope equals it or contains it. */
export function nestedScopeWarnings(
  objects: readonly ConvertedOpenShift[],
): { source: SourceRef; message: string }[] {
  const clusterScopes: { scope: string; written: string; name: string }[] = [];
  for (const o of objects) {
    if (o.kind !== "ClusterImagePolicy") continue;
    for (const written of o.spec.scopes) {
      const p = parseScope(written);
      if (p.ok) clusterScopes.push({ scope: p.scope, written, name: o.name });
    }
  }
  const out: { source: SourceRef; message: string }[] = [];
  for (const o of objects) {
    if (o.kind !== "ImagePolicy") continue;
    for (const written of o.spec.scopes) {
      const p = parseScope(written);
      if (!p.ok) continue;
      const chain = new Set(fallbackChain(p.scope));
      for (const c of clusterScopes) {
        if (!chain.has(c.scope)) continue;
        out.push({
          source: o.source,
          message: `scope ${written} is ${c.scope === p.scope ? "equal to" : "nested under"} scope ${c.written} of ClusterImagePolicy ${c.name}: OpenShift ignored this ImagePolicy there; here its requirements apply too (both must pass)`,
        });
      }
    }
  }
  return out;
}

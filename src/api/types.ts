// API types as users write them: ClusterImagePolicy and ImagePolicy (imagepolicy.dev/v1alpha1),
// parsed strictly with zod. The CRD schema in crds/ is the first gate (admission); this parser
// is the second, for the CLI (which reads files no API server has seen) and for the controller
// (defence in depth). Both are tested against the same valid and invalid manifests.

import { z } from "zod";

export const GROUP = "imagepolicy.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

const base64Pem = z.base64().min(1).max(65536);
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
const secretKey = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[-._a-zA-Z0-9]+$/);

const clusterSecretRef = z.strictObject({ name: name253, namespace: name63, key: secretKey });
const namespacedSecretRef = z.strictObject({ name: name253, key: secretKey });

function exactlyOneKey(
  v: { keyData?: unknown; keySecretRef?: unknown },
  ctx: z.RefinementCtx,
): void {
  if ((v.keyData === undefined) === (v.keySecretRef === undefined)) {
    ctx.addIssue({ code: "custom", message: "exactly one of keyData or keySecretRef is required" });
  }
}

/** A union with a discriminator: the block named for the discriminator's value is required, every
 * other block forbidden (the CRD's CEL rules say the same, with the same message). */
function unionBlocks<D extends string, B extends string>(
  discriminator: D,
  blocks: Readonly<Record<string, B>>,
) {
  return (
    v: Readonly<Record<D, string>> & Readonly<Partial<Record<B, unknown>>>,
    ctx: z.RefinementCtx,
  ): void => {
    const fields: Readonly<Partial<Record<string, unknown>>> = v;
    for (const [value, field] of Object.entries(blocks)) {
      if ((v[discriminator] === value) !== (fields[field] !== undefined)) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `${field} is required when ${discriminator} is ${value}, and forbidden otherwise`,
        });
      }
    }
  };
}

function rootOfTrust<R extends z.ZodType>(secretRef: R) {
  const keySource = z
    .strictObject({ keyData: base64Pem.optional(), keySecretRef: secretRef.optional() })
    .superRefine(exactlyOneKey);
  const publicKey = z
    .strictObject({
      keyData: base64Pem.optional(),
      keySecretRef: secretRef.optional(),
      rekorKeyData: base64Pem.optional(),
      additionalKeys: z.array(keySource).max(16).optional(),
    })
    .superRefine(exactlyOneKey);
  const fulcioCAWithRekor = z.strictObject({
    fulcioCAData: base64Pem,
    rekorKeyData: base64Pem,
    fulcioSubject: z.strictObject({
      oidcIssuer: z.url().max(2048),
      signedEmail: z.string().min(1).max(320),
    }),
  });
  const pki = z.strictObject({
    caRootsData: base64Pem,
    caIntermediatesData: base64Pem.optional(),
    pkiCertificateSubject: z
      .strictObject({
        email: z.string().min(1).max(320).optional(),
        hostname: z.string().min(1).max(253).optional(),
      })
      .refine((s) => s.email !== undefined || s.hostname !== undefined, {
        message: "at least one of email or hostname is required",
      }),
  });
  const gpgKey = z.strictObject({
    keyData: base64Pem,
    lookaside: z
      .string()
      .max(2048)
      .regex(/^(https?|file):\/\/\S+$/, "lookaside must be an http://, https:// or file:// URL")
      .optional(),
  });
  return z
    .strictObject({
      policyType: z.enum([
        "PublicKey",
        "FulcioCAWithRekor",
        "PKI",
        "GPGKey",
        "Reject",
        "InsecureAcceptAnything",
      ]),
      publicKey: publicKey.optional(),
      fulcioCAWithRekor: fulcioCAWithRekor.optional(),
      pki: pki.optional(),
      gpgKey: gpgKey.optional(),
    })
    .superRefine(
      unionBlocks("policyType", {
        PublicKey: "publicKey",
        FulcioCAWithRekor: "fulcioCAWithRekor",
        PKI: "pki",
        GPGKey: "gpgKey",
      }),
    );
}

const signedIdentity = z
  .strictObject({
    matchPolicy: z.enum([
      "MatchRepoDigestOrExact",
      "MatchRepository",
      "ExactRepository",
      "RemapIdentity",
      "MatchExact",
      "ExactReference",
    ]),
    exactRepository: z.strictObject({ repository: z.string().min(1).max(512) }).optional(),
    remapIdentity: z
      .strictObject({
        prefix: z.string().min(1).max(512),
        signedPrefix: z.string().min(1).max(512),
      })
      .optional(),
    exactReference: z.strictObject({ reference: z.string().min(1).max(512) }).optional(),
  })
  .superRefine(
    unionBlocks("matchPolicy", {
      ExactRepository: "exactRepository",
      RemapIdentity: "remapIdentity",
      ExactReference: "exactReference",
    }),
  );

function spec<R extends z.ZodType>(secretRef: R) {
  return z.strictObject({
    scopes: z
      .array(z.string().min(1).max(512))
      .min(1)
      .max(256)
      .refine((s) => new Set(s).size === s.length, { message: "scopes must be unique" }),
    policy: z
      .strictObject({
        rootOfTrust: rootOfTrust(secretRef),
        signedIdentity: signedIdentity.optional(),
      })
      .superRefine((p, ctx) => {
        const t = p.rootOfTrust.policyType;
        if ((t === "Reject" || t === "InsecureAcceptAnything") && p.signedIdentity !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["signedIdentity"],
            message: `signedIdentity is forbidden when policyType is ${t}`,
          });
        }
      }),
  });
}

const metadata = z.looseObject({
  name: name253,
  namespace: name63.optional(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
});

export const clusterImagePolicySchema = z.looseObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("ClusterImagePolicy"),
  metadata,
  spec: spec(clusterSecretRef),
});

export const imagePolicySchema = z.looseObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("ImagePolicy"),
  metadata: metadata.extend({ namespace: name63 }),
  spec: spec(namespacedSecretRef),
});

export type ClusterImagePolicy = z.infer<typeof clusterImagePolicySchema>;
export type ImagePolicy = z.infer<typeof imagePolicySchema>;
export type AnyImagePolicy = ClusterImagePolicy | ImagePolicy;
export type PolicySpec = ClusterImagePolicy["spec"] | ImagePolicy["spec"];
export type RootOfTrust = PolicySpec["policy"]["rootOfTrust"];
export type SignedIdentitySpec = NonNullable<PolicySpec["policy"]["signedIdentity"]>;
export type KeySecretRef = { name: string; namespace?: string; key: string };

export const secretSchema = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: z.looseObject({ name: name253, namespace: name63.optional() }),
  data: z.record(z.string(), z.base64()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});
export type Secret = z.infer<typeof secretSchema>;

/** The identity of an object in diagnostics and layers. */
export interface ObjectRef {
  readonly kind: "ClusterImagePolicy" | "ImagePolicy" | "Secret";
  readonly name: string;
  readonly namespace?: string;
}

export function refOf(o: AnyImagePolicy): ObjectRef {
  return o.kind === "ClusterImagePolicy"
    ? { kind: o.kind, name: o.metadata.name }
    : { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace };
}

export function describeRef(r: ObjectRef): string {
  return r.namespace === undefined ? `${r.kind}/${r.name}` : `${r.kind} ${r.namespace}/${r.name}`;
}

// A compiled layer: the cluster layer (all ClusterImagePolicies) or one namespace's layer (its
// ImagePolicies), each policy in its validated, normalised form. This is what the controller
// publishes and what every agent combines for its own CRI-O version (docs/design.md "Data flow"); it
// also remembers each object's last accepted form. Serialised canonically, parsed strictly.

import { z } from "zod";
import { canonicalJson } from "../canonicalJson.ts";
import { parseStrictJson } from "../strictJson.ts";
import type { Requirement } from "./requirements.ts";
import type { Scope } from "./scopes.ts";

export interface LayerPolicy {
  readonly name: string;
  /** metadata.generation of the accepted form. */
  readonly generation?: number;
  /** Normalised scopes, sorted and deduplicated. */
  readonly scopes: readonly Scope[];
  readonly requirement: Requirement;
}

export interface Layer {
  /** Absent for the cluster layer. */
  readonly namespace?: string;
  /** Sorted by name. */
  readonly policies: readonly LayerPolicy[];
}

export function makeLayer(namespace: string | undefined, policies: Iterable<LayerPolicy>): Layer {
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return namespace === undefined ? { policies: sorted } : { namespace, policies: sorted };
}

export const EMPTY_CLUSTER_LAYER: Layer = { policies: [] };

const b64 = z.base64().min(1);
const identitySchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("matchExact") }),
  z.strictObject({ type: z.literal("matchRepoDigestOrExact") }),
  z.strictObject({ type: z.literal("matchRepository") }),
  z.strictObject({ type: z.literal("exactReference"), dockerReference: z.string().min(1) }),
  z.strictObject({ type: z.literal("exactRepository"), dockerRepository: z.string().min(1) }),
  z.strictObject({
    type: z.literal("remapIdentity"),
    prefix: z.string().min(1),
    signedPrefix: z.string().min(1),
  }),
]);

const requirementSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("reject") }),
  z.strictObject({ kind: z.literal("accept") }),
  z.strictObject({
    kind: z.literal("sigstoreKeys"),
    keys: z.array(b64).min(1),
    rekorKeys: z.array(b64).min(1).optional(),
    identity: identitySchema.optional(),
  }),
  z.strictObject({
    kind: z.literal("fulcio"),
    caData: b64,
    rekorKeys: z.array(b64).min(1),
    oidcIssuer: z.string().min(1),
    subjectEmail: z.string().min(1),
    identity: identitySchema.optional(),
  }),
  z.strictObject({
    kind: z.literal("pki"),
    caRootsData: b64,
    caIntermediatesData: b64.optional(),
    subjectEmail: z.string().min(1).optional(),
    subjectHostname: z.string().min(1).optional(),
    identity: identitySchema.optional(),
  }),
  z.strictObject({
    kind: z.literal("gpg"),
    keyring: b64,
    lookaside: z.string().min(1).optional(),
    identity: identitySchema.optional(),
  }),
]);

const layerSchema = z.strictObject({
  namespace: z.string().min(1).max(63).optional(),
  policies: z.array(
    z.strictObject({
      name: z.string().min(1).max(253),
      generation: z.number().int().optional(),
      scopes: z.array(z.string()).min(1),
      requirement: requirementSchema,
    }),
  ),
});

export class LayerParseError extends Error {
  override readonly name = "LayerParseError";
}

export function serializeLayer(layer: Layer): string {
  return canonicalJson(layer);
}

export function parseLayer(text: string): Layer {
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (cause) {
    throw new LayerParseError(`layer is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const result = layerSchema.safeParse(value);
  if (!result.success) {
    throw new LayerParseError(`invalid layer: ${z.prettifyError(result.error)}`, {
      cause: result.error,
    });
  }
  return result.data as Layer;
}

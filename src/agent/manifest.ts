// The manifest of the files the agent owns (docs/design.md "Files on the node"): `.imagepolicy-manifest`
// beside cluster.json, a name CRI-O never reads as a namespace policy. The agent deletes only
// namespace files listed here, and only in the policy directory recorded here.
//
// It also records the cluster layers cluster.json may hold: one at rest, two while the agent
// moves from one cluster layer to the next (written before cluster.json is replaced). Their AND
// is never looser than cluster.json, so after a crash at any point the next transition can still
// keep every namespace file tighter than cluster.json (see plan.ts).

import { z } from "zod";
import { canonicalJson } from "../canonicalJson.ts";
import { parseStrictJson } from "../strictJson.ts";

export interface Manifest {
  readonly version: 1;
  /** The policy directory (host path) the namespace files below live in. */
  readonly policyDir: string;
  /** Layer texts (serializeLayer) cluster.json may hold; empty when unknown. */
  readonly clusterLayers: readonly string[];
  /** Revision in cluster.json; "" when unknown. */
  readonly clusterRevision: string;
  /** namespace -> revision of `<namespace>.json` ("<cluster>.<namespace>"). Listed before the
   * file is first written, so a crash never leaves an unlisted file of ours behind. */
  readonly namespaces: Readonly<Record<string, string>>;
}

const schema = z.strictObject({
  version: z.literal(1),
  policyDir: z.string().min(1),
  clusterLayers: z.array(z.string().min(1)),
  clusterRevision: z.string(),
  namespaces: z.record(
    z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      .max(63),
    z.string(),
  ),
});

export class ManifestParseError extends Error {
  override readonly name = "ManifestParseError";
}

export function emptyManifest(policyDir: string): Manifest {
  return { version: 1, policyDir, clusterLayers: [], clusterRevision: "", namespaces: {} };
}

export function serializeManifest(m: Manifest): string {
  return canonicalJson(m);
}

export function parseManifest(text: string): Manifest {
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (cause) {
    throw new ManifestParseError(`manifest is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new ManifestParseError(`invalid manifest: ${z.prettifyError(r.error)}`, {
      cause: r.error,
    });
  }
  return r.data;
}

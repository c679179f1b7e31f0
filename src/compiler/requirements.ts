// The normalised internal form of one policy's requirement, independent of the CRI-O version,
// and its rendering into containers-policy.json for a given version.

import { canonicalJson } from "../canonicalJson.ts";
import type { PolicyRequirement, SignedIdentity } from "../policyjson/types.ts";
import {
  FEATURES,
  formatCrioVersion,
  supports,
  type CrioVersion,
  type Feature,
} from "./crioVersion.ts";

/** `identity` absent means matchRepoDigestOrExact, containers/image's default. Key and CA data
 * are base64 of PEM, exactly as policy.json carries them. */
export type Requirement =
  | { readonly kind: "reject" }
  | { readonly kind: "accept" }
  | {
      readonly kind: "sigstoreKeys";
      /** Any of these keys may sign; sorted, deduplicated, at least one. */
      readonly keys: readonly string[];
      readonly rekorKeys?: readonly string[];
      readonly identity?: SignedIdentity;
    }
  | {
      readonly kind: "fulcio";
      readonly caData: string;
      readonly rekorKeys: readonly string[];
      readonly oidcIssuer: string;
      readonly subjectEmail: string;
      readonly identity?: SignedIdentity;
    }
  | {
      readonly kind: "pki";
      readonly caRootsData: string;
      readonly caIntermediatesData?: string;
      readonly subjectEmail?: string;
      readonly subjectHostname?: string;
      readonly identity?: SignedIdentity;
    }
  | {
      readonly kind: "gpg";
      readonly keyring: string;
      /** Where the simple signatures live; goes to registries.d, not policy.json. */
      readonly lookaside?: string;
      readonly identity?: SignedIdentity;
    };

export function featuresOf(r: Requirement): Feature[] {
  switch (r.kind) {
    case "reject":
    case "accept":
    case "gpg":
      return [];
    case "sigstoreKeys":
      return r.keys.length > 1 || (r.rekorKeys?.length ?? 0) > 1
        ? ["sigstoreSigned", "multipleKeys"]
        : ["sigstoreSigned"];
    case "fulcio":
      return r.rekorKeys.length > 1 ? ["fulcio", "multipleKeys"] : ["fulcio"];
    case "pki":
      return ["pki"];
    default: {
      const _exhaustive: never = r;
      return _exhaustive;
    }
  }
}

/** Reasons a requirement cannot be rendered for `target`; empty when it can. */
export function unsupportedFor(r: Requirement, target: CrioVersion): string[] {
  return featuresOf(r)
    .filter((f) => !supports(target, f))
    .map(
      (f) =>
        `${FEATURES[f].what} needs CRI-O >= ${formatCrioVersion(FEATURES[f].since)}; the target is ${formatCrioVersion(target)}`,
    );
}

export function needsSigstoreAttachments(r: Requirement): boolean {
  return r.kind === "sigstoreKeys" || r.kind === "fulcio" || r.kind === "pki";
}

function rekor(keys: readonly string[] | undefined): Partial<{
  rekorPublicKeyData: string;
  rekorPublicKeyDatas: readonly string[];
}> {
  if (keys === undefined || keys.length === 0) return {};
  const [only] = keys;
  return keys.length === 1 && only !== undefined
    ? { rekorPublicKeyData: only }
    : { rekorPublicKeyDatas: keys };
}

function identity(i: SignedIdentity | undefined): { signedIdentity?: SignedIdentity } {
  return i === undefined ? {} : { signedIdentity: i };
}

/** Renders for a version already checked with unsupportedFor. */
export function render(r: Requirement): PolicyRequirement {
  switch (r.kind) {
    case "reject":
      return { type: "reject" };
    case "accept":
      return { type: "insecureAcceptAnything" };
    case "sigstoreKeys": {
      const [only] = r.keys;
      const keys =
        r.keys.length === 1 && only !== undefined ? { keyData: only } : { keyDatas: r.keys };
      return { type: "sigstoreSigned", ...keys, ...rekor(r.rekorKeys), ...identity(r.identity) };
    }
    case "fulcio":
      return {
        type: "sigstoreSigned",
        fulcio: { caData: r.caData, oidcIssuer: r.oidcIssuer, subjectEmail: r.subjectEmail },
        ...rekor(r.rekorKeys),
        ...identity(r.identity),
      };
    case "pki":
      return {
        type: "sigstoreSigned",
        pki: {
          caRootsData: r.caRootsData,
          ...(r.caIntermediatesData === undefined
            ? {}
            : { caIntermediatesData: r.caIntermediatesData }),
          ...(r.subjectEmail === undefined ? {} : { subjectEmail: r.subjectEmail }),
          ...(r.subjectHostname === undefined ? {} : { subjectHostname: r.subjectHostname }),
        },
        ...identity(r.identity),
      };
    case "gpg":
      return { type: "signedBy", keyType: "GPGKeys", keyData: r.keyring, ...identity(r.identity) };
    default: {
      const _exhaustive: never = r;
      return _exhaustive;
    }
  }
}

const ACCEPT: Requirement = Object.freeze({ kind: "accept" });

export function requirementKey(r: Requirement): string {
  return canonicalJson(r);
}

/** AND of requirements, simplified: `reject` absorbs everything, `accept` disappears beside any
 * other requirement, duplicates collapse, and the order is canonical. `key` is requirementKey, or
 * a cache of it (the agent's renderer). */
export function simplify(
  reqs: readonly Requirement[],
  key: (r: Requirement) => string = requirementKey,
): Requirement[] {
  if (reqs.some((r) => r.kind === "reject")) return [{ kind: "reject" }];
  // One requirement is its own canonical form: no key to compute (most scopes have one policy).
  const [only] = reqs;
  if (reqs.length === 1 && only !== undefined) return [only];
  const byKey = new Map<string, Requirement>();
  for (const r of reqs) if (r.kind !== "accept") byKey.set(key(r), r);
  if (byKey.size === 0) return [ACCEPT];
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

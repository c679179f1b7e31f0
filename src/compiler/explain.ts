// Which scope decides a pull, from which policies, with which requirements: for the cluster
// layer, the namespace layer and the combined file CRI-O would read; and, for each requirement,
// what a pull would need to be accepted, with key material shown only as fingerprints
// (fingerprint.ts).

import type { ObjectRef } from "../api/types.ts";
import type { PolicyRequirement, SignedIdentity } from "../policyjson/types.ts";
import { combinedRequirements, combinedScopes, decide, type ScopeIndex } from "./combine.ts";
import { fingerprints } from "./fingerprint.ts";
import { render, type Requirement } from "./requirements.ts";
import { fallbackChain, type Scope } from "./scopes.ts";

/** What one requirement accepts, with fingerprints in place of key and certificate data. */
export type Acceptance =
  | { readonly kind: "nothing" }
  | { readonly kind: "anything" }
  | {
      readonly kind: "sigstoreKey";
      /** Any of these keys may sign. */
      readonly keys: readonly string[];
      readonly rekorKeys: readonly string[];
      readonly identity: SignedIdentity;
    }
  | {
      readonly kind: "fulcio";
      readonly ca: readonly string[];
      readonly oidcIssuer: string;
      readonly subjectEmail: string;
      readonly rekorKeys: readonly string[];
      readonly identity: SignedIdentity;
    }
  | {
      readonly kind: "pki";
      readonly caRoots: readonly string[];
      readonly caIntermediates: readonly string[];
      readonly subjectEmail?: string;
      readonly subjectHostname?: string;
      readonly identity: SignedIdentity;
    }
  | {
      readonly kind: "gpg";
      readonly keys: readonly string[];
      readonly lookaside?: string;
      readonly identity: SignedIdentity;
    };

export interface LayerDecision {
  readonly scope: Scope;
  readonly sources: readonly ObjectRef[];
  readonly requirements: readonly PolicyRequirement[];
  /** One entry per requirement: all must pass. */
  readonly accepts: readonly Acceptance[];
}

export interface Explanation {
  readonly image: string;
  readonly chain: readonly Scope[];
  readonly cluster: LayerDecision | null;
  readonly namespace: LayerDecision | null;
  /** The file CRI-O reads for this pull and the scope of it that decides. */
  readonly file: string;
  readonly fileScope: Scope | null;
  readonly requirements: readonly PolicyRequirement[];
  /** What the file accepts for this image: one entry per requirement, all must pass. */
  readonly accepts: readonly Acceptance[];
}

const DEFAULT_IDENTITY: SignedIdentity = { type: "matchRepoDigestOrExact" };

const all = (datas: readonly string[]): string[] => datas.flatMap(fingerprints);

export function acceptance(r: Requirement): Acceptance {
  switch (r.kind) {
    case "reject":
      return { kind: "nothing" };
    case "accept":
      return { kind: "anything" };
    case "sigstoreKeys":
      return {
        kind: "sigstoreKey",
        keys: all(r.keys),
        rekorKeys: all(r.rekorKeys ?? []),
        identity: r.identity ?? DEFAULT_IDENTITY,
      };
    case "fulcio":
      return {
        kind: "fulcio",
        ca: fingerprints(r.caData),
        oidcIssuer: r.oidcIssuer,
        subjectEmail: r.subjectEmail,
        rekorKeys: all(r.rekorKeys),
        identity: r.identity ?? DEFAULT_IDENTITY,
      };
    case "pki":
      return {
        kind: "pki",
        caRoots: fingerprints(r.caRootsData),
        caIntermediates:
          r.caIntermediatesData === undefined ? [] : fingerprints(r.caIntermediatesData),
        ...(r.subjectEmail === undefined ? {} : { subjectEmail: r.subjectEmail }),
        ...(r.subjectHostname === undefined ? {} : { subjectHostname: r.subjectHostname }),
        identity: r.identity ?? DEFAULT_IDENTITY,
      };
    case "gpg":
      return {
        kind: "gpg",
        keys: fingerprints(r.keyring),
        ...(r.lookaside === undefined ? {} : { lookaside: r.lookaside }),
        identity: r.identity ?? DEFAULT_IDENTITY,
      };
    default: {
      const _exhaustive: never = r;
      return _exhaustive;
    }
  }
}

/** The repository of a normalised reference (no tag, no digest). */
function repositoryOf(reference: string): string {
  const at = reference.indexOf("@");
  if (at !== -1) return reference.slice(0, at);
  const slash = reference.lastIndexOf("/");
  const colon = reference.indexOf(":", slash);
  return colon === -1 ? reference : reference.slice(0, colon);
}

/** Which identity the signature must claim, for a pull of `image` (containers-policy.json(5),
 * "signedIdentity"). */
export function describeIdentity(identity: SignedIdentity, image: string): string {
  const byDigest = image.includes("@");
  switch (identity.type) {
    case "matchRepoDigestOrExact":
      return byDigest
        ? `naming repository ${repositoryOf(image)} (matchRepoDigestOrExact, pulled by digest)`
        : `naming exactly ${image} (matchRepoDigestOrExact, pulled by tag: a signature naming only the repository is not enough)`;
    case "matchExact":
      return `naming exactly ${image} (matchExact)`;
    case "matchRepository":
      return `naming repository ${repositoryOf(image)} (matchRepository)`;
    case "exactReference":
      return `naming exactly ${identity.dockerReference} (exactReference)`;
    case "exactRepository":
      return `naming repository ${identity.dockerRepository} (exactRepository)`;
    case "remapIdentity": {
      const remapped =
        image === identity.prefix || image.startsWith(`${identity.prefix}/`)
          ? identity.signedPrefix + image.slice(identity.prefix.length)
          : image;
      return `naming ${remapped} (remapIdentity ${identity.prefix} -> ${identity.signedPrefix}, then matchRepoDigestOrExact)`;
    }
    default: {
      const _exhaustive: never = identity;
      return _exhaustive;
    }
  }
}

const list = (what: string, fps: readonly string[]): string =>
  fps.length === 1 ? `${what} ${fps[0] ?? ""}` : `one of the ${what}s ${fps.join(", ")}`;

/** One line: what a pull of `image` needs to pass this requirement. */
export function describeAcceptance(a: Acceptance, image: string): string {
  switch (a.kind) {
    case "nothing":
      return "nothing: this scope rejects every image (Reject)";
    case "anything":
      return "any image, signed or not";
    case "sigstoreKey": {
      const rekor =
        a.rekorKeys.length === 0 ? "" : `, logged in Rekor (${list("key", a.rekorKeys)})`;
      return `a sigstore signature by ${list("key", a.keys)}${rekor}, ${describeIdentity(a.identity, image)}`;
    }
    case "fulcio":
      return (
        `a keyless sigstore signature whose Fulcio certificate (${list("CA", a.ca)}) was issued ` +
        `to ${a.subjectEmail} by ${a.oidcIssuer}, logged in Rekor (${list("key", a.rekorKeys)}), ` +
        describeIdentity(a.identity, image)
      );
    case "pki": {
      const subject = [
        a.subjectEmail === undefined ? "" : ` for email ${a.subjectEmail}`,
        a.subjectHostname === undefined ? "" : ` for hostname ${a.subjectHostname}`,
      ].join("");
      const via =
        a.caIntermediates.length === 0 ? "" : ` via ${list("intermediate", a.caIntermediates)}`;
      return `a sigstore signature with a certificate from ${list("root CA", a.caRoots)}${via}${subject}, ${describeIdentity(a.identity, image)}`;
    }
    case "gpg": {
      const where = a.lookaside === undefined ? "" : `, looked up at ${a.lookaside}`;
      return `a GPG simple signing signature by ${list("key", a.keys)}${where}, ${describeIdentity(a.identity, image)}`;
    }
    default: {
      const _exhaustive: never = a;
      return _exhaustive;
    }
  }
}

function layerDecision(index: ScopeIndex, image: string): LayerDecision | null {
  const d = decide(index, image);
  if (d === undefined) return null;
  return {
    scope: d.scope,
    sources: d.entry.sources,
    requirements: d.entry.requirements.map(render),
    accepts: d.entry.requirements.map(acceptance),
  };
}

/** `image` is a normalised reference (parseImage). */
export function explain(
  image: string,
  cluster: ScopeIndex,
  namespace: ScopeIndex | undefined,
): Explanation {
  const chain = fallbackChain(image);
  const layers = namespace === undefined ? [cluster] : [cluster, namespace];
  const inFile = new Set(combinedScopes(layers));
  const fileScope = chain.find((s) => inFile.has(s)) ?? null;
  const internal: readonly Requirement[] =
    fileScope === null ? [{ kind: "accept" }] : combinedRequirements(layers, fileScope);
  return {
    image,
    chain,
    cluster: layerDecision(cluster, image),
    namespace: namespace === undefined ? null : layerDecision(namespace, image),
    file:
      namespace?.namespace === undefined ? "cluster.json" : `policies/${namespace.namespace}.json`,
    fileScope,
    requirements: internal.map(render),
    accepts: internal.map(acceptance),
  };
}

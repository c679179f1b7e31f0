// The containers-policy.json(5) format, as containers/image's signature package reads it.
// Field names are the format's own, verbatim. Every type is closed: the strict parser in
// parse.ts refuses unknown fields, because CRI-O refuses the whole file (and fails every pull)
// when containers/image meets a field it does not know.

/** How the identity in a signature must relate to the pulled reference. Default when absent:
 * matchRepoDigestOrExact. */
export type SignedIdentity =
  | { readonly type: "matchExact" }
  | { readonly type: "matchRepoDigestOrExact" }
  | { readonly type: "matchRepository" }
  /** Exactly one dockerReference, which must carry a tag or digest. */
  | { readonly type: "exactReference"; readonly dockerReference: string }
  /** Exactly one dockerRepository (a repository name without tag or digest). */
  | { readonly type: "exactRepository"; readonly dockerRepository: string }
  /** Both prefix and signedPrefix are required. */
  | { readonly type: "remapIdentity"; readonly prefix: string; readonly signedPrefix: string };

/** Keyless Fulcio configuration. Exactly one of caPath, caData; oidcIssuer and subjectEmail are
 * both required. */
export interface FulcioConfig {
  readonly caPath?: string;
  readonly caData?: string;
  readonly oidcIssuer: string;
  readonly subjectEmail: string;
}

/** X.509 PKI configuration (containers/image 5.35). Exactly one of caRootsPath, caRootsData; at
 * most one of caIntermediatesPath, caIntermediatesData; at least one of subjectEmail,
 * subjectHostname. */
export interface PkiConfig {
  readonly caRootsPath?: string;
  readonly caRootsData?: string;
  readonly caIntermediatesPath?: string;
  readonly caIntermediatesData?: string;
  readonly subjectEmail?: string;
  readonly subjectHostname?: string;
}

/** Simple signing (GPG). keyType is required; exactly one of keyPath, keyPaths, keyData. */
export interface SignedBy {
  readonly type: "signedBy";
  readonly keyType: "GPGKeys";
  readonly keyPath?: string;
  readonly keyPaths?: readonly string[];
  readonly keyData?: string;
  readonly signedIdentity?: SignedIdentity;
}

/** Sigstore signatures. Exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki; at most
 * one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData, rekorPublicKeyDatas, which
 * is required with fulcio and not allowed with pki. keyData and the *Data fields are base64. */
export interface SigstoreSigned {
  readonly type: "sigstoreSigned";
  readonly keyPath?: string;
  readonly keyPaths?: readonly string[];
  readonly keyData?: string;
  readonly keyDatas?: readonly string[];
  readonly fulcio?: FulcioConfig;
  readonly pki?: PkiConfig;
  readonly rekorPublicKeyPath?: string;
  readonly rekorPublicKeyPaths?: readonly string[];
  readonly rekorPublicKeyData?: string;
  readonly rekorPublicKeyDatas?: readonly string[];
  readonly signedIdentity?: SignedIdentity;
}

export type PolicyRequirement =
  | { readonly type: "insecureAcceptAnything" }
  | { readonly type: "reject" }
  | SignedBy
  | SigstoreSigned;

/** A non-empty list of requirements; all must be satisfied (AND). */
export type PolicyRequirements = readonly [PolicyRequirement, ...PolicyRequirement[]];

/** Scope -> requirements for one transport. For `docker`, the scope "" is the transport default. */
export type PolicyTransportScopes = Readonly<Record<string, PolicyRequirements>>;

export interface Policy {
  readonly default: PolicyRequirements;
  readonly transports?: Readonly<Record<string, PolicyTransportScopes>>;
}

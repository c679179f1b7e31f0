// Stage one of the compiler (pure): one policy object and the Secrets it references in, its
// validated, normalised layer form (LayerPolicy) or its diagnostics out (validatePolicy). Stage
// two (assemble.ts) judges the forms together and groups them into layers; stage three
// (combine.ts) renders layers into policy.json documents; `compile` (compile.ts, the CLI command)
// is the three in a row. An object with any diagnostic contributes nothing here; the controller
// substitutes its last accepted form.
//
// Its input passed the API's schema (src/api/parse.ts, the same rules the API server enforces), so
// the discriminated unions say which blocks exist and nothing here re-checks presence or syntax
// the schema already decided. What remains is what only the compiler can judge (docs/api.md): key
// material (parsed by keys.ts), Secrets, normalised names, and what the target CRI-O can parse.

import {
  refOf,
  type AnyImagePolicy,
  type KeySecretRef,
  type ObjectRef,
  type PolicySpec,
  type Secret,
  type SignedIdentitySpec,
} from "../api/types.ts";
import type { SignedIdentity } from "../policyjson/types.ts";
import type { CrioVersion } from "./crioVersion.ts";
import type { Diagnostic } from "./diagnostics.ts";
import { checkCertificates, checkGpgKeyring, checkPublicKey, type KeyCheck } from "./keys.ts";
import { makeLayers } from "./assemble.ts";
import type { Layer, LayerPolicy } from "./layer.ts";
import { unsupportedFor, type Requirement } from "./requirements.ts";
import {
  parseExactReference,
  parseIdentityPrefix,
  parseRepositoryName,
  parseScope,
} from "./scopes.ts";

/** Looks up `data[key]` (base64) of a Secret. */
export type SecretLookup = (namespace: string, name: string, key: string) => string | undefined;

export function secretLookupFrom(secrets: readonly Secret[]): SecretLookup {
  const index = new Map<string, Secret>();
  for (const s of secrets) index.set(`${s.metadata.namespace ?? "default"}/${s.metadata.name}`, s);
  return (namespace, name, key) => {
    const s = index.get(`${namespace}/${name}`);
    const data = s?.data?.[key];
    if (data !== undefined) return data;
    const plain = s?.stringData?.[key];
    return plain === undefined ? undefined : Buffer.from(plain, "utf8").toString("base64");
  };
}

type Result<T> = { ok: true; value: T } | { ok: false };

class Collector {
  readonly diagnostics: Diagnostic[] = [];
  readonly object: ObjectRef;
  constructor(object: ObjectRef) {
    this.object = object;
  }
  add(field: string, reason: Diagnostic["reason"], message: string): { ok: false } {
    this.diagnostics.push({ object: this.object, field, reason, message });
    return { ok: false };
  }
  check(field: string, check: KeyCheck): boolean {
    if (!check.ok) this.add(field, "InvalidKey", check.reason);
    return check.ok;
  }
}

function keyFromRef(
  c: Collector,
  field: string,
  ref: KeySecretRef,
  policyNamespace: string | undefined,
  secrets: SecretLookup,
): Result<string> {
  // An ImagePolicy's Secret is always in its own namespace (its schema has no namespace field);
  // a ClusterImagePolicy's reference always names one (its schema requires it).
  const namespace = policyNamespace ?? ref.namespace ?? "";
  const data = secrets(namespace, ref.name, ref.key);
  if (data === undefined) {
    return c.add(
      field,
      "SecretNotFound",
      `Secret ${namespace}/${ref.name} has no key ${JSON.stringify(ref.key)}`,
    );
  }
  return { ok: true, value: data };
}

/** An identity the schema admitted, normalised. The schema's rules (src/api/policy.ts) accept
 * only names these parsers accept; a refusal here is a disagreement between the two, reported
 * rather than hidden. */
function compileIdentity(
  c: Collector,
  s: SignedIdentitySpec | undefined,
): Result<SignedIdentity | undefined> {
  const field = "spec.policy.signedIdentity";
  if (s === undefined) return { ok: true, value: undefined };
  switch (s.matchPolicy) {
    case "MatchRepoDigestOrExact":
      return { ok: true, value: undefined };
    case "MatchRepository":
      return { ok: true, value: { type: "matchRepository" } };
    case "MatchExact":
      return { ok: true, value: { type: "matchExact" } };
    case "ExactRepository": {
      const raw = s.exactRepository.repository;
      const p = parseRepositoryName(raw);
      if (!p.ok) {
        return c.add(
          `${field}.exactRepository.repository`,
          "InvalidIdentity",
          `${JSON.stringify(raw)}: ${p.reason}`,
        );
      }
      return { ok: true, value: { type: "exactRepository", dockerRepository: p.name } };
    }
    case "ExactReference": {
      const raw = s.exactReference.reference;
      const p = parseExactReference(raw);
      if (!p.ok) {
        return c.add(
          `${field}.exactReference.reference`,
          "InvalidIdentity",
          `${JSON.stringify(raw)}: ${p.reason}`,
        );
      }
      return { ok: true, value: { type: "exactReference", dockerReference: p.name } };
    }
    case "RemapIdentity": {
      const prefix = parseIdentityPrefix(s.remapIdentity.prefix);
      const signedPrefix = parseIdentityPrefix(s.remapIdentity.signedPrefix);
      if (!prefix.ok) c.add(`${field}.remapIdentity.prefix`, "InvalidIdentity", prefix.reason);
      if (!signedPrefix.ok)
        c.add(`${field}.remapIdentity.signedPrefix`, "InvalidIdentity", signedPrefix.reason);
      if (!prefix.ok || !signedPrefix.ok) return { ok: false };
      return {
        ok: true,
        value: { type: "remapIdentity", prefix: prefix.name, signedPrefix: signedPrefix.name },
      };
    }
    default: {
      const _exhaustive: never = s;
      return _exhaustive;
    }
  }
}

function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

type KeySource = { readonly keyData: string } | { readonly keySecretRef: KeySecretRef };

/** The key data of one key source, read from a Secret when it names one. */
function keyOf(
  c: Collector,
  field: string,
  src: KeySource,
  policyNamespace: string | undefined,
  secrets: SecretLookup,
): Result<string> {
  // Only the canonical form keys.ts re-encodes is published (docs/security.md, rule 4).
  if ("keyData" in src) {
    const key = checkPublicKey(src.keyData);
    return c.check(`${field}.keyData`, key) && key.ok
      ? { ok: true, value: key.canonical }
      : { ok: false };
  }
  const data = keyFromRef(c, `${field}.keySecretRef`, src.keySecretRef, policyNamespace, secrets);
  const key = data.ok ? checkPublicKey(data.value) : undefined;
  return key !== undefined && c.check(`${field}.keySecretRef`, key) && key.ok
    ? { ok: true, value: key.canonical }
    : { ok: false };
}

function compileRequirement(
  c: Collector,
  spec: PolicySpec,
  policyNamespace: string | undefined,
  secrets: SecretLookup,
): Result<Requirement> {
  const rot = spec.policy.rootOfTrust;
  const base = "spec.policy.rootOfTrust";
  const id = compileIdentity(c, spec.policy.signedIdentity);
  const identity = id.ok && id.value !== undefined ? { identity: id.value } : {};
  switch (rot.policyType) {
    case "Reject":
      return { ok: true, value: { kind: "reject" } };
    case "InsecureAcceptAnything":
      return { ok: true, value: { kind: "accept" } };
    case "PublicKey": {
      const pk = rot.publicKey;
      const keys: string[] = [];
      const primary = keyOf(c, `${base}.publicKey`, pk, policyNamespace, secrets);
      if (primary.ok) keys.push(primary.value);
      (pk.additionalKeys ?? []).forEach((src, i) => {
        const k = keyOf(c, `${base}.publicKey.additionalKeys[${i}]`, src, policyNamespace, secrets);
        if (k.ok) keys.push(k.value);
      });
      const rekor = pk.rekorKeyData === undefined ? undefined : checkPublicKey(pk.rekorKeyData);
      if (rekor !== undefined) c.check(`${base}.publicKey.rekorKeyData`, rekor);
      if (c.diagnostics.length > 0 || !id.ok) return { ok: false };
      return {
        ok: true,
        value: {
          kind: "sigstoreKeys",
          keys: sortedUnique(keys),
          ...(rekor?.ok === true ? { rekorKeys: [rekor.canonical] } : {}),
          ...identity,
        },
      };
    }
    case "FulcioCAWithRekor": {
      const f = rot.fulcioCAWithRekor;
      const ca = checkCertificates(f.fulcioCAData);
      const rekor = checkPublicKey(f.rekorKeyData);
      c.check(`${base}.fulcioCAWithRekor.fulcioCAData`, ca);
      c.check(`${base}.fulcioCAWithRekor.rekorKeyData`, rekor);
      if (c.diagnostics.length > 0 || !id.ok || !ca.ok || !rekor.ok) return { ok: false };
      return {
        ok: true,
        value: {
          kind: "fulcio",
          caData: ca.canonical,
          rekorKeys: [rekor.canonical],
          oidcIssuer: f.fulcioSubject.oidcIssuer,
          subjectEmail: f.fulcioSubject.signedEmail,
          ...identity,
        },
      };
    }
    case "PKI": {
      const p = rot.pki;
      const roots = checkCertificates(p.caRootsData);
      c.check(`${base}.pki.caRootsData`, roots);
      const mids =
        p.caIntermediatesData === undefined ? undefined : checkCertificates(p.caIntermediatesData);
      if (mids !== undefined) c.check(`${base}.pki.caIntermediatesData`, mids);
      if (!roots.ok || mids?.ok === false) return { ok: false };
      if (c.diagnostics.length > 0 || !id.ok) return { ok: false };
      const subject = p.pkiCertificateSubject;
      return {
        ok: true,
        value: {
          kind: "pki",
          caRootsData: roots.canonical,
          ...(mids?.ok === true ? { caIntermediatesData: mids.canonical } : {}),
          ...(subject.email === undefined ? {} : { subjectEmail: subject.email }),
          ...(subject.hostname === undefined ? {} : { subjectHostname: subject.hostname }),
          ...identity,
        },
      };
    }
    case "GPGKey": {
      const g = rot.gpgKey;
      const keyring = checkGpgKeyring(g.keyData);
      c.check(`${base}.gpgKey.keyData`, keyring);
      if (c.diagnostics.length > 0 || !id.ok || !keyring.ok) return { ok: false };
      return {
        ok: true,
        value: {
          kind: "gpg",
          keyring: keyring.canonical,
          ...(g.lookaside === undefined ? {} : { lookaside: g.lookaside }),
          ...identity,
        },
      };
    }
    default: {
      const _exhaustive: never = rot;
      return _exhaustive;
    }
  }
}

export type ValidatedPolicy =
  | { ok: true; policy: LayerPolicy; object: ObjectRef }
  | { ok: false; diagnostics: Diagnostic[]; object: ObjectRef };

/** Validates and normalises one policy object for `target` (stage one). */
export function validatePolicy(
  obj: AnyImagePolicy,
  secrets: SecretLookup,
  target: CrioVersion,
): ValidatedPolicy {
  const object = refOf(obj);
  const c = new Collector(object);
  const scopes: string[] = [];
  obj.spec.scopes.forEach((raw, i) => {
    const p = parseScope(raw);
    if (p.ok) scopes.push(p.scope);
    else c.add(`spec.scopes[${i}]`, "InvalidScope", `${JSON.stringify(raw)}: ${p.reason}`);
  });
  const namespace = obj.kind === "ImagePolicy" ? obj.metadata.namespace : undefined;
  const req = compileRequirement(c, obj.spec, namespace, secrets);
  if (req.ok) {
    for (const reason of unsupportedFor(req.value, target)) {
      c.add("spec.policy.rootOfTrust", "UnsupportedFeature", reason);
    }
  }
  if (!req.ok || c.diagnostics.length > 0) return { ok: false, diagnostics: c.diagnostics, object };
  return {
    ok: true,
    object,
    policy: {
      name: obj.metadata.name,
      ...(obj.metadata.generation === undefined ? {} : { generation: obj.metadata.generation }),
      scopes: sortedUnique(scopes),
      requirement: req.value,
    },
  };
}

export interface ValidateResult {
  readonly cluster: Layer;
  /** Only namespaces with at least one accepted ImagePolicy. */
  readonly namespaces: ReadonlyMap<string, Layer>;
  readonly diagnostics: readonly Diagnostic[];
  /** One per object, in input order. */
  readonly results: readonly ValidatedPolicy[];
}

/** Stage one over a set of objects: each validated, the accepted forms grouped by layer (before
 * the rules of stage two). */
export function validate(
  objects: readonly AnyImagePolicy[],
  secrets: SecretLookup,
  target: CrioVersion,
): ValidateResult {
  const validated = objects.map((o) => validatePolicy(o, secrets, target));
  const diagnostics = validated.flatMap((v) => (v.ok ? [] : v.diagnostics));
  const { cluster, namespaces } = makeLayers(
    validated.flatMap((v) => (v.ok ? [{ ref: v.object, policy: v.policy }] : [])),
  );
  return {
    cluster,
    namespaces,
    diagnostics,
    results: validated,
  };
}

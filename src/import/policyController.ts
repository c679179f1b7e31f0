// sigstore policy-controller ClusterImagePolicy (policy.sigstore.dev/v1alpha1 and v1beta1) ->
// this project's ClusterImagePolicy (pure). One object at a time; combining the objects (the AND
// of nested globs, the no-match policy) is importObjects' job.
//
// Semantics taken from policy-controller's sources (pkg/webhook/validator.go ValidatePolicy and
// checkOptsFromAuthority, pkg/reconciler/clusterimagepolicy inlineAndTrackSecret,
// pkg/webhook/clusterimagepolicy KeyRef.UnmarshalJSON, pkg/apis/policy/v1beta1 validation and
// defaults) and containers-image's (signature/fulcio_cert.go, signature/internal/sigstore_payload.go):
//
// - the authorities of one policy are alternatives: one passing authority passes the policy;
// - a `static: {action: pass}` authority passes, `fail` never does;
// - `key.data` is PEM; only its first key is read; `key.secretRef` is read from policy-controller's
//   own namespace (its `namespace` field is ignored), from a Secret with exactly one data entry;
// - a key is checked without a transparency log unless `ctlog` names one; keyless without
//   `url` or `ca-cert` means the public-good Fulcio;
// - the signature is checked against the image digest only, not against the repository it names.
//
// docs/import.md is the field-by-field table; every refusal below has its row there.

import { z } from "zod";
import type { ClusterImagePolicy } from "../api/types.ts";
import { checkPublicKey } from "../compiler/keys.ts";
import type { Scope } from "../compiler/scopes.ts";
import { mapGlobs } from "./globs.ts";
import { schemaProblems, sourceOf, type ImportProblem, type SourceRef } from "./problems.ts";
import type { SigstoreTrust } from "./sigstoreTrust.ts";

export const POLICY_CONTROLLER_GROUP = "policy.sigstore.dev";
export const POLICY_CONTROLLER_VERSIONS = ["v1alpha1", "v1beta1"] as const;
export type PolicyControllerVersion = (typeof POLICY_CONTROLLER_VERSIONS)[number];

// ---------------------------------------------------------------------------------------------
// The source API, strictly: every field policy-controller defines, nothing else. Fields added to
// both versions by newer releases (tagPrefix, insecureIgnoreSCT, signatureFormat, trustRootRef)
// are accepted in both, so that they are refused with a reason instead of as unknown.

const str = z.string();
const secretReference = z.strictObject({ name: str.min(1), namespace: str.optional() });
const keyRef = z.strictObject({
  secretRef: secretReference.optional(),
  data: str.optional(),
  kms: str.optional(),
  hashAlgorithm: str.optional(),
});
const identity = z.strictObject({
  issuer: str.optional(),
  subject: str.optional(),
  issuerRegExp: str.optional(),
  subjectRegExp: str.optional(),
});
const keylessRef = z.strictObject({
  url: str.optional(),
  identities: z.array(identity).optional(),
  "ca-cert": keyRef.optional(),
  trustRootRef: str.optional(),
  insecureIgnoreSCT: z.boolean().optional(),
});
const source = z.strictObject({
  oci: str.optional(),
  signaturePullSecrets: z.array(z.strictObject({ name: str })).optional(),
  tagPrefix: str.optional(),
});
const tlog = z.strictObject({ url: str.optional(), trustRootRef: str.optional() });
const configMapRef = z.strictObject({
  name: str.optional(),
  namespace: str.optional(),
  key: str.optional(),
});
const policyFlags = {
  type: str,
  data: str.optional(),
  configMapRef: configMapRef.optional(),
  fetchConfigFile: z.boolean().optional(),
  includeSpec: z.boolean().optional(),
  includeObjectMeta: z.boolean().optional(),
  includeTypeMeta: z.boolean().optional(),
};
const policyV1alpha1 = z.strictObject({ ...policyFlags, url: str.optional() });
const policyV1beta1 = z.strictObject({
  ...policyFlags,
  remote: z.strictObject({ url: str.optional(), sha256sum: str.optional() }).optional(),
});

function specSchema(version: PolicyControllerVersion) {
  const policy = version === "v1alpha1" ? policyV1alpha1 : policyV1beta1;
  const staticRef =
    version === "v1alpha1"
      ? z.strictObject({ action: str })
      : z.strictObject({ action: str, message: str.optional() });
  const authority = z.strictObject({
    name: str.optional(),
    key: keyRef.optional(),
    keyless: keylessRef.optional(),
    static: staticRef.optional(),
    source: z.array(source).optional(),
    ctlog: tlog.optional(),
    attestations: z
      .array(z.strictObject({ name: str, predicateType: str, policy: policy.optional() }))
      .optional(),
    rfc3161timestamp: z.strictObject({ trustRootRef: str.optional() }).optional(),
    signatureFormat: str.optional(),
  });
  return z.strictObject({
    images: z.array(z.strictObject({ glob: str })).min(1),
    authorities: z.array(authority).optional(),
    policy: policy.optional(),
    mode: str.optional(),
    match: z
      .array(
        z.strictObject({
          group: str.optional(),
          version: str.optional(),
          resource: str.optional(),
          selector: z.record(str, z.unknown()).optional(),
        }),
      )
      .optional(),
  });
}

function objectSchema(version: PolicyControllerVersion) {
  return z.strictObject({
    apiVersion: z.literal(`${POLICY_CONTROLLER_GROUP}/${version}`),
    kind: z.literal("ClusterImagePolicy"),
    metadata: z.looseObject({ name: str.min(1) }),
    spec: specSchema(version),
    status: z.unknown().optional(),
  });
}

const schemas = {
  v1alpha1: objectSchema("v1alpha1"),
  v1beta1: objectSchema("v1beta1"),
};

type Spec = z.infer<ReturnType<typeof specSchema>>;
type Authority = NonNullable<Spec["authorities"]>[number];

// ---------------------------------------------------------------------------------------------

/** A Secret of the input, as the import needs it: its data entries (base64 values). */
export interface InputSecret {
  readonly namespace: string;
  readonly name: string;
  readonly data: Readonly<Record<string, string>>;
}

export interface PolicyControllerOptions {
  /** Where this project's controller will read the Secrets (keySecretRef.namespace). */
  readonly secretNamespace: string;
  /** Where policy-controller runs and reads Secrets (`cosign-system` by default). */
  readonly policyControllerNamespace: string;
  /** The data key assumed for a referenced Secret that is not in the input. */
  readonly defaultSecretKey: string;
  /** Accept scopes that cover more images than the globs (a warning each). */
  readonly widenGlobs: boolean;
  /** The public-good Fulcio and Rekor material; undefined when it could not be read. */
  readonly trust: SigstoreTrust | undefined;
  readonly secret: (namespace: string, name: string) => InputSecret | undefined;
}

/** A Secret the user must copy for the converted policy to compile. */
export interface SecretCopy {
  readonly fromNamespace: string;
  readonly toNamespace: string;
  readonly name: string;
  readonly key: string;
  /** false when the Secret was not in the input and the key name is the default. */
  readonly seen: boolean;
}

type PolicyBody = ClusterImagePolicy["spec"]["policy"];

export interface ConvertedPolicy {
  readonly source: SourceRef;
  readonly name: string;
  readonly scopes: readonly Scope[];
  readonly policy: PolicyBody;
  readonly warnings: readonly string[];
  readonly secretCopies: readonly SecretCopy[];
}

export type PolicyControllerResult =
  | { readonly ok: true; readonly converted: ConvertedPolicy }
  | { readonly ok: false; readonly problems: readonly ImportProblem[] };

export function isPolicyController(apiVersion: unknown, kind: unknown): boolean {
  return (
    typeof apiVersion === "string" &&
    apiVersion.startsWith(`${POLICY_CONTROLLER_GROUP}/`) &&
    kind === "ClusterImagePolicy"
  );
}

type KeySource =
  { keyData: string } | { keySecretRef: { name: string; namespace: string; key: string } };

type Rekor = "none" | "public";

type Verdict =
  | { kind: "pass" }
  | { kind: "fail" }
  | { kind: "key"; key: KeySource; rekor: Rekor }
  | { kind: "keyless"; issuer: string; email: string };

const PEM_PUBLIC_KEY = /-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g;
// An email address as Fulcio puts it in a certificate's SAN, and nothing URI-like.
const EMAIL = /^[^\s@/:]+@[^\s@/:]+\.[^\s@/:]+$/;

const sameUrl = (a: string, b: string): boolean => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");
const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

class Collector {
  readonly problems: ImportProblem[] = [];
  readonly warnings: string[] = [];
  readonly secretCopies: SecretCopy[] = [];
  readonly source: SourceRef;
  constructor(source: SourceRef) {
    this.source = source;
  }
  refuse(field: string, message: string): void {
    this.problems.push({ source: this.source, field, message });
  }
}

function rekorOf(c: Collector, base: string, a: Authority, opts: PolicyControllerOptions): Rekor {
  const ctlog = a.ctlog;
  if (ctlog === undefined) return "none";
  if (ctlog.trustRootRef !== undefined) {
    c.refuse(
      `${base}.ctlog.trustRootRef`,
      "a TrustRoot object's transparency log: the import does not read TrustRoot objects; write the Rekor key into rekorKeyData by hand",
    );
    return "none";
  }
  if (ctlog.url === undefined) return "none";
  if (opts.trust === undefined) {
    c.refuse(`${base}.ctlog.url`, "the Sigstore public-good trust material could not be read");
    return "none";
  }
  if (!sameUrl(ctlog.url, opts.trust.rekorUrl)) {
    c.refuse(
      `${base}.ctlog.url`,
      `a transparency log other than ${opts.trust.rekorUrl}: the import knows no public key for it; write its key into rekorKeyData by hand`,
    );
  }
  return "public";
}

function keySource(
  c: Collector,
  base: string,
  key: NonNullable<Authority["key"]>,
  opts: PolicyControllerOptions,
): KeySource | undefined {
  if (key.kms !== undefined) {
    c.refuse(
      `${base}.kms`,
      "a KMS key is fetched by policy-controller at run time; policy.json needs the public key itself: export it (cosign public-key --key KMS-URI) and use key.data",
    );
  }
  if (key.hashAlgorithm !== undefined && key.hashAlgorithm !== "sha256") {
    c.refuse(
      `${base}.hashAlgorithm`,
      `containers-image verifies sigstore signatures with SHA-256 only; signatures made with ${key.hashAlgorithm} would all fail`,
    );
  }
  if (key.data !== undefined) {
    const blocks = key.data.match(PEM_PUBLIC_KEY) ?? [];
    if (blocks.length > 1) {
      c.refuse(
        `${base}.data`,
        `${blocks.length} PEM blocks: policy-controller trusts only the first, so importing all would trust keys it never did; keep one key per authority`,
      );
      return;
    }
    const keyData = b64(`${(blocks[0] ?? key.data).trim()}\n`);
    const check = checkPublicKey(keyData);
    if (!check.ok) {
      c.refuse(`${base}.data`, check.reason);
      return;
    }
    return { keyData };
  }
  if (key.secretRef !== undefined) {
    const name = key.secretRef.name;
    const from = opts.policyControllerNamespace;
    if (key.secretRef.namespace !== undefined && key.secretRef.namespace !== from) {
      c.warnings.push(
        `${base}.secretRef.namespace ${JSON.stringify(key.secretRef.namespace)} is ignored by policy-controller, which reads Secret ${name} from ${from}`,
      );
    }
    const secret = opts.secret(from, name);
    if (secret === undefined) {
      c.secretCopies.push({
        fromNamespace: from,
        toNamespace: opts.secretNamespace,
        name,
        key: opts.defaultSecretKey,
        seen: false,
      });
      return {
        keySecretRef: { name, namespace: opts.secretNamespace, key: opts.defaultSecretKey },
      };
    }
    const entries = Object.entries(secret.data);
    const [entry] = entries;
    if (entry === undefined || entries.length !== 1) {
      c.refuse(
        `${base}.secretRef`,
        `Secret ${from}/${name} has ${entries.length} data entries; policy-controller refuses any but exactly one`,
      );
      return;
    }
    const check = checkPublicKey(entry[1]);
    if (!check.ok) {
      c.refuse(`${base}.secretRef`, `Secret ${from}/${name}: ${check.reason}`);
      return;
    }
    c.secretCopies.push({
      fromNamespace: from,
      toNamespace: opts.secretNamespace,
      name,
      key: entry[0],
      seen: true,
    });
    return { keySecretRef: { name, namespace: opts.secretNamespace, key: entry[0] } };
  }
  if (key.kms === undefined) c.refuse(base, "one of data, secretRef or kms is required");
  return undefined;
}

function keyless(
  c: Collector,
  base: string,
  k: NonNullable<Authority["keyless"]>,
  opts: PolicyControllerOptions,
): Verdict | undefined {
  const trust = opts.trust;
  if (trust === undefined) {
    c.refuse(base, "the Sigstore public-good trust material could not be read");
    return;
  }
  if (k["ca-cert"] !== undefined) {
    c.refuse(
      `${base}.ca-cert`,
      "a custom Fulcio CA: the import cannot tell which Rekor log vouches for it; write a FulcioCAWithRekor policy with its CA and Rekor key by hand",
    );
  }
  if (k.trustRootRef !== undefined) {
    c.refuse(
      `${base}.trustRootRef`,
      "a TrustRoot object: the import does not read TrustRoot objects; write a FulcioCAWithRekor policy with its CA and Rekor key by hand",
    );
  }
  if (k.url !== undefined && !sameUrl(k.url, trust.fulcioUrl)) {
    c.refuse(
      `${base}.url`,
      `a Fulcio instance other than ${trust.fulcioUrl}: the import knows no CA for it; write a FulcioCAWithRekor policy with its CA by hand`,
    );
  }
  const ids = k.identities ?? [];
  if (ids.length !== 1) {
    c.refuse(
      `${base}.identities`,
      ids.length === 0
        ? "at least one identity is required"
        : `${ids.length} identities are alternatives (any one may sign); policy.json's fulcio requirement names exactly one issuer and one email`,
    );
    return;
  }
  const id = ids[0] ?? {};
  const at = `${base}.identities[0]`;
  if (id.issuerRegExp !== undefined) {
    c.refuse(
      `${at}.issuerRegExp`,
      "a regular expression: policy.json compares the OIDC issuer as an exact string",
    );
  }
  if (id.subjectRegExp !== undefined) {
    c.refuse(
      `${at}.subjectRegExp`,
      "a regular expression: policy.json compares the subject as one exact email address",
    );
  }
  if (id.issuer === undefined && id.issuerRegExp === undefined)
    c.refuse(`${at}.issuer`, "required");
  if (id.subject === undefined && id.subjectRegExp === undefined) {
    c.refuse(`${at}.subject`, "required");
  }
  if (id.subject !== undefined && !EMAIL.test(id.subject)) {
    c.refuse(
      `${at}.subject`,
      `${JSON.stringify(id.subject)} is not an email address: containers-image matches only the certificate's email SANs, not URI SANs such as CI workflow identities`,
    );
  }
  if (id.issuer === undefined || id.subject === undefined) return undefined;
  return { kind: "keyless", issuer: id.issuer, email: id.subject };
}

function authorityVerdict(
  c: Collector,
  base: string,
  a: Authority,
  opts: PolicyControllerOptions,
): Verdict | undefined {
  const kinds = (["key", "keyless", "static", "rfc3161timestamp"] as const).filter(
    (k) => a[k] !== undefined,
  );
  if (kinds.length !== 1 && !(kinds.length === 2 && kinds.includes("rfc3161timestamp"))) {
    c.refuse(base, "exactly one of key, keyless or static is required");
    return;
  }
  if ((a.attestations ?? []).length > 0) {
    c.refuse(
      `${base}.attestations`,
      "attestations (in-toto statements checked against a policy): policy.json checks image signatures only",
    );
  }
  if (a.rfc3161timestamp !== undefined) {
    c.refuse(
      `${base}.rfc3161timestamp`,
      "RFC 3161 timestamps: containers-image's sigstore verification has no timestamp authority support",
    );
  }
  if (a.signatureFormat !== undefined && a.signatureFormat !== "legacy") {
    c.refuse(
      `${base}.signatureFormat`,
      `${JSON.stringify(a.signatureFormat)}: containers-image reads cosign's legacy signatures (tag sha256-<digest>.sig) only, not bundles`,
    );
  }
  (a.source ?? []).forEach((s, i) => {
    const at = `${base}.source[${i}]`;
    if (s.oci !== undefined && s.oci !== "") {
      c.refuse(
        `${at}.oci`,
        "signatures stored in another repository: containers-image looks for sigstore signatures beside the image only",
      );
    }
    if (s.tagPrefix !== undefined && s.tagPrefix !== "") {
      c.refuse(
        `${at}.tagPrefix`,
        "a signature tag prefix: containers-image looks for the tag sha256-<digest>.sig only",
      );
    }
    if ((s.signaturePullSecrets ?? []).length > 0) {
      c.warnings.push(
        `${at}.signaturePullSecrets is dropped: CRI-O reads signatures beside the image with the pod's own image pull credentials`,
      );
    }
  });
  if (a.static !== undefined) {
    if (a.ctlog !== undefined) c.refuse(`${base}.ctlog`, "not allowed with static");
    if (a.static.action === "pass") return { kind: "pass" };
    if (a.static.action === "fail") return { kind: "fail" };
    c.refuse(`${base}.static.action`, 'must be "pass" or "fail"');
    return;
  }
  const rekor = rekorOf(c, base, a, opts);
  if (a.key !== undefined) {
    const key = keySource(c, `${base}.key`, a.key, opts);
    return key === undefined ? undefined : { kind: "key", key, rekor };
  }
  if (a.keyless !== undefined) {
    const v = keyless(c, `${base}.keyless`, a.keyless, opts);
    if (v !== undefined && rekor === "none") {
      c.warnings.push(
        `${base}: policy-controller checked this keyless authority without a transparency log; policy.json needs a Rekor SET for Fulcio certificates, so signatures never logged in ${opts.trust?.rekorUrl ?? "Rekor"} are refused`,
      );
    }
    return v;
  }
  return undefined;
}

const IDENTITY = { signedIdentity: { matchPolicy: "MatchRepository" as const } };

/** The alternatives (OR) of one policy's authorities that policy.json cannot express, judged on
 * what the authorities are, whether or not each one converts. A static pass makes the policy
 * pass whatever the others are. */
function checkAlternatives(c: Collector, authorities: readonly Authority[]): void {
  if (authorities.some((a) => a.static?.action === "pass")) return;
  const keys = authorities.filter((a) => a.key !== undefined);
  const keyless = authorities.filter((a) => a.keyless !== undefined);
  if (keys.length > 0 && keyless.length > 0) {
    c.refuse(
      "spec.authorities",
      "a key authority OR a keyless one: policy.json ANDs the requirements of a scope and cannot say either may sign",
    );
  }
  if (keyless.length > 1) {
    c.refuse(
      "spec.authorities",
      `${keyless.length} keyless authorities are alternatives; policy.json's fulcio requirement names exactly one issuer and one email`,
    );
  }
  const logged = new Set(
    keys.map((a) => a.ctlog?.url !== undefined || a.ctlog?.trustRootRef !== undefined),
  );
  if (logged.size > 1) {
    c.refuse(
      "spec.authorities",
      "key authorities with and without a transparency log: policy.json's rekorKeyData applies to every key of one requirement",
    );
  }
}

function combineVerdicts(
  c: Collector,
  verdicts: readonly Verdict[],
  opts: PolicyControllerOptions,
): PolicyBody | undefined {
  if (verdicts.some((v) => v.kind === "pass")) {
    return { rootOfTrust: { policyType: "InsecureAcceptAnything" } };
  }
  // A failing authority never passes the policy: in an OR it changes nothing. The combinations
  // policy.json cannot express were refused by checkAlternatives.
  const keys = verdicts.flatMap((v) => (v.kind === "key" ? [v] : []));
  const keyless = verdicts.flatMap((v) => (v.kind === "keyless" ? [v] : []));
  if (keys.length === 0 && keyless.length === 0) return { rootOfTrust: { policyType: "Reject" } };
  const [first, ...rest] = keys;
  if (first !== undefined) {
    const trust = opts.trust;
    return {
      rootOfTrust: {
        policyType: "PublicKey",
        publicKey: {
          ...first.key,
          ...(first.rekor === "public" && trust !== undefined
            ? { rekorKeyData: trust.rekorKeyData }
            : {}),
          ...(rest.length > 0 ? { additionalKeys: rest.map((k) => k.key) } : {}),
        },
      },
      ...IDENTITY,
    };
  }
  const [only] = keyless;
  const trust = opts.trust;
  if (only === undefined || trust === undefined) return undefined;
  c.warnings.push(
    "keyless: containers-image does not check the Fulcio certificate's SCT (policy-controller does unless insecureIgnoreSCT); it requires the Rekor SET instead",
  );
  return {
    rootOfTrust: {
      policyType: "FulcioCAWithRekor",
      fulcioCAWithRekor: {
        fulcioCAData: trust.fulcioCAData,
        rekorKeyData: trust.rekorKeyData,
        fulcioSubject: { oidcIssuer: only.issuer, signedEmail: only.email },
      },
    },
    ...IDENTITY,
  };
}

export function convertPolicyController(
  value: unknown,
  version: PolicyControllerVersion,
  opts: PolicyControllerOptions,
): PolicyControllerResult {
  const source = sourceOf(value);
  const parsed = schemas[version].safeParse(value);
  if (!parsed.success) return { ok: false, problems: schemaProblems(source, parsed.error) };
  const spec = parsed.data.spec;
  const c = new Collector(source);

  if (spec.policy !== undefined) {
    c.refuse(
      "spec.policy",
      `a ${spec.policy.type} policy evaluated over the verified signatures: policy.json has nothing to run it`,
    );
  }
  if (spec.mode === "warn") {
    c.refuse(
      "spec.mode",
      "warn admits every image and only reports failures; policy.json either accepts a pull or refuses it",
    );
  } else if (spec.mode !== undefined && spec.mode !== "enforce") {
    c.refuse("spec.mode", `unknown mode ${JSON.stringify(spec.mode)}`);
  }
  if ((spec.match ?? []).length > 0) {
    c.refuse(
      "spec.match",
      "resource selectors choose which workloads are checked; CRI-O checks every pull, whatever asked for it",
    );
  }
  const authorities = spec.authorities ?? [];
  if (authorities.length === 0) {
    c.refuse(
      "spec.authorities",
      "no authorities: write the policy as a static fail authority (Reject) or a static pass one",
    );
  }
  checkAlternatives(c, authorities);
  const verdicts: Verdict[] = [];
  authorities.forEach((a, i) => {
    const v = authorityVerdict(c, `spec.authorities[${i}]`, a, opts);
    if (v !== undefined) verdicts.push(v);
  });
  const body = c.problems.length === 0 ? combineVerdicts(c, verdicts, opts) : undefined;
  if (body === undefined && c.problems.length === 0) {
    c.refuse("spec.authorities", "no authority could be converted");
  }

  const globs = mapGlobs(spec.images.map((i) => i.glob));
  for (const r of globs.refused) c.refuse(`spec.images[${r.index}].glob`, r.reason);
  const accepts = body?.rootOfTrust.policyType === "InsecureAcceptAnything";
  for (const s of globs.scopes) {
    if (s.missing.length === 0) continue;
    const field = `spec.images[${s.globs.join(",")}].glob`;
    const scope = s.scope === "" ? "*" : s.scope;
    const also = s.missing.join("; ");
    if (accepts) {
      c.refuse(
        field,
        `scope ${scope} would also accept ${also}, which policy-controller did not: that would loosen it`,
      );
    } else if (!opts.widenGlobs) {
      c.refuse(
        field,
        `no scope covers exactly these images: scope ${scope} also covers ${also}; re-run with --widen-globs to require this policy there too`,
      );
    } else {
      c.warnings.push(`${field}: scope ${scope} also requires this policy of ${also}`);
    }
  }
  if (c.problems.length > 0 || body === undefined) {
    return { ok: false, problems: c.problems };
  }
  return {
    ok: true,
    converted: {
      source,
      name: parsed.data.metadata.name,
      scopes: globs.scopes.map((s) => s.scope),
      policy: body,
      warnings: c.warnings,
      secretCopies: c.secretCopies,
    },
  };
}

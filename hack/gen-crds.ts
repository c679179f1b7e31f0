// Generates the CustomResourceDefinitions in crds/ from one schema source, so that
// ClusterImagePolicy and ImagePolicy share every field, bound, description and CEL rule (they differ
// only in keySecretRef.namespace, which exists only where the Secret can live in another namespace).
//
//   npm exec -- node hack/gen-crds.ts           # rewrite crds/*.yaml
//   npm exec -- node hack/gen-crds.ts --check   # exit 1 if crds/*.yaml is not what this script writes
//
// Output is deterministic: the same source always gives the same bytes (key order is the order of
// the object literals below, and the YAML is formatted with the repository's Prettier config).
// test/unit/crds.test.ts runs renderCrds() and compares it with the checked-in files.

import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";
import { stringify } from "yaml";

export const GROUP = "imagepolicy.dev";
export const VERSION = "v1alpha1";
export const CRD_DIR = "crds";

/** A (small) structural OpenAPI v3 schema as written in a CRD. */
export interface Schema {
  type?: "object" | "array" | "string" | "integer" | "boolean";
  description?: string;
  format?: string;
  enum?: readonly string[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  required?: readonly string[];
  properties?: Readonly<Record<string, Schema>>;
  additionalProperties?: Schema;
  items?: Schema;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: readonly string[];
  "x-kubernetes-validations"?: readonly Rule[];
}

/** A CEL validation rule (x-kubernetes-validations item). */
export interface Rule {
  rule: string;
  message: string;
  messageExpression?: string;
  reason?:
    "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Regular expressions (RE2, as CEL's matches() uses). Written with character classes instead of
// backslash escapes, so they read the same in TypeScript, in YAML and in the CEL string literal.

/** A lowercase DNS label. */
const LABEL = "[a-z0-9]([a-z0-9-]*[a-z0-9])?";
/** A TCP port, 1 to 65535, without leading zeros. */
const PORT =
  "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
/**
 * A registry host as the docker reference grammar recognises it before the first '/': a name with
 * at least one dot (DNS name or IPv4 address) or `localhost`, with an optional port, or any single
 * label with a port (`registry:5000`).
 */
const HOST = `((${LABEL}([.]${LABEL})+|localhost)(:${PORT})?|${LABEL}:${PORT})`;
/** A repository path component (docker reference grammar: separators `.`, `_`, `__`, `-`+). */
const PATH_COMPONENT = "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*";
/** A first path component of a Docker Hub short name: no dot, so it cannot be a host. */
const SHORT_FIRST = "[a-z0-9]+((_|__|-+)[a-z0-9]+)*";
const TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST = "(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})";
const TAG_OR_DIGEST = `(:${TAG}|@${DIGEST})`;

/**
 * Every scope form, anchored: `*`, `*.domain`, host[:port][/path...][:tag|@digest], short name.
 * The host alternative accepts any dotted label sequence: a single label without a port is a
 * Docker Hub short name's first component, which the last alternative accepts anyway. Written
 * compactly because the apiserver's cost estimate of matches() grows with the regex's length
 * times the string's maxLength times the list's maxItems, and must stay within its budget.
 */
export const SCOPE_REGEX =
  `^([*]|[*][.]${LABEL}([.]${LABEL})*` +
  `|${LABEL}([.]${LABEL})*(:${PORT})?((/${PATH_COMPONENT})+${TAG_OR_DIGEST}?)?` +
  `|${SHORT_FIRST}(/${PATH_COMPONENT})*${TAG_OR_DIGEST}?)$`;
/** A fully qualified repository or repository prefix: host[:port][/path...], no tag or digest. */
export const REPOSITORY_REGEX = `^${HOST}(/${PATH_COMPONENT})*$`;
/** A fully qualified image reference that names one image: a repository and a tag or digest. */
export const REFERENCE_REGEX = `^${HOST}(/${PATH_COMPONENT})+${TAG_OR_DIGEST}$`;
export const DNS1123_SUBDOMAIN_REGEX = `^${LABEL}([.]${LABEL})*$`;
export const DNS1123_LABEL_REGEX = `^${LABEL}$`;

function celString(s: string): string {
  if (s.includes("'") || s.includes("\\")) throw new Error(`not a plain CEL string: ${s}`);
  return `'${s}'`;
}

// ---------------------------------------------------------------------------------------------
// Small builders.

function str(description: string, maxLength: number, extra: Partial<Schema> = {}): Schema {
  return { type: "string", description, ...extra, maxLength };
}

/** base64 of binary or PEM data; CEL sees it as bytes. */
function bytes(description: string, maxLength = 65536): Schema {
  return { type: "string", description, format: "byte", minLength: 1, maxLength };
}

function obj(
  description: string,
  properties: Record<string, Schema>,
  required: readonly string[] = [],
  rules: readonly Rule[] = [],
): Schema {
  const s: Schema = { type: "object", description };
  if (required.length > 0) s.required = required;
  s.properties = properties;
  if (rules.length > 0) s["x-kubernetes-validations"] = rules;
  return s;
}

function matching(regex: string, field: string, what: string): Rule {
  return {
    rule: `self.matches(${celString(regex)})`,
    message: `${field} must be ${what}`,
    messageExpression: `'${field} "' + self + '" is invalid: it must be ${what}'`,
  };
}

/** `<block> is required when <discriminator> is <value>, and forbidden otherwise`. */
function unionMember(discriminator: string, value: string, block: string): Rule {
  return {
    rule: `has(self.${discriminator}) && self.${discriminator} == '${value}' ? has(self.${block}) : !has(self.${block})`,
    message: `${block} is required when ${discriminator} is ${value}, and forbidden otherwise`,
  };
}

const EXACTLY_ONE_KEY: Rule = {
  rule: "has(self.keyData) != has(self.keySecretRef)",
  message: "exactly one of keyData and keySecretRef must be set",
};

// ---------------------------------------------------------------------------------------------
// The policy spec, shared by ClusterImagePolicy and ImagePolicy.

type Kind = "ClusterImagePolicy" | "ImagePolicy";

const SECRET_REF_DESCRIPTION =
  "keySecretRef reads the public key from a key of a Secret instead of inlining it; the value is " +
  "the PEM text itself (not base64 of it, beyond the base64 every Secret's data already has). In a " +
  "ClusterImagePolicy, namespace names the Secret's namespace; an ImagePolicy has no namespace field " +
  "and always reads the Secret from its own namespace. The controller copies the key into the " +
  "compiled policy, watches the Secret, and recompiles when it changes; if the Secret or the key is " +
  "missing, the policy is reported Ready=False and its previous compiled state stays in force.";

function keySecretRef(kind: Kind): Schema {
  const properties: Record<string, Schema> = {
    name: str("name of the Secret (a DNS-1123 subdomain).", 253, {
      minLength: 1,
      "x-kubernetes-validations": [
        matching(DNS1123_SUBDOMAIN_REGEX, "name", "a lowercase DNS-1123 subdomain"),
      ],
    }),
  };
  if (kind === "ClusterImagePolicy") {
    properties.namespace = str(
      "namespace of the Secret (a DNS-1123 label). The operator must be allowed to read Secrets there.",
      63,
      {
        minLength: 1,
        "x-kubernetes-validations": [
          matching(DNS1123_LABEL_REGEX, "namespace", "a lowercase DNS-1123 label"),
        ],
      },
    );
  }
  properties.key = str(
    "key of the Secret's data whose value is the PEM-encoded public key, e.g. cosign.pub.",
    253,
    {
      minLength: 1,
      "x-kubernetes-validations": [
        {
          rule: "self.matches('^[-._a-zA-Z0-9]+$')",
          message: "key must consist of alphanumeric characters, '-', '_' or '.'",
        },
      ],
    },
  );
  const required = kind === "ClusterImagePolicy" ? ["name", "namespace", "key"] : ["name", "key"];
  return obj(SECRET_REF_DESCRIPTION, properties, required);
}

const KEY_DATA_DESCRIPTION =
  "keyData is the public key inline: the base64 encoding of a PEM block such as " +
  "'-----BEGIN PUBLIC KEY-----' (cosign and skopeo keys are ECDSA P-256, RSA or Ed25519). " +
  "Exactly one of keyData and keySecretRef must be set.";

function publicKey(kind: Kind): Schema {
  return obj(
    "publicKey trusts sigstore signatures (cosign, skopeo --sign-by-sigstore-private-key) made by " +
      "one of a set of known keys. The primary key is keyData or keySecretRef; additionalKeys add " +
      "more keys, and a signature by any one of them is accepted (useful for key rotation). " +
      "Required when policyType is PublicKey, forbidden otherwise.",
    {
      keyData: bytes(KEY_DATA_DESCRIPTION),
      keySecretRef: keySecretRef(kind),
      rekorKeyData: bytes(
        "rekorKeyData, when set, also requires every signature to carry a Rekor transparency-log " +
          "inclusion proof (a signed entry timestamp) verifiable with this Rekor public key: the " +
          "base64 encoding of its PEM block. Leave it unset for keys used without a transparency log.",
      ),
      additionalKeys: {
        type: "array",
        description:
          "additionalKeys are further trusted keys, each given inline or from a Secret exactly as the " +
          "primary key. A signature by any of the keys is accepted. More than one key needs CRI-O " +
          "1.32 or newer on the nodes; older nodes report the policy as not renderable.",
        maxItems: 16,
        items: obj(
          "One more trusted public key: exactly one of keyData and keySecretRef.",
          { keyData: bytes(KEY_DATA_DESCRIPTION), keySecretRef: keySecretRef(kind) },
          [],
          [EXACTLY_ONE_KEY],
        ),
      },
    },
    [],
    [EXACTLY_ONE_KEY],
  );
}

const EMAIL_REGEX = "^[^@ ]+@[^@ ]+$";

const fulcioCAWithRekor = obj(
  "fulcioCAWithRekor trusts keyless sigstore signatures: the signing certificate must be issued " +
    "by this Fulcio CA to the given OIDC identity, and the signature must be logged in Rekor. " +
    "Required when policyType is FulcioCAWithRekor, forbidden otherwise.",
  {
    fulcioCAData: bytes(
      "fulcioCAData is the base64 encoding of the PEM certificate(s) of the Fulcio certificate " +
        "authority that issues the short-lived signing certificates.",
    ),
    rekorKeyData: bytes(
      "rekorKeyData is the base64 encoding of the PEM public key of the Rekor transparency log in " +
        "which every accepted signature must be recorded.",
    ),
    fulcioSubject: obj(
      "fulcioSubject is the identity the signing certificate must have been issued to.",
      {
        oidcIssuer: str(
          "oidcIssuer is the URL of the OIDC provider that authenticated the signer, as recorded by " +
            "Fulcio in the certificate, e.g. https://token.actions.githubusercontent.com or " +
            "https://accounts.google.com. It is compared exactly.",
          2048,
          {
            minLength: 1,
            "x-kubernetes-validations": [
              { rule: "isURL(self)", message: "oidcIssuer must be an absolute URL" },
            ],
          },
        ),
        signedEmail: str(
          "signedEmail is the e-mail address the signing certificate must name in its subject " +
            "alternative name, e.g. release-bot@example.com.",
          320,
          {
            minLength: 1,
            "x-kubernetes-validations": [
              matching(EMAIL_REGEX, "signedEmail", "an e-mail address (local@domain)"),
            ],
          },
        ),
      },
      ["oidcIssuer", "signedEmail"],
    ),
  },
  ["fulcioCAData", "rekorKeyData", "fulcioSubject"],
);

const pki = obj(
  "pki trusts sigstore signatures whose signing certificate chains to your own certificate " +
    "authority (bring-your-own PKI, no Fulcio or Rekor) and names the expected subject. Needs CRI-O " +
    "1.33 or newer on the nodes. Required when policyType is PKI, forbidden otherwise.",
  {
    caRootsData: bytes(
      "caRootsData is the base64 encoding of a PEM bundle of one or more trusted root CA " +
        "certificates.",
    ),
    caIntermediatesData: bytes(
      "caIntermediatesData is the base64 encoding of a PEM bundle of intermediate CA certificates " +
        "that may link the signing certificate to a root. Optional.",
    ),
    pkiCertificateSubject: obj(
      "pkiCertificateSubject is the identity the signing certificate must carry in its subject " +
        "alternative names. Set email, hostname, or both (then both must match).",
      {
        email: str("email is the e-mail address SAN the certificate must contain.", 320, {
          minLength: 1,
          "x-kubernetes-validations": [
            matching(EMAIL_REGEX, "email", "an e-mail address (local@domain)"),
          ],
        }),
        hostname: str(
          "hostname is the DNS name SAN the certificate must contain: a lowercase DNS name, " +
            "optionally starting with '*.' for a wildcard certificate.",
          253,
          {
            minLength: 1,
            "x-kubernetes-validations": [
              matching(
                `^([*][.])?${LABEL}([.]${LABEL})*$`,
                "hostname",
                "a lowercase DNS name, optionally prefixed by *.",
              ),
            ],
          },
        ),
      },
      [],
      [
        {
          rule: "has(self.email) || has(self.hostname)",
          message: "pkiCertificateSubject needs at least one of email and hostname",
        },
      ],
    ),
  },
  ["caRootsData", "pkiCertificateSubject"],
);

const gpgKey = obj(
  'gpgKey trusts GPG "simple signing" signatures (atomic/containers signatures, not sigstore) ' +
    "made by a key of the given keyring. Such signatures are not stored in the registry itself: " +
    "set lookaside to where they are published. Required when policyType is GPGKey, forbidden " +
    "otherwise.",
  {
    keyData: bytes(
      "keyData is the base64 encoding of a GPG public keyring (binary or ASCII-armored); a " +
        "signature by any key in it is accepted.",
    ),
    lookaside: str(
      "lookaside is the base URL of the signature store (the registries.d 'lookaside' setting) for " +
        "every scope of this policy, e.g. https://registry.example.com/sigstore. An https://, " +
        "http:// or file:// URL. When unset, the node's existing registries.d configuration must " +
        "already say where the signatures are.",
      2048,
      {
        minLength: 1,
        "x-kubernetes-validations": [
          {
            rule: "(self.startsWith('https://') || self.startsWith('http://') || self.startsWith('file://')) && isURL(self)",
            message: "lookaside must be an https://, http:// or file:// URL",
          },
        ],
      },
    ),
  },
  ["keyData"],
);

const POLICY_TYPES = [
  "PublicKey",
  "FulcioCAWithRekor",
  "PKI",
  "GPGKey",
  "Reject",
  "InsecureAcceptAnything",
] as const;

function rootOfTrust(kind: Kind): Schema {
  return obj(
    "rootOfTrust says what makes an image in the scopes acceptable: a signature verified against " +
      "a key, a certificate authority or a keyring, or no check at all (InsecureAcceptAnything), or " +
      "nothing (Reject). policyType selects the kind and the block of the same name holds its " +
      "data; every other block must be absent.",
    {
      policyType: {
        type: "string",
        description:
          "policyType selects the root of trust. PublicKey: sigstore signatures by known keys " +
          "(publicKey). FulcioCAWithRekor: keyless sigstore signatures by an OIDC identity " +
          "(fulcioCAWithRekor). PKI: sigstore signatures with certificates from your own CA (pki). " +
          "GPGKey: GPG simple signing (gpgKey). Reject: every image in the scopes is refused, e.g. " +
          "the scope '*' for default-deny. InsecureAcceptAnything: every image in the scopes is " +
          "accepted without any check, an explicit exception under a broader signed or rejected " +
          "scope. The last two take no block and no signedIdentity.",
        enum: POLICY_TYPES,
      },
      publicKey: publicKey(kind),
      fulcioCAWithRekor,
      pki,
      gpgKey,
    },
    ["policyType"],
    [
      unionMember("policyType", "PublicKey", "publicKey"),
      unionMember("policyType", "FulcioCAWithRekor", "fulcioCAWithRekor"),
      unionMember("policyType", "PKI", "pki"),
      unionMember("policyType", "GPGKey", "gpgKey"),
    ],
  );
}

const REPOSITORY_WHAT =
  "a fully qualified repository or repository prefix, host[:port][/path], lowercase, without tag or digest";

function repository(field: string, description: string): Schema {
  return str(description, 512, {
    minLength: 1,
    "x-kubernetes-validations": [matching(REPOSITORY_REGEX, field, REPOSITORY_WHAT)],
  });
}

const MATCH_POLICIES = [
  "MatchRepoDigestOrExact",
  "MatchRepository",
  "ExactRepository",
  "RemapIdentity",
  "MatchExact",
  "ExactReference",
] as const;

const signedIdentity = obj(
  "signedIdentity says which image name a signature must claim (every sigstore and simple " +
    "signature names the image it was made for) compared with the name being pulled. When absent, " +
    "MatchRepoDigestOrExact applies. Forbidden when policyType is Reject or InsecureAcceptAnything.",
  {
    matchPolicy: {
      type: "string",
      description:
        "matchPolicy is the comparison. MatchRepoDigestOrExact (the default): a pull by digest " +
        "needs a signature for the same repository; a pull by tag needs a signature naming exactly " +
        "that repository and tag (cosign signatures name only the repository, so tag pulls of " +
        "cosign-signed images need MatchRepository). MatchRepository: the signature must name the " +
        "same repository, any tag or digest. ExactRepository: the signature must name the " +
        "repository in exactRepository (e.g. images copied from elsewhere). RemapIdentity: like " +
        "MatchRepoDigestOrExact after replacing remapIdentity.prefix with remapIdentity.signedPrefix " +
        "in the pulled name (e.g. a mirror of a vendor's repositories). MatchExact: the signature " +
        "must name exactly the pulled reference (tag pulls only). ExactReference: the signature must " +
        "name the reference in exactReference.",
      enum: MATCH_POLICIES,
    },
    exactRepository: obj(
      "exactRepository holds the repository for matchPolicy ExactRepository; required then, " +
        "forbidden otherwise.",
      {
        repository: repository(
          "repository",
          "repository is the fully qualified repository the signature must name, e.g. " +
            "registry.example.com/team/app (not a Docker Hub short name, no tag or digest).",
        ),
      },
      ["repository"],
    ),
    remapIdentity: obj(
      "remapIdentity holds the prefixes for matchPolicy RemapIdentity; required then, forbidden " +
        "otherwise. A pulled name starting with prefix is checked as if it started with " +
        "signedPrefix; other names are checked unchanged.",
      {
        prefix: repository(
          "prefix",
          "prefix is a host[:port], repository namespace or repository matched against the pulled " +
            "name on whole path components, e.g. mirror.example.com/vendor.",
        ),
        signedPrefix: repository(
          "signedPrefix",
          "signedPrefix replaces prefix in the name the signature must claim, e.g. " +
            "registry.vendor.com/products.",
        ),
      },
      ["prefix", "signedPrefix"],
    ),
    exactReference: obj(
      "exactReference holds the reference for matchPolicy ExactReference; required then, " +
        "forbidden otherwise.",
      {
        reference: str(
          "reference is the fully qualified image reference, with a tag or a digest, that the " +
            "signature must name, e.g. registry.example.com/base/ubi:9.4.",
          512,
          {
            minLength: 1,
            "x-kubernetes-validations": [
              matching(
                REFERENCE_REGEX,
                "reference",
                "a fully qualified image reference host[:port]/path with a :tag or an @digest",
              ),
            ],
          },
        ),
      },
      ["reference"],
    ),
  },
  ["matchPolicy"],
  [
    unionMember("matchPolicy", "ExactRepository", "exactRepository"),
    unionMember("matchPolicy", "RemapIdentity", "remapIdentity"),
    unionMember("matchPolicy", "ExactReference", "exactReference"),
  ],
);

const SCOPE_WHAT =
  '"*", a leading wildcard "*.domain", host[:port][/path][:tag|@digest] with a lowercase host and path, or a Docker Hub name such as busybox';

const scopes: Schema = {
  type: "array",
  description:
    "scopes are the images this policy applies to, 1 to 256 of them. A scope is: a host[:port] " +
    "(registry.example.com, 10.0.0.5:5000, localhost:5000); a repository namespace or repository " +
    "under it (registry.example.com/team, registry.example.com/team/app); one image by tag or " +
    "digest (registry.example.com/team/app:1.0, ...@sha256:<64 hex>); a wildcard '*.example.com' " +
    "matching every host below example.com (not example.com itself, no port or path); or '*', " +
    "every image that no more specific scope matches. Docker Hub short names (busybox, " +
    "library/busybox, user/repo:tag) mean docker.io/library/busybox and so on; a first component " +
    "counts as a host only if it contains '.' or ':' or is localhost. Hosts and paths are " +
    "lowercase. For any image only the most specific matching scope decides (exact reference, " +
    "then repository, its parent namespaces, the host, wildcards from longest to shortest, then " +
    "'*'); policies on the same scope must all be satisfied. ClusterImagePolicies form the " +
    "cluster layer and the ImagePolicies of a namespace form that namespace's layer; a pull in a " +
    "namespace must satisfy both layers. Unlike OpenShift, where an ImagePolicy scope nested " +
    "under a ClusterImagePolicy scope is ignored, here it adds requirements: a namespace can " +
    "tighten, never loosen, the cluster policy.",
  minItems: 1,
  maxItems: 256,
  "x-kubernetes-list-type": "set",
  items: {
    type: "string",
    description: "An image scope; see scopes.",
    minLength: 1,
    maxLength: 512,
    "x-kubernetes-validations": [
      {
        rule: "!self.contains('*') || self == '*' || (self.startsWith('*.') && !self.substring(1).contains('*'))",
        message: '"*" is allowed only as the whole scope or as a leading "*." label',
        messageExpression:
          '\'scope "\' + self + \'" is invalid: "*" is allowed only as the whole scope or as a leading "*." label\'',
      },
      {
        rule: "!self.startsWith('*.') || !(self.contains(':') || self.contains('/') || self.contains('@'))",
        message: "a wildcard scope matches hosts only: it cannot have a port, path, tag or digest",
        messageExpression:
          "'scope \"' + self + '\" is invalid: a wildcard scope matches hosts only: it cannot have a port, path, tag or digest'",
      },
      {
        rule: `self.matches(${celString(SCOPE_REGEX)})`,
        message: `a scope must be ${SCOPE_WHAT}`,
        messageExpression: `'scope "' + self + '" is invalid: it must be ${SCOPE_WHAT}'`,
      },
    ],
  },
};

function policySpec(kind: Kind): Schema {
  return obj(
    "spec is the policy: which images (scopes) must satisfy which requirement (policy).",
    {
      scopes,
      policy: obj(
        "policy is the requirement every image in the scopes must satisfy.",
        { rootOfTrust: rootOfTrust(kind), signedIdentity },
        ["rootOfTrust"],
        [
          {
            rule: "!has(self.signedIdentity) || !has(self.rootOfTrust.policyType) || !(self.rootOfTrust.policyType in ['Reject', 'InsecureAcceptAnything'])",
            message:
              "signedIdentity is forbidden when policyType is Reject or InsecureAcceptAnything: no signature is checked",
          },
        ],
      ),
    },
    ["scopes", "policy"],
  );
}

// ---------------------------------------------------------------------------------------------
// Status.

const conditions: Schema = {
  type: "array",
  description:
    "conditions are the latest observations of the object's state, one per type. Ready is True " +
    "when the current generation compiled and was published; its reason says why not otherwise.",
  maxItems: 16,
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: obj(
    "A condition in the standard Kubernetes form (metav1.Condition).",
    {
      type: str(
        "type of the condition in CamelCase or foo.example.com/CamelCase, e.g. Ready.",
        316,
        {
          minLength: 1,
          pattern:
            "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        },
      ),
      status: {
        type: "string",
        description: "status of the condition: True, False or Unknown.",
        enum: ["True", "False", "Unknown"],
      },
      observedGeneration: {
        type: "integer",
        format: "int64",
        minimum: 0,
        description:
          "observedGeneration is the metadata.generation the condition was computed from; a " +
          "condition older than the object's generation is stale.",
      },
      lastTransitionTime: {
        type: "string",
        format: "date-time",
        description: "lastTransitionTime is when status last changed.",
      },
      reason: str(
        "reason is a CamelCase machine-readable cause of the last transition, e.g. Compiled, " +
          "UnsupportedFeature, SecretNotFound.",
        1024,
        { minLength: 1, pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" },
      ),
      message: str("message is a human-readable explanation of the reason.", 32768),
    },
    ["type", "status", "lastTransitionTime", "reason", "message"],
  ),
};

const policyStatus = obj(
  "status is written by the controller: whether the policy is in force and how far its rollout " +
    "to the nodes has got.",
  {
    conditions,
    observedGeneration: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "observedGeneration is the metadata.generation the controller last processed.",
    },
    rollout: obj(
      "rollout summarises the node agents' ImagePolicyNodeStatus objects for the revision that " +
        "contains this policy.",
      {
        nodesApplied: {
          type: "integer",
          format: "int32",
          minimum: 0,
          description: "nodesApplied counts nodes whose policy files are all at revision.",
        },
        nodesEnforcing: {
          type: "integer",
          format: "int32",
          minimum: 0,
          description:
            "nodesEnforcing counts nodes at revision whose CRI-O actually reads the files (see " +
            "ImagePolicyNodeStatus.status.enforcing).",
        },
        nodesTotal: {
          type: "integer",
          format: "int32",
          minimum: 0,
          description: "nodesTotal counts the nodes the policy should reach.",
        },
        display: str(
          "display is nodesEnforcing/nodesTotal for kubectl get, e.g. 3/3: nodes covered (at revision and enforcing) out of all nodes; never rounded up.",
          64,
        ),
        revision: str("revision is the compiled revision that contains this generation.", 128),
      },
    ),
  },
);

// ---------------------------------------------------------------------------------------------
// ImagePolicyNodeStatus.

const nodeStatusSpec = obj(
  "spec identifies the node this status is about.",
  {
    nodeName: str(
      "nodeName is the name of the Node; it equals metadata.name and cannot change.",
      253,
      {
        minLength: 1,
        "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "nodeName is immutable" }],
      },
    ),
  },
  ["nodeName"],
);

const nodeStatusStatus = obj("status is written by the node agent.", {
  runtime: obj("runtime is the container runtime the node runs.", {
    name: str("name of the runtime, e.g. cri-o or containerd.", 63),
    version: str("version of the runtime, e.g. 1.33.2.", 63),
  }),
  enforcing: {
    type: "boolean",
    description:
      "enforcing is true when the runtime is CRI-O configured to read the files the agent " +
      "writes, so that pulls on this node are checked.",
  },
  enforcingReason: str(
    "enforcingReason explains enforcing, especially when false or partial (e.g. not CRI-O, " +
      "CRI-O older than 1.28 so only the cluster policy applies, no re-check at container " +
      "creation before 1.31).",
    1024,
  ),
  appliedRevisions: {
    type: "object",
    description:
      "appliedRevisions maps each policy file the agent wrote on this node (cluster.json, " +
      "<namespace>.json, the registries.d file) to the revision it holds.",
    maxProperties: 4096,
    additionalProperties: str("revision of the file.", 128),
  },
  lastError: str("lastError is the last error the agent hit, empty when none.", 32768),
  lastTransitionTime: {
    type: "string",
    format: "date-time",
    description: "lastTransitionTime is when the applied revisions last changed.",
  },
  lastUpdateTime: {
    type: "string",
    format: "date-time",
    description: "lastUpdateTime is when the agent last wrote this status.",
  },
  conditions,
});

// ---------------------------------------------------------------------------------------------
// CRDs.

const TYPE_META = {
  apiVersion: str(
    "APIVersion is the versioned schema of this object, imagepolicy.dev/v1alpha1.",
    253,
  ),
  kind: str("Kind is the REST resource this object represents.", 63),
  // The apiserver allows nothing but `type: object` here (not even a description).
  metadata: { type: "object" } satisfies Schema,
};

interface Names {
  kind: string;
  plural: string;
  singular: string;
  listKind: string;
  shortNames: readonly string[];
  categories: readonly string[];
}

interface PrinterColumn {
  name: string;
  type: "string" | "boolean" | "integer" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
}

function crd(
  names: Names,
  scope: "Cluster" | "Namespaced",
  description: string,
  root: Schema,
  columns: readonly PrinterColumn[],
): Record<string, unknown> {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${names.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names,
      scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { ...root, description } },
          subresources: { status: {} },
          additionalPrinterColumns: columns,
        },
      ],
    },
  };
}

const AGE: PrinterColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since the object was created.",
};
const READY: PrinterColumn = {
  name: "Ready",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: "Status of the Ready condition.",
};

function policyColumns(): PrinterColumn[] {
  return [
    {
      name: "Scopes",
      type: "string",
      jsonPath: ".spec.scopes",
      description: "Image scopes the policy applies to.",
      priority: 1,
    },
    {
      name: "Type",
      type: "string",
      jsonPath: ".spec.policy.rootOfTrust.policyType",
      description: "Root of trust.",
    },
    READY,
    {
      name: "Rollout",
      type: "string",
      jsonPath: ".status.rollout.display",
      description: "Nodes applied / nodes total.",
    },
    AGE,
  ];
}

function policyRoot(kind: Kind): Schema {
  return obj("", { ...TYPE_META, spec: policySpec(kind), status: policyStatus }, ["spec"]);
}

export function crdObjects(): ReadonlyMap<string, Record<string, unknown>> {
  const categories = ["imagepolicy-all"];
  return new Map([
    [
      `${GROUP}_clusterimagepolicies.yaml`,
      crd(
        {
          kind: "ClusterImagePolicy",
          plural: "clusterimagepolicies",
          singular: "clusterimagepolicy",
          listKind: "ClusterImagePolicyList",
          shortNames: ["cip"],
          categories,
        },
        "Cluster",
        "ClusterImagePolicy requires images pulled anywhere in the cluster to satisfy a signature " +
          "policy. The operator compiles all ClusterImagePolicies into the containers-policy.json " +
          "file CRI-O checks on every pull, on every node. Compatible with OpenShift's " +
          "config.openshift.io/v1 ClusterImagePolicy (change only apiVersion), with extensions: " +
          "several keys, keys from Secrets, Reject, InsecureAcceptAnything, the '*' scope, GPG " +
          "keys, and the MatchExact and ExactReference identities.",
        policyRoot("ClusterImagePolicy"),
        policyColumns(),
      ),
    ],
    [
      `${GROUP}_imagepolicies.yaml`,
      crd(
        {
          kind: "ImagePolicy",
          plural: "imagepolicies",
          singular: "imagepolicy",
          listKind: "ImagePolicyList",
          shortNames: ["imgpol"],
          categories,
        },
        "Namespaced",
        "ImagePolicy adds signature requirements for images pulled by pods of its namespace, on " +
          "top of the ClusterImagePolicies: a pull must satisfy both, so a namespace can tighten " +
          "but never loosen the cluster policy (unlike OpenShift, which ignores an ImagePolicy " +
          "scope nested under a ClusterImagePolicy scope). Same spec as ClusterImagePolicy, except " +
          "that a keySecretRef always names a Secret of this namespace. Needs CRI-O 1.28 or newer " +
          "on the node (per-namespace policy files).",
        policyRoot("ImagePolicy"),
        policyColumns(),
      ),
    ],
    [
      `${GROUP}_imagepolicynodestatuses.yaml`,
      crd(
        {
          kind: "ImagePolicyNodeStatus",
          plural: "imagepolicynodestatuses",
          singular: "imagepolicynodestatus",
          listKind: "ImagePolicyNodeStatusList",
          shortNames: ["ipns"],
          categories,
        },
        "Cluster",
        "ImagePolicyNodeStatus reports, for one node, what the imagepolicy agent enforces there: " +
          "the container runtime, whether it reads the policy files, which revision of each file " +
          "is applied, and the last error. Named after its Node and owned by it; written by the " +
          "agent on that node, read by the controller to compute each policy's rollout.",
        obj(
          "",
          { ...TYPE_META, spec: nodeStatusSpec, status: nodeStatusStatus },
          ["spec"],
          [
            {
              rule: "!has(self.spec) || !has(self.spec.nodeName) || self.metadata.name == self.spec.nodeName",
              message: "metadata.name must equal spec.nodeName",
            },
          ],
        ),
        [
          {
            name: "Runtime",
            type: "string",
            jsonPath: ".status.runtime.version",
            description: "Container runtime version.",
          },
          {
            name: "Enforcing",
            type: "boolean",
            jsonPath: ".status.enforcing",
            description: "Whether the runtime checks pulls against the policy files.",
          },
          READY,
          AGE,
        ],
      ),
    ],
  ]);
}

const HEADER = "# Code generated by hack/gen-crds.ts; DO NOT EDIT.\n";

/** Renders every CRD file: crds/<name> -> YAML text, formatted as Prettier formats it. */
export async function renderCrds(repoRoot: string): Promise<ReadonlyMap<string, string>> {
  const out = new Map<string, string>();
  for (const [name, object] of crdObjects()) {
    const file = path.join(repoRoot, CRD_DIR, name);
    const raw = HEADER + stringify(object, { lineWidth: 0, aliasDuplicateObjects: false });
    const options = (await resolveConfig(file)) ?? {};
    out.set(path.join(CRD_DIR, name), await format(raw, { ...options, filepath: file }));
  }
  return out;
}

async function main(argv: readonly string[]): Promise<number> {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const check = argv.includes("--check");
  let stale = 0;
  for (const [rel, text] of await renderCrds(repoRoot)) {
    const file = path.join(repoRoot, rel);
    const current = await readFile(file, "utf8").catch(() => undefined);
    if (current === text) continue;
    if (check) {
      process.stderr.write(`${rel} is out of date: run npm exec -- node hack/gen-crds.ts\n`);
      stale++;
    } else {
      await writeFile(file, text);
      process.stderr.write(`wrote ${rel}\n`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}

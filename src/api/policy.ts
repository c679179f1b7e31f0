// THE definition of the imagepolicy.dev/v1alpha1 API: every field of ClusterImagePolicy,
// ImagePolicy, ImagePolicyNodeStatus and ImagePullRefusal with its description, bounds and CEL rules, each rule with
// its TypeScript twin. The CRDs in crds/ are rendered from it (src/api/crds.ts, hack/gen-crds.ts)
// and the runtime parser runs it (src/api/parse.ts); docs/api.md explains every rule and where
// this API deliberately differs from OpenShift's config.openshift.io/v1 one.
//
// ClusterImagePolicy and ImagePolicy share one spec and differ in two places only:
// keySecretRef.namespace exists only where the Secret may live in another namespace, and only a
// ClusterImagePolicy may point a GPG lookaside at file:// (a namespace must not make nodes read
// their own files, nor put such a URL into the node-wide registries.d file).

import { z } from "zod";
import { celAnd, celOr, celString, findAllCount, isURL } from "./cel.ts";
import {
  DNS1123_LABEL_REGEX,
  DNS1123_SUBDOMAIN_REGEX,
  EMAIL_REGEX,
  HOSTNAME_REGEX,
  REFERENCE_REGEX,
  REPOSITORY_PREFIX_REGEX,
  REPOSITORY_REGEX,
  SCOPE_REGEX,
  SECRET_KEY_REGEX,
  regex,
} from "./patterns.ts";
import {
  ArrayNode,
  BooleanNode,
  BytesNode,
  IntegerNode,
  MapNode,
  ObjectNode,
  OneOfNode,
  SchemaDefinitionError,
  StringNode,
  UnionNode,
  has,
  isJsonObject,
  optional,
  own,
  required,
  type JsonObject,
  type Node,
  type Props,
  type Rule,
} from "./schema.ts";
import { ResourceNode, clusterObjectMeta, namespacedObjectMeta } from "./resource.ts";

export const GROUP = "imagepolicy.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

export type PolicyKind = "ClusterImagePolicy" | "ImagePolicy";

// ---------------------------------------------------------------------------------------------
// Builders.

/** A CEL string literal holding `s`. */
export function celQuote(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function plain(s: string): string {
  if (s.includes("'") || s.includes("\\")) {
    throw new SchemaDefinitionError(`not a plain CEL string: ${s}`);
  }
  return s;
}

function str(
  description: string,
  maxLength: number,
  extra: { minLength?: number; rules?: readonly Rule<string>[] } = {},
): StringNode {
  return new StringNode(z.string(), { description, maxLength, ...extra });
}

function enumOf<const T extends string>(description: string, values: readonly T[]): StringNode<T> {
  const [first, ...rest] = values;
  if (first === undefined) throw new SchemaDefinitionError("an enum needs values");
  return new StringNode(z.enum([first, ...rest]), { description, enum: values });
}

function dateTime(description: string): StringNode {
  return new StringNode(z.string(), { description, format: "date-time" });
}

function bytes(
  description: string,
  maxLength: number,
  rules: readonly Rule<Uint8Array>[],
): BytesNode {
  return new BytesNode({ description, minLength: 1, maxLength, rules });
}

function obj<P extends Props>(
  description: string,
  props: P,
  rules: readonly Rule<JsonObject>[] = [],
): ObjectNode<P> {
  return new ObjectNode(props, { description, rules });
}

/** `self.matches(re)` with a message naming the value. */
function matching(source: string, field: string, what: string): Rule<string> {
  const re = regex(source);
  return {
    rule: `self.matches(${celQuote(source)})`,
    message: `${field} must be ${what}`,
    messageExpression: {
      cel: `'${plain(field)} "' + self + '" is invalid: it must be ${plain(what)}'`,
      twin: (self) => `${field} "${self}" is invalid: it must be ${what}`,
    },
    holds: (self) => re.test(self),
  };
}

// ---------------------------------------------------------------------------------------------
// Key and certificate data. CEL sees a `format: byte` field as the decoded bytes; string(self)
// reads them as text (and fails to evaluate, refusing the object, when they are not UTF-8).

/** The base64 length bound of PEM key and certificate fields (OpenShift's). */
const PEM_MAX = 8192;
/** GPG keyrings may be larger; a namespace quota bounds the total elsewhere. */
const KEYRING_MAX = 65536;

function pemRules(field: string, label: "PUBLIC KEY" | "CERTIFICATE"): Rule<Uint8Array>[] {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const block = `${begin}\\n[A-Za-z0-9+/=\\n]+${end}`;
  const only = label === "PUBLIC KEY" ? `^${block}\\n?$` : `^${block}(\\n+${block})*\\n*$`;
  const onlyRe = regex(only);
  const rules: Rule<Uint8Array>[] = [
    {
      rule: `string(self).startsWith('${begin}')`,
      message: `${field} must be the base64 encoding of PEM data starting with '${begin}'`,
      holds: (self) => celString(self).startsWith(begin),
    },
    {
      rule: `string(self).endsWith('${end}\\n') || string(self).endsWith('${end}')`,
      message: `${field} must be the base64 encoding of PEM data ending with '${end}'`,
      holds: (self) =>
        celOr(
          () => celString(self).endsWith(`${end}\n`),
          () => celString(self).endsWith(end),
        ),
    },
  ];
  if (label === "CERTIFICATE") {
    rules.push({
      rule: `string(self).findAll('${begin}').size() == string(self).findAll('${end}').size()`,
      message: `${field} must hold as many '${begin}' as '${end}' markers`,
      holds: (self) => findAllCount(celString(self), begin) === findAllCount(celString(self), end),
    });
  }
  rules.push({
    rule: `string(self).matches(${celQuote(only)})`,
    message:
      label === "PUBLIC KEY"
        ? `${field} must be exactly one PEM '${label}' block: nothing before or after it, no private key, no second block`
        : `${field} must be PEM '${label}' blocks only, separated by line breaks: no private key, no other block, no text between them`,
    holds: (self) => onlyRe.test(celString(self)),
  });
  return rules;
}

const publicKeyData = (field: string, description: string): BytesNode =>
  bytes(description, PEM_MAX, pemRules(field, "PUBLIC KEY"));
const certificateData = (field: string, description: string): BytesNode =>
  bytes(description, PEM_MAX, pemRules(field, "CERTIFICATE"));

/**
 * A GPG keyring is usually binary, and the API server cannot give a binary `format: byte` value to
 * CEL (see BytesNode in src/api/schema.ts): its rules would fail to evaluate for most keyrings. So
 * keyData is a base64 string (OpenAPI pattern below) whose rules read the base64 text itself:
 *
 * - a binary keyring starts with a public-key packet: old format, first byte 0x98-0x9b, which
 *   base64 writes as 'm' (the top six bits 100110), or new format 0xc6, written 'x' then one of
 *   g-v (0xc4-0xc7 all start with 'x'; the second character tells 0xc6 apart). A secret-key
 *   packet (0x94-0x97 'l', 0xc5 'x'+Q-f) is refused;
 * - an armoured keyring starts with '-----BEGIN PGP PUBLIC KEY BLOCK-----', 36 bytes that base64
 *   writes as 48 fixed characters;
 * - no 'PRIVATE KEY' anywhere (an armoured secret key, alone or after the public one): wherever
 *   those 11 bytes sit, their base64 contains one of three fixed strings, one per position modulo 3.
 *
 * A secret-key packet after a binary public key is beyond what the text shows; the compiler and
 * the controller's re-encoding refuse it.
 */
const ARMOUR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const ARMOUR_BEGIN_B64 = Buffer.from(ARMOUR_BEGIN).toString("base64");
const PRIVATE_KEY_B64 = ["UFJJVkFURSBLRV", "BSSVZBVEUgS0VZ", "QUklWQVRFIEtFW"] as const;
const NEW_FORMAT_PUBLIC_KEY = "^x[g-v]";
const newFormatRe = regex(NEW_FORMAT_PUBLIC_KEY);

/** The `byte` format's pattern (kube-openapi strfmt): padded standard base64, no line breaks. */
const BASE64_PATTERN =
  "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$";

const gpgKeyring = new StringNode(z.string(), {
  description:
    "keyData is the base64 encoding of a GPG public keyring (binary or ASCII-armoured); a " +
    "signature by any key in it is accepted. A keyring holding a secret key is refused.",
  minLength: 1,
  maxLength: KEYRING_MAX,
  pattern: BASE64_PATTERN,
  rules: [
    {
      rule: `self.startsWith('m') || self.matches('${NEW_FORMAT_PUBLIC_KEY}') || self.startsWith('${ARMOUR_BEGIN_B64}')`,
      message: `keyData must be the base64 encoding of a GPG public keyring: binary, starting with a public-key packet, or ASCII-armoured, starting with '${ARMOUR_BEGIN}'`,
      holds: (self) =>
        self.startsWith("m") || newFormatRe.test(self) || self.startsWith(ARMOUR_BEGIN_B64),
    },
    {
      rule: PRIVATE_KEY_B64.map((p) => `!self.contains('${p}')`).join(" && "),
      message: "keyData must not contain a private key: only public keyrings belong in a policy",
      holds: (self) => PRIVATE_KEY_B64.every((p) => !self.includes(p)),
    },
  ],
});

// ---------------------------------------------------------------------------------------------
// The policy spec.

const SECRET_REF_DESCRIPTION =
  "keySecretRef reads the public key from a key of a Secret instead of inlining it; the value is " +
  "the PEM text itself (not base64 of it, beyond the base64 every Secret's data already has). In a " +
  "ClusterImagePolicy, namespace names the Secret's namespace; an ImagePolicy has no namespace field " +
  "and always reads the Secret from its own namespace. The controller copies the key into the " +
  "compiled policy, watches the Secret, and recompiles when it changes; if the Secret or the key is " +
  "missing, the policy is reported Ready=False and its previous compiled state stays in force.";

const secretName = str("name of the Secret (a DNS-1123 subdomain).", 253, {
  minLength: 1,
  rules: [matching(DNS1123_SUBDOMAIN_REGEX, "name", "a lowercase DNS-1123 subdomain")],
});
const SECRET_KEY_RE = regex(SECRET_KEY_REGEX);
const secretKey = str(
  "key of the Secret's data whose value is the PEM-encoded public key, e.g. cosign.pub.",
  253,
  {
    minLength: 1,
    rules: [
      {
        rule: `self.matches(${celQuote(SECRET_KEY_REGEX)})`,
        message: "key must consist of alphanumeric characters, '-', '_' or '.'",
        holds: (self) => SECRET_KEY_RE.test(self),
      },
    ],
  },
);

const clusterSecretRef = obj(SECRET_REF_DESCRIPTION, {
  name: required(secretName),
  namespace: required(
    str(
      "namespace of the Secret (a DNS-1123 label). The operator must be allowed to read Secrets there.",
      63,
      {
        minLength: 1,
        rules: [matching(DNS1123_LABEL_REGEX, "namespace", "a lowercase DNS-1123 label")],
      },
    ),
  ),
  key: required(secretKey),
});
const namespacedSecretRef = obj(SECRET_REF_DESCRIPTION, {
  name: required(secretName),
  key: required(secretKey),
});

const KEY_DATA_DESCRIPTION =
  "keyData is the public key inline: the base64 encoding of one PEM block " +
  "'-----BEGIN PUBLIC KEY-----' (cosign and skopeo keys are ECDSA P-256, RSA or Ed25519), and " +
  "nothing else. Exactly one of keyData and keySecretRef must be set.";
const EXACTLY_ONE_KEY = "exactly one of keyData and keySecretRef must be set";

function keySource<T>(secretRef: Node<T>) {
  return new OneOfNode(
    ["keyData", publicKeyData("keyData", KEY_DATA_DESCRIPTION)],
    ["keySecretRef", secretRef],
    {},
    {
      description: "One more trusted public key: exactly one of keyData and keySecretRef.",
      message: EXACTLY_ONE_KEY,
    },
  );
}

function publicKey<T>(secretRef: Node<T>) {
  return new OneOfNode(
    ["keyData", publicKeyData("keyData", KEY_DATA_DESCRIPTION)],
    ["keySecretRef", secretRef],
    {
      rekorKeyData: optional(
        publicKeyData(
          "rekorKeyData",
          "rekorKeyData, when set, also requires every signature to carry a Rekor transparency-log " +
            "inclusion proof (a signed entry timestamp) verifiable with this Rekor public key: the " +
            "base64 encoding of its PEM block. Leave it unset for keys used without a transparency log.",
        ),
      ),
      additionalKeys: optional(
        new ArrayNode(keySource(secretRef), {
          description:
            "additionalKeys are further trusted keys, each given inline or from a Secret exactly as the " +
            "primary key. A signature by any of the keys is accepted. More than one key needs CRI-O " +
            "1.32 or newer on the nodes; older nodes report the policy as not renderable.",
          maxItems: 16,
        }),
      ),
    },
    {
      description:
        "publicKey trusts sigstore signatures (cosign, skopeo --sign-by-sigstore-private-key) made by " +
        "one of a set of known keys. The primary key is keyData or keySecretRef; additionalKeys add " +
        "more keys, and a signature by any one of them is accepted (useful for key rotation). " +
        "Required when policyType is PublicKey, forbidden otherwise.",
      message: EXACTLY_ONE_KEY,
    },
  );
}

const emailRule = (field: string): Rule<string> =>
  matching(EMAIL_REGEX, field, "an e-mail address (local@domain, no spaces)");

const fulcioCAWithRekor = obj(
  "fulcioCAWithRekor trusts keyless sigstore signatures: the signing certificate must be issued " +
    "by this Fulcio CA to the given OIDC identity, and the signature must be logged in Rekor. " +
    "Required when policyType is FulcioCAWithRekor, forbidden otherwise.",
  {
    fulcioCAData: required(
      certificateData(
        "fulcioCAData",
        "fulcioCAData is the base64 encoding of the PEM certificate(s) of the Fulcio certificate " +
          "authority that issues the short-lived signing certificates.",
      ),
    ),
    rekorKeyData: required(
      publicKeyData(
        "rekorKeyData",
        "rekorKeyData is the base64 encoding of the PEM public key of the Rekor transparency log in " +
          "which every accepted signature must be recorded.",
      ),
    ),
    fulcioSubject: required(
      obj("fulcioSubject is the identity the signing certificate must have been issued to.", {
        oidcIssuer: required(
          str(
            "oidcIssuer is the URL of the OIDC provider that authenticated the signer, as recorded by " +
              "Fulcio in the certificate, e.g. https://token.actions.githubusercontent.com or " +
              "https://accounts.google.com. It is compared exactly.",
            2048,
            {
              minLength: 1,
              rules: [
                {
                  rule: "isURL(self)",
                  message: "oidcIssuer must be an absolute URL",
                  holds: (self) => isURL(self),
                },
              ],
            },
          ),
        ),
        signedEmail: required(
          str(
            "signedEmail is the e-mail address the signing certificate must name in its subject " +
              "alternative name, e.g. release-bot@example.com.",
            320,
            { minLength: 1, rules: [emailRule("signedEmail")] },
          ),
        ),
      }),
    ),
  },
);

const pki = obj(
  "pki trusts sigstore signatures whose signing certificate chains to your own certificate " +
    "authority (bring-your-own PKI, no Fulcio or Rekor) and names the expected subject. Needs CRI-O " +
    "1.33 or newer on the nodes. Required when policyType is PKI, forbidden otherwise.",
  {
    caRootsData: required(
      certificateData(
        "caRootsData",
        "caRootsData is the base64 encoding of a PEM bundle of one or more trusted root CA " +
          "certificates, and nothing else.",
      ),
    ),
    caIntermediatesData: optional(
      certificateData(
        "caIntermediatesData",
        "caIntermediatesData is the base64 encoding of a PEM bundle of intermediate CA certificates " +
          "that may link the signing certificate to a root. Optional.",
      ),
    ),
    pkiCertificateSubject: required(
      obj(
        "pkiCertificateSubject is the identity the signing certificate must carry in its subject " +
          "alternative names. Set email, hostname, or both (then both must match).",
        {
          email: optional(
            str("email is the e-mail address SAN the certificate must contain.", 320, {
              minLength: 1,
              rules: [emailRule("email")],
            }),
          ),
          hostname: optional(
            str(
              "hostname is the DNS name SAN the certificate must contain: a lowercase DNS name, " +
                "optionally starting with '*.' for a wildcard certificate.",
              253,
              {
                minLength: 1,
                rules: [
                  matching(
                    HOSTNAME_REGEX,
                    "hostname",
                    "a lowercase DNS name, optionally prefixed by *.",
                  ),
                ],
              },
            ),
          ),
        },
        [
          {
            rule: "has(self.email) || has(self.hostname)",
            message: "pkiCertificateSubject needs at least one of email and hostname",
            holds: (self) => has(self, "email") || has(self, "hostname"),
          },
        ],
      ),
    ),
  },
);

function gpgKey(kind: PolicyKind) {
  const schemes = kind === "ClusterImagePolicy" ? ["https", "http", "file"] : ["https", "http"];
  const prefixes = schemes.map((s) => `${s}://`);
  const rule = `(${prefixes.map((p) => `self.startsWith('${p}')`).join(" || ")}) && isURL(self)`;
  return obj(
    'gpgKey trusts GPG "simple signing" signatures (atomic/containers signatures, not sigstore) ' +
      "made by a key of the given keyring. Such signatures are not stored in the registry itself: " +
      "set lookaside to where they are published. Required when policyType is GPGKey, forbidden " +
      "otherwise.",
    {
      keyData: required(gpgKeyring),
      lookaside: optional(
        str(
          "lookaside is the base URL of the signature store (the registries.d 'lookaside' setting) for " +
            "every scope of this policy, e.g. https://registry.example.com/sigstore. " +
            (kind === "ClusterImagePolicy"
              ? "An https://, http:// or file:// URL. "
              : "An https:// or http:// URL (file:// is reserved to ClusterImagePolicies). ") +
            "When unset, the node's existing registries.d configuration must already say where the " +
            "signatures are.",
          2048,
          {
            minLength: 1,
            rules: [
              {
                rule,
                message:
                  kind === "ClusterImagePolicy"
                    ? "lookaside must be an https://, http:// or file:// URL"
                    : "lookaside must be an https:// or http:// URL: an ImagePolicy may not set a file:// lookaside",
                holds: (self) =>
                  celAnd(
                    () => prefixes.some((p) => self.startsWith(p)),
                    () => isURL(self),
                  ),
              },
            ],
          },
        ),
      ),
    },
  );
}

export const POLICY_TYPES = [
  "PublicKey",
  "FulcioCAWithRekor",
  "PKI",
  "GPGKey",
  "Reject",
  "InsecureAcceptAnything",
] as const;

function rootOfTrust<T>(kind: PolicyKind, secretRef: Node<T>) {
  return new UnionNode(
    "policyType",
    () =>
      enumOf(
        "policyType selects the root of trust. PublicKey: sigstore signatures by known keys " +
          "(publicKey). FulcioCAWithRekor: keyless sigstore signatures by an OIDC identity " +
          "(fulcioCAWithRekor). PKI: sigstore signatures with certificates from your own CA (pki). " +
          "GPGKey: GPG simple signing (gpgKey). Reject: every image in the scopes is refused, e.g. " +
          "the scope '*' for default-deny. InsecureAcceptAnything: every image in the scopes is " +
          "accepted without any check, an explicit exception under a broader signed or rejected " +
          "scope. The last two take no block and no signedIdentity.",
        POLICY_TYPES,
      ),
    {
      PublicKey: { publicKey: required(publicKey(secretRef)) },
      FulcioCAWithRekor: { fulcioCAWithRekor: required(fulcioCAWithRekor) },
      PKI: { pki: required(pki) },
      GPGKey: { gpgKey: required(gpgKey(kind)) },
      Reject: {},
      InsecureAcceptAnything: {},
    },
    {
      description:
        "rootOfTrust says what makes an image in the scopes acceptable: a signature verified against " +
        "a key, a certificate authority or a keyring, or no check at all (InsecureAcceptAnything), or " +
        "nothing (Reject). policyType selects the kind and the block of the same name holds its " +
        "data; every other block must be absent.",
      required: true,
    },
  );
}

const REPOSITORY_PREFIX_WHAT =
  "a fully qualified repository or repository prefix, host[:port][/path], lowercase, without tag or digest";
const REPOSITORY_WHAT =
  "a fully qualified repository host[:port]/path, lowercase, without tag or digest (a bare host is not a repository)";

const prefix = (field: string, description: string): StringNode =>
  str(description, 512, {
    minLength: 1,
    rules: [matching(REPOSITORY_PREFIX_REGEX, field, REPOSITORY_PREFIX_WHAT)],
  });

export const MATCH_POLICIES = [
  "MatchRepoDigestOrExact",
  "MatchRepository",
  "ExactRepository",
  "RemapIdentity",
  "MatchExact",
  "ExactReference",
] as const;

const signedIdentity = new UnionNode(
  "matchPolicy",
  () =>
    enumOf(
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
      MATCH_POLICIES,
    ),
  {
    MatchRepoDigestOrExact: {},
    MatchRepository: {},
    ExactRepository: {
      exactRepository: required(
        obj(
          "exactRepository holds the repository for matchPolicy ExactRepository; required then, " +
            "forbidden otherwise.",
          {
            repository: required(
              str(
                "repository is the fully qualified repository the signature must name, e.g. " +
                  "registry.example.com/team/app: a host and at least one path component, no tag " +
                  "or digest. A bare host is refused: containers-image would read it as a Docker " +
                  "Hub repository (example.com as docker.io/library/example.com).",
                512,
                {
                  minLength: 1,
                  rules: [matching(REPOSITORY_REGEX, "repository", REPOSITORY_WHAT)],
                },
              ),
            ),
          },
        ),
      ),
    },
    RemapIdentity: {
      remapIdentity: required(
        obj(
          "remapIdentity holds the prefixes for matchPolicy RemapIdentity; required then, forbidden " +
            "otherwise. A pulled name starting with prefix is checked as if it started with " +
            "signedPrefix; other names are checked unchanged.",
          {
            prefix: required(
              prefix(
                "prefix",
                "prefix is a host[:port], repository namespace or repository matched against the pulled " +
                  "name on whole path components, e.g. mirror.example.com/vendor. A host needs a dot, " +
                  "a port or to be localhost.",
              ),
            ),
            signedPrefix: required(
              prefix(
                "signedPrefix",
                "signedPrefix replaces prefix in the name the signature must claim, e.g. " +
                  "registry.vendor.com/products.",
              ),
            ),
          },
        ),
      ),
    },
    MatchExact: {},
    ExactReference: {
      exactReference: required(
        obj(
          "exactReference holds the reference for matchPolicy ExactReference; required then, " +
            "forbidden otherwise.",
          {
            reference: required(
              str(
                "reference is the fully qualified image reference, with a tag or a digest, that the " +
                  "signature must name, e.g. registry.example.com/base/ubi:9.4.",
                512,
                {
                  minLength: 1,
                  rules: [
                    matching(
                      REFERENCE_REGEX,
                      "reference",
                      "a fully qualified image reference host[:port]/path with a :tag or an @digest",
                    ),
                  ],
                },
              ),
            ),
          },
        ),
      ),
    },
  },
  {
    description:
      "signedIdentity says which image name a signature must claim (every sigstore and simple " +
      "signature names the image it was made for) compared with the name being pulled. When absent, " +
      "MatchRepoDigestOrExact applies. Forbidden when policyType is Reject or InsecureAcceptAnything.",
    required: true,
  },
);

const SCOPE_WHAT =
  '"*", a leading wildcard "*.domain", host[:port][/path][:tag|@digest] with a lowercase host and path, or a Docker Hub name such as busybox';
const scopeRe = regex(SCOPE_REGEX);

const scopes = new ArrayNode(
  str("An image scope; see scopes.", 512, {
    minLength: 1,
    rules: [
      {
        rule: "!self.contains('*') || self == '*' || (self.startsWith('*.') && !self.substring(1).contains('*'))",
        message: '"*" is allowed only as the whole scope or as a leading "*." label',
        messageExpression: {
          cel: '\'scope "\' + self + \'" is invalid: "*" is allowed only as the whole scope or as a leading "*." label\'',
          twin: (self) =>
            `scope "${self}" is invalid: "*" is allowed only as the whole scope or as a leading "*." label`,
        },
        holds: (self) =>
          !self.includes("*") ||
          self === "*" ||
          (self.startsWith("*.") && !self.slice(1).includes("*")),
      },
      {
        rule: "!self.startsWith('*.') || !(self.contains(':') || self.contains('/') || self.contains('@'))",
        message: "a wildcard scope matches hosts only: it cannot have a port, path, tag or digest",
        messageExpression: {
          cel: "'scope \"' + self + '\" is invalid: a wildcard scope matches hosts only: it cannot have a port, path, tag or digest'",
          twin: (self) =>
            `scope "${self}" is invalid: a wildcard scope matches hosts only: it cannot have a port, path, tag or digest`,
        },
        holds: (self) =>
          !self.startsWith("*.") ||
          !(self.includes(":") || self.includes("/") || self.includes("@")),
      },
      {
        rule: `self.matches(${celQuote(SCOPE_REGEX)})`,
        message: `a scope must be ${SCOPE_WHAT}`,
        messageExpression: {
          cel: `'scope "' + self + '" is invalid: it must be ${SCOPE_WHAT}'`,
          twin: (self) => `scope "${self}" is invalid: it must be ${SCOPE_WHAT}`,
        },
        holds: (self) => scopeRe.test(self),
      },
    ],
  }),
  {
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
    listType: "set",
  },
);

function policySpec<T>(kind: PolicyKind, secretRef: Node<T>) {
  return obj("spec is the policy: which images (scopes) must satisfy which requirement (policy).", {
    scopes: required(scopes),
    policy: required(
      obj(
        "policy is the requirement every image in the scopes must satisfy.",
        {
          rootOfTrust: required(rootOfTrust(kind, secretRef)),
          signedIdentity: optional(signedIdentity),
        },
        [
          {
            rule: "!has(self.signedIdentity) || !has(self.rootOfTrust.policyType) || !(self.rootOfTrust.policyType in ['Reject', 'InsecureAcceptAnything'])",
            message:
              "signedIdentity is forbidden when policyType is Reject or InsecureAcceptAnything: no signature is checked",
            holds: (self) => {
              const rot = own(self, "rootOfTrust");
              const t = isJsonObject(rot) ? own(rot, "policyType") : undefined;
              return (
                !has(self, "signedIdentity") || !(t === "Reject" || t === "InsecureAcceptAnything")
              );
            },
          },
        ],
      ),
    ),
  });
}

export const clusterImagePolicySpec = policySpec("ClusterImagePolicy", clusterSecretRef);
export const imagePolicySpec = policySpec("ImagePolicy", namespacedSecretRef);

// ---------------------------------------------------------------------------------------------
// Status (written by the controller and the agents; the API server drops it from a create).

const conditions = new ArrayNode(
  obj("A condition in the standard Kubernetes form (metav1.Condition).", {
    type: required(
      new StringNode(z.string(), {
        description: "type of the condition in CamelCase or foo.example.com/CamelCase, e.g. Ready.",
        minLength: 1,
        maxLength: 316,
        pattern:
          "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
      }),
    ),
    status: required(
      enumOf("status of the condition: True, False or Unknown.", ["True", "False", "Unknown"]),
    ),
    observedGeneration: optional(
      new IntegerNode({
        description:
          "observedGeneration is the metadata.generation the condition was computed from; a " +
          "condition older than the object's generation is stale.",
        format: "int64",
        minimum: 0,
      }),
    ),
    lastTransitionTime: required(dateTime("lastTransitionTime is when status last changed.")),
    reason: required(
      new StringNode(z.string(), {
        description:
          "reason is a CamelCase machine-readable cause of the last transition, e.g. Compiled, " +
          "UnsupportedFeature, SecretNotFound.",
        minLength: 1,
        maxLength: 1024,
        pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
      }),
    ),
    message: required(str("message is a human-readable explanation of the reason.", 32768)),
  }),
  {
    description:
      "conditions are the latest observations of the object's state, one per type. Ready is True " +
      "when the current generation compiled and was published; its reason says why not otherwise.",
    maxItems: 16,
    listType: "map",
    mapKeys: ["type"],
  },
);

const count = (description: string): IntegerNode =>
  new IntegerNode({ description, format: "int32", minimum: 0 });

export const policyStatus = obj(
  "status is written by the controller: whether the policy is in force and how far its rollout " +
    "to the nodes has got.",
  {
    conditions: optional(conditions),
    observedGeneration: optional(
      new IntegerNode({
        description: "observedGeneration is the metadata.generation the controller last processed.",
        format: "int64",
        minimum: 0,
      }),
    ),
    rollout: optional(
      obj(
        "rollout summarises the node agents' ImagePolicyNodeStatus objects for the revision that " +
          "contains this policy.",
        {
          nodesApplied: optional(
            count("nodesApplied counts nodes whose policy files are all at revision."),
          ),
          nodesEnforcing: optional(
            count(
              "nodesEnforcing counts nodes at revision whose CRI-O actually reads the files (see " +
                "ImagePolicyNodeStatus.status.enforcing).",
            ),
          ),
          nodesTotal: optional(count("nodesTotal counts the nodes the policy should reach.")),
          display: optional(
            str(
              "display is nodesEnforcing/nodesTotal for kubectl get, e.g. 3/3: nodes covered (at revision and enforcing) out of all nodes; never rounded up.",
              64,
            ),
          ),
          revision: optional(
            str("revision is the compiled revision that contains this generation.", 128),
          ),
        },
      ),
    ),
  },
);

// ---------------------------------------------------------------------------------------------
// ImagePolicyNodeStatus.

export const nodeStatusSpec = obj("spec identifies the node this status is about.", {
  nodeName: required(
    str("nodeName is the name of the Node; it equals metadata.name and cannot change.", 253, {
      minLength: 1,
      rules: [
        {
          rule: "self == oldSelf",
          message: "nodeName is immutable",
          holds: () => true,
          transition: true,
        },
      ],
    }),
  ),
});

export const nodeStatusStatus = obj("status is written by the node agent.", {
  runtime: optional(
    obj("runtime is the container runtime the node runs.", {
      name: optional(str("name of the runtime, e.g. cri-o or containerd.", 63)),
      version: optional(str("version of the runtime, e.g. 1.33.2.", 63)),
    }),
  ),
  enforcing: optional(
    new BooleanNode(
      "enforcing is true when the runtime is CRI-O configured to read the files the agent " +
        "writes, so that pulls on this node are checked.",
    ),
  ),
  enforcingReason: optional(
    str(
      "enforcingReason explains enforcing, especially when false or partial (e.g. not CRI-O, " +
        "CRI-O older than 1.28 so only the cluster policy applies, no re-check at container " +
        "creation before 1.31).",
      1024,
    ),
  ),
  appliedRevisions: optional(
    new MapNode(str("revision of the file.", 128), {
      description:
        "appliedRevisions maps each policy file the agent wrote on this node (cluster.json, " +
        "<namespace>.json, the registries.d file) to the revision it holds. Atomic: " +
        "managedFields names the map, not each of its (up to thousands of) files.",
      maxProperties: 4096,
      atomic: true,
    }),
  ),
  lastError: optional(str("lastError is the last error the agent hit, empty when none.", 32768)),
  lastTransitionTime: optional(
    dateTime("lastTransitionTime is when the applied revisions last changed."),
  ),
  lastUpdateTime: optional(dateTime("lastUpdateTime is when the agent last wrote this status.")),
  conditions: optional(conditions),
});

/** The root rule of ImagePolicyNodeStatus: CEL at the resource root sees metadata.name. */
export const NODE_NAME_RULE: Rule<JsonObject> = {
  rule: "!has(self.spec) || !has(self.spec.nodeName) || self.metadata.name == self.spec.nodeName",
  message: "metadata.name must equal spec.nodeName",
  holds: (self) => {
    const spec = own(self, "spec");
    if (!isJsonObject(spec) || !has(spec, "nodeName")) return true;
    const md = own(self, "metadata");
    return isJsonObject(md) && own(md, "name") === own(spec, "nodeName");
  },
};

// ---------------------------------------------------------------------------------------------
// ImagePullRefusal: why a pod's image was refused (src/refusals, docs/explain.md). Written by the
// controller only, in the pod's namespace, owned by the pod; every list and string is bounded so
// that one record stays small whatever the policies hold.

const MAX_LISTED = 16;

const refusalLayerValues = ["Cluster", "Namespace", "Both", "None"] as const;
const refusalCategories = [
  "NoSignature",
  "InvalidSignature",
  "NoSignatureAccepted",
  "IdentityNotAccepted",
  "RejectedByPolicy",
  "Other",
] as const;

export const refusalSpec = obj(
  "spec names the refused pull: the pod, its container and the image. It does not change.",
  {
    podName: required(
      str("podName is the name of the pod whose image was refused.", 253, { minLength: 1 }),
    ),
    podUID: required(
      str("podUID is the uid of that pod (the record is owned by it).", 128, { minLength: 1 }),
    ),
    container: optional(
      str("container is the container whose image was refused, when known.", 253),
    ),
    image: required(
      str("image is the image reference as the pod names it (and the kubelet reported it).", 1024, {
        minLength: 1,
      }),
    ),
  },
);

const layerExplanation = (which: string) =>
  obj(`${which} is what this layer decides for the image.`, {
    scope: required(
      str(
        "scope is the most specific scope of this layer that matches the image (`*` for the scope of every image).",
        600,
      ),
    ),
    policies: optional(
      new ArrayNode(
        obj("A policy object on that scope.", {
          kind: required(
            enumOf("kind of the policy object.", ["ClusterImagePolicy", "ImagePolicy"]),
          ),
          name: required(str("name of the policy object.", 253, { minLength: 1 })),
          namespace: optional(str("namespace of an ImagePolicy.", 63)),
          generation: optional(
            new IntegerNode({
              description:
                "generation is the metadata.generation of the form that is published (in force).",
              format: "int64",
              minimum: 0,
            }),
          ),
        }),
        {
          description: `policies are the policy objects on that scope, whose requirements all apply (at most ${MAX_LISTED} listed).`,
          maxItems: MAX_LISTED,
        },
      ),
    ),
    accepts: optional(
      new ArrayNode(str("What one requirement accepts; keys are shown as fingerprints.", 2048), {
        description: `accepts says, per requirement of this layer, what a pull needs to pass it (at most ${MAX_LISTED}).`,
        maxItems: MAX_LISTED,
      }),
    ),
  });

const revisions = (description: string) =>
  obj(description, {
    cluster: optional(str("cluster is the revision of the cluster layer (cluster.json).", 128)),
    namespace: optional(
      str("namespace is the revision of the namespace layer (<namespace>.json).", 128),
    ),
  });

export const refusalStatus = obj(
  "status is written by the controller: which layer, scope and policies refused the image and what would have been accepted.",
  {
    conditions: optional(conditions),
    decidingLayer: optional(
      enumOf(
        "decidingLayer is the layer whose requirements refused the image: Cluster (ClusterImagePolicies), Namespace (this namespace's ImagePolicies), Both (each imposes requirements the image may have failed), or None (the published policy accepts it now: the node decided on an older revision, or the policy changed since).",
        refusalLayerValues,
      ),
    ),
    category: optional(enumOf("category sorts CRI-O's reason.", refusalCategories)),
    crioReason: optional(
      str("crioReason is the reason CRI-O gave (containers/image's text).", 512),
    ),
    action: optional(
      enumOf(
        "action is what CRI-O refused: a pull, or creating a container from an image already on the node.",
        ["pull", "create"],
      ),
    ),
    node: optional(str("node is the node whose kubelet reported the refusal.", 253)),
    file: optional(str("file is the policy file CRI-O reads for this pull on that node.", 300)),
    fileScope: optional(
      str(
        "fileScope is the scope of that file which decides (`*` for the scope of every image, empty when none does).",
        600,
      ),
    ),
    accepts: optional(
      new ArrayNode(str("What one requirement accepts; keys are shown as fingerprints.", 2048), {
        description: `accepts says what the image needs to be accepted by that file: every entry must pass (at most ${MAX_LISTED}).`,
        maxItems: MAX_LISTED,
      }),
    ),
    cluster: optional(layerExplanation("cluster")),
    namespace: optional(layerExplanation("namespace")),
    revisions: optional(
      revisions("revisions are the published layer revisions this explanation used."),
    ),
    nodeRevisions: optional(
      revisions("nodeRevisions are the revisions the node reported for its files."),
    ),
    hint: optional(str("hint suggests what to check, from CRI-O's reason.", 1024)),
    notes: optional(
      new ArrayNode(str("A note on how far the explanation holds.", 1024), {
        description:
          "notes say where the explanation may not hold (a node behind the published revision, a runtime that reads only cluster.json).",
        maxItems: 8,
      }),
    ),
    count: optional(
      count("count is how often the kubelet had reported this refusal when it was explained."),
    ),
    lastExplainedTime: optional(
      dateTime("lastExplainedTime is when the controller last explained it."),
    ),
  },
);

// ---------------------------------------------------------------------------------------------
// The resources.

export const clusterImagePolicy = new ResourceNode({
  apiVersion: API_VERSION,
  kind: "ClusterImagePolicy",
  metadata: clusterObjectMeta,
  namespaced: false,
  spec: clusterImagePolicySpec,
  status: policyStatus,
});

export const imagePolicy = new ResourceNode({
  apiVersion: API_VERSION,
  kind: "ImagePolicy",
  metadata: namespacedObjectMeta,
  namespaced: true,
  spec: imagePolicySpec,
  status: policyStatus,
});

export const imagePolicyNodeStatus = new ResourceNode({
  apiVersion: API_VERSION,
  kind: "ImagePolicyNodeStatus",
  metadata: clusterObjectMeta,
  namespaced: false,
  spec: nodeStatusSpec,
  status: nodeStatusStatus,
  rules: [NODE_NAME_RULE],
});

export const imagePullRefusal = new ResourceNode({
  apiVersion: API_VERSION,
  kind: "ImagePullRefusal",
  metadata: namespacedObjectMeta,
  namespaced: true,
  spec: refusalSpec,
  status: refusalStatus,
});

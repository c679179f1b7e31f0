// policy-controller authorities -> this project's policy, one row per authority kind: what
// converts and into what, and what is refused at which field. Through importObjects, so every
// converted object has also passed this project's schema and validation.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  importObjects,
  NO_MATCH_POLICY_NAME,
  type ImportOptions,
} from "../../../src/import/importObjects.ts";
import { parseSigstoreTrust } from "../../../src/import/sigstoreTrust.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const pem = (name: string): string =>
  readFileSync(path.join(ROOT, "test/fixtures/keys", `${name}.pub`), "utf8");
const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
const A = pem("a");
const B = pem("b");
const PRIVATE = readFileSync(path.join(ROOT, "test/fixtures/keys/cosign.key"), "utf8");
const trust = parseSigstoreTrust(
  readFileSync(path.join(ROOT, "config/sigstore/public-good.yaml"), "utf8"),
);

const options: ImportOptions = {
  secretNamespace: "imagepolicy-system",
  policyControllerNamespace: "cosign-system",
  defaultSecretKey: "cosign.pub",
  widenGlobs: false,
  trust,
  noMatchPolicy: "allow",
  partial: false,
};

function pcCip(
  spec: Record<string, unknown>,
  name = "p",
  version = "v1beta1",
): Record<string, unknown> {
  return {
    apiVersion: `policy.sigstore.dev/${version}`,
    kind: "ClusterImagePolicy",
    metadata: { name },
    spec: { images: [{ glob: "ghcr.io/**" }], ...spec },
  };
}

function secret(name: string, data: Record<string, string>, namespace = "cosign-system") {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace }, data };
}

function convert(docs: unknown[], opts: Partial<ImportOptions> = {}) {
  return importObjects(docs, { ...options, ...opts });
}

function policyOf(docs: unknown[], opts: Partial<ImportOptions> = {}): unknown {
  const r = convert(docs, opts);
  expect(r.problems).toEqual([]);
  expect(r.objects).toHaveLength(1);
  return r.objects[0]?.spec.policy;
}

const REPO = { signedIdentity: { matchPolicy: "MatchRepository" } };

describe("authorities that convert", () => {
  it.each([
    [
      "key inline",
      [{ key: { data: A } }],
      { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: b64(A) } }, ...REPO },
    ],
    [
      "key inline, sha256 named",
      [{ key: { data: A, hashAlgorithm: "sha256" } }],
      { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: b64(A) } }, ...REPO },
    ],
    [
      "several keys: any may sign",
      [{ key: { data: A } }, { key: { data: B } }],
      {
        rootOfTrust: {
          policyType: "PublicKey",
          publicKey: { keyData: b64(A), additionalKeys: [{ keyData: b64(B) }] },
        },
        ...REPO,
      },
    ],
    [
      "key with the public Rekor",
      [{ key: { data: A }, ctlog: { url: "https://rekor.sigstore.dev" } }],
      {
        rootOfTrust: {
          policyType: "PublicKey",
          publicKey: { keyData: b64(A), rekorKeyData: trust.rekorKeyData },
        },
        ...REPO,
      },
    ],
    [
      "ctlog: {} turns the log off",
      [{ key: { data: A }, ctlog: {} }],
      { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: b64(A) } }, ...REPO },
    ],
    [
      "keyless email on the public-good Fulcio",
      [
        {
          keyless: {
            identities: [{ issuer: "https://accounts.google.com", subject: "a@b.example" }],
          },
          ctlog: { url: "https://rekor.sigstore.dev" },
        },
      ],
      {
        rootOfTrust: {
          policyType: "FulcioCAWithRekor",
          fulcioCAWithRekor: {
            fulcioCAData: trust.fulcioCAData,
            rekorKeyData: trust.rekorKeyData,
            fulcioSubject: {
              oidcIssuer: "https://accounts.google.com",
              signedEmail: "a@b.example",
            },
          },
        },
        ...REPO,
      },
    ],
    [
      "static pass",
      [{ static: { action: "pass" } }],
      { rootOfTrust: { policyType: "InsecureAcceptAnything" } },
    ],
    [
      "static fail",
      [{ static: { action: "fail", message: "no" } }],
      { rootOfTrust: { policyType: "Reject" } },
    ],
    [
      "static fail beside a key: the key decides",
      [{ static: { action: "fail" } }, { key: { data: A } }],
      { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: b64(A) } }, ...REPO },
    ],
    [
      "static pass beside anything: passes",
      [
        { static: { action: "pass" } },
        { key: { data: A } },
        { keyless: { identities: [{ issuer: "https://i.example", subject: "x@y.example" }] } },
      ],
      { rootOfTrust: { policyType: "InsecureAcceptAnything" } },
    ],
  ])("%s", (_name, authorities, want) => {
    expect(policyOf([pcCip({ authorities })])).toEqual(want);
  });

  it("reads secretRef from policy-controller's namespace and points at the operator's", () => {
    const r = convert([
      pcCip({ authorities: [{ key: { secretRef: { name: "release" } } }] }),
      secret("release", { "release.pub": b64(A) }),
    ]);
    expect(r.problems).toEqual([]);
    expect(r.objects[0]?.spec.policy.rootOfTrust).toEqual({
      policyType: "PublicKey",
      publicKey: {
        keySecretRef: { name: "release", namespace: "imagepolicy-system", key: "release.pub" },
      },
    });
    expect(r.secretCopies).toEqual([
      {
        fromNamespace: "cosign-system",
        toNamespace: "imagepolicy-system",
        name: "release",
        key: "release.pub",
        seen: true,
      },
    ]);
  });

  it("honours --secret-namespace, --policy-controller-namespace and --secret-key", () => {
    const r = convert([pcCip({ authorities: [{ key: { secretRef: { name: "k" } } }] })], {
      secretNamespace: "ops",
      policyControllerNamespace: "sigstore",
      defaultSecretKey: "key.pem",
    });
    expect(r.problems).toEqual([]);
    expect(r.objects[0]?.spec.policy.rootOfTrust).toEqual({
      policyType: "PublicKey",
      publicKey: { keySecretRef: { name: "k", namespace: "ops", key: "key.pem" } },
    });
    expect(r.secretCopies).toEqual([
      { fromNamespace: "sigstore", toNamespace: "ops", name: "k", key: "key.pem", seen: false },
    ]);
  });

  it("warns about what it drops or changes, and converts the same in v1alpha1", () => {
    const r = convert([
      pcCip(
        {
          authorities: [
            { key: { data: A }, source: [{ signaturePullSecrets: [{ name: "pull" }] }] },
          ],
        },
        "old",
        "v1alpha1",
      ),
    ]);
    expect(r.problems).toEqual([]);
    expect(r.warnings.map((w) => w.message)).toEqual([
      expect.stringContaining("signaturePullSecrets is dropped"),
    ]);
    expect(r.notes.join("\n")).toContain("policy.sigstore.dev/include=true");
  });
});

describe("what is refused, at which field", () => {
  const keyless = (id: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    keyless: { identities: [id], ...extra },
  });
  const email = { issuer: "https://accounts.google.com", subject: "a@b.example" };
  it.each<[string, Record<string, unknown>, string, string]>([
    [
      "KMS key",
      {
        authorities: [{ key: { kms: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k" } }],
      },
      "spec.authorities[0].key.kms",
      "KMS",
    ],
    [
      "SHA-512",
      { authorities: [{ key: { data: A, hashAlgorithm: "sha512" } }] },
      "spec.authorities[0].key.hashAlgorithm",
      "SHA-256",
    ],
    [
      "private key",
      { authorities: [{ key: { data: PRIVATE } }] },
      "spec.authorities[0].key.data",
      "PRIVATE",
    ],
    [
      "two keys in one data",
      { authorities: [{ key: { data: A + B } }] },
      "spec.authorities[0].key.data",
      "only the first",
    ],
    [
      "subject regex",
      {
        authorities: [keyless({ issuer: "https://i.example", subjectRegExp: ".*@acme\\.example" })],
      },
      "spec.authorities[0].keyless.identities[0].subjectRegExp",
      "regular expression",
    ],
    [
      "issuer regex",
      { authorities: [keyless({ issuerRegExp: ".*", subject: "a@b.example" })] },
      "spec.authorities[0].keyless.identities[0].issuerRegExp",
      "regular expression",
    ],
    [
      "URI subject",
      {
        authorities: [
          keyless({
            issuer: "https://token.actions.githubusercontent.com",
            subject: "https://github.com/a/b/.github/workflows/r.yml@refs/heads/main",
          }),
        ],
      },
      "spec.authorities[0].keyless.identities[0].subject",
      "not an email",
    ],
    [
      "two identities",
      { authorities: [{ keyless: { identities: [email, email] } }] },
      "spec.authorities[0].keyless.identities",
      "alternatives",
    ],
    [
      "custom Fulcio",
      { authorities: [keyless(email, { url: "https://fulcio.internal.example" })] },
      "spec.authorities[0].keyless.url",
      "Fulcio instance",
    ],
    [
      "custom CA",
      { authorities: [{ keyless: { identities: [email], "ca-cert": { data: A } } }] },
      "spec.authorities[0].keyless.ca-cert",
      "custom Fulcio CA",
    ],
    [
      "TrustRoot",
      { authorities: [keyless(email, { trustRootRef: "mine" })] },
      "spec.authorities[0].keyless.trustRootRef",
      "TrustRoot",
    ],
    [
      "custom ctlog",
      { authorities: [{ key: { data: A }, ctlog: { url: "https://rekor.internal.example" } }] },
      "spec.authorities[0].ctlog.url",
      "transparency log",
    ],
    [
      "ctlog TrustRoot",
      { authorities: [{ key: { data: A }, ctlog: { trustRootRef: "mine" } }] },
      "spec.authorities[0].ctlog.trustRootRef",
      "TrustRoot",
    ],
    [
      "rfc3161",
      { authorities: [{ key: { data: A }, rfc3161timestamp: { trustRootRef: "tsa" } }] },
      "spec.authorities[0].rfc3161timestamp",
      "RFC 3161",
    ],
    [
      "attestations",
      {
        authorities: [
          { key: { data: A }, attestations: [{ name: "a", predicateType: "slsaprovenance" }] },
        ],
      },
      "spec.authorities[0].attestations",
      "attestations",
    ],
    [
      "bundle format",
      { authorities: [{ key: { data: A }, signatureFormat: "bundle" }] },
      "spec.authorities[0].signatureFormat",
      "bundles",
    ],
    [
      "signatures elsewhere",
      { authorities: [{ key: { data: A }, source: [{ oci: "ghcr.io/acme/sigs" }] }] },
      "spec.authorities[0].source[0].oci",
      "another repository",
    ],
    [
      "tag prefix",
      { authorities: [{ key: { data: A }, source: [{ tagPrefix: "sig-" }] }] },
      "spec.authorities[0].source[0].tagPrefix",
      "tag prefix",
    ],
    [
      "key OR keyless",
      { authorities: [{ key: { data: A } }, keyless(email)] },
      "spec.authorities",
      "OR",
    ],
    [
      "two keyless",
      { authorities: [keyless(email), keyless(email)] },
      "spec.authorities",
      "alternatives",
    ],
    [
      "keys with and without a log",
      {
        authorities: [
          { key: { data: A } },
          { key: { data: B }, ctlog: { url: "https://rekor.sigstore.dev" } },
        ],
      },
      "spec.authorities",
      "transparency log",
    ],
    [
      "cue policy",
      { authorities: [{ key: { data: A } }], policy: { type: "cue", data: "x: 1" } },
      "spec.policy",
      "cue",
    ],
    [
      "rego policy",
      { authorities: [{ key: { data: A } }], policy: { type: "rego", data: "package x" } },
      "spec.policy",
      "rego",
    ],
    ["warn mode", { authorities: [{ key: { data: A } }], mode: "warn" }, "spec.mode", "warn"],
    [
      "match selectors",
      {
        authorities: [{ key: { data: A } }],
        match: [{ resource: "pods", selector: { matchLabels: { a: "b" } } }],
      },
      "spec.match",
      "selectors",
    ],
    ["no authorities", { authorities: [] }, "spec.authorities", "no authorities"],
    ["unknown field", { authorities: [{ key: { data: A } }], extra: true }, "spec", "extra"],
    [
      "unknown field in an authority",
      { authorities: [{ key: { data: A }, keyles: {} }] },
      "spec.authorities[0]",
      "keyles",
    ],
    [
      "static pass on a wider glob",
      { images: [{ glob: "ghcr.io/acme/**" }], authorities: [{ static: { action: "pass" } }] },
      "spec.images[0].glob",
      "loosen",
    ],
    [
      "wider glob without --widen-globs",
      { images: [{ glob: "ghcr.io/acme/**" }], authorities: [{ key: { data: A } }] },
      "spec.images[0].glob",
      "--widen-globs",
    ],
  ])("%s", (_name, spec, field, message) => {
    const r = convert([pcCip(spec)]);
    expect(r.objects).toEqual([]);
    const at = r.problems.filter((p) => p.field === field);
    expect(at, JSON.stringify(r.problems, null, 1)).not.toEqual([]);
    expect(at.map((p) => p.message).join("\n")).toContain(message);
    expect(r.problems.every((p) => p.source.name === "p")).toBe(true);
  });

  it("refuses a Secret policy-controller itself would refuse", () => {
    const two = convert([
      pcCip({ authorities: [{ key: { secretRef: { name: "k" } } }] }),
      secret("k", { "a.pub": b64(A), "b.pub": b64(B) }),
    ]);
    expect(two.problems.map((p) => [p.field, p.message])).toEqual([
      ["spec.authorities[0].key.secretRef", expect.stringContaining("2 data entries")],
    ]);
    const priv = convert([
      pcCip({ authorities: [{ key: { secretRef: { name: "k" } } }] }),
      secret("k", { "cosign.key": b64(PRIVATE) }),
    ]);
    expect(priv.problems.map((p) => p.message).join()).toContain("PRIVATE");
  });

  it("refuses keyless and public Rekor when the trust material is missing", () => {
    const r = convert(
      [
        pcCip({
          authorities: [
            { keyless: { identities: [{ issuer: "https://i.example", subject: "a@b.example" }] } },
          ],
        }),
      ],
      { trust: undefined },
    );
    expect(r.problems.map((p) => p.message).join()).toContain("trust material");
  });
});

describe("the no-match policy", () => {
  const keyPolicy = pcCip({ authorities: [{ key: { data: A } }] });
  const cm = (value: string) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "config-policy-controller", namespace: "cosign-system" },
    data: { "no-match-policy": value },
  });
  const names = (r: ReturnType<typeof convert>) => r.objects.map((o) => o.metadata.name);

  it("deny (policy-controller's default) becomes a * Reject policy", () => {
    const r = convert([keyPolicy], { noMatchPolicy: undefined });
    expect(names(r)).toEqual(["p", NO_MATCH_POLICY_NAME]);
    expect(r.objects[1]?.spec).toEqual({
      scopes: ["*"],
      policy: { rootOfTrust: { policyType: "Reject" } },
    });
    expect(r.notes.join("\n")).toContain("default, deny");
  });

  it("comes from the ConfigMap in the input, and the flag wins over it", () => {
    expect(names(convert([keyPolicy, cm("allow")], { noMatchPolicy: undefined }))).toEqual(["p"]);
    expect(names(convert([keyPolicy, cm("deny")], { noMatchPolicy: undefined }))).toHaveLength(2);
    expect(names(convert([keyPolicy, cm("deny")], { noMatchPolicy: "allow" }))).toEqual(["p"]);
  });

  it("warn in the ConfigMap is refused", () => {
    const r = convert([keyPolicy, cm("warn")], { noMatchPolicy: undefined });
    expect(r.problems.map((p) => `${p.source.kind} ${p.field}`)).toEqual([
      'ConfigMap data["no-match-policy"]',
    ]);
  });

  it("is not needed when a policy matches every image", () => {
    const all = pcCip({ images: [{ glob: "**" }], authorities: [{ key: { data: A } }] });
    expect(names(convert([all], { noMatchPolicy: "deny" }))).toEqual(["p"]);
  });
});

describe("the input as a whole", () => {
  it("reads Lists, ignores other kinds, keeps names and drops server fields", () => {
    const r = convert([
      {
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            ...pcCip({ authorities: [{ key: { data: A } }] }, "kept-name"),
            metadata: { name: "kept-name", uid: "u", resourceVersion: "7", labels: { a: "b" } },
            status: { conditions: [] },
          },
          { apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } },
        ],
      },
    ]);
    expect(r.problems).toEqual([]);
    expect(r.objects[0]?.metadata).toEqual({
      name: "kept-name",
      annotations: {
        "imagepolicy.dev/imported-from": "policy.sigstore.dev/v1beta1 ClusterImagePolicy",
      },
    });
    expect(r.ignored).toEqual(["v1/Namespace (1)"]);
  });

  it("refuses two sources that become one object, and unknown policy-controller versions", () => {
    const k = { authorities: [{ key: { data: A } }] };
    const r = convert([pcCip(k, "same", "v1alpha1"), pcCip(k, "same"), pcCip(k, "x", "v1")]);
    expect(r.problems.map((p) => `${p.source.apiVersion} ${p.source.name} ${p.field}`)).toEqual([
      "policy.sigstore.dev/v1 x apiVersion",
      "policy.sigstore.dev/v1alpha1 same metadata.name",
      "policy.sigstore.dev/v1beta1 same metadata.name",
    ]);
  });

  it("all or nothing, unless partial", () => {
    const good = pcCip({ authorities: [{ key: { data: A } }] }, "good");
    const bad = pcCip({ authorities: [{ key: { data: A } }], mode: "warn" }, "bad");
    expect(convert([good, bad]).objects).toEqual([]);
    const partial = convert([good, bad], { partial: true });
    expect(partial.objects.map((o) => o.metadata.name)).toEqual(["good"]);
    expect(partial.problems).toHaveLength(1);
  });
});

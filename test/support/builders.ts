// Builders for test objects (docs/style.md habit 8): cip("name", withScopes(...), withKey(...)).

import { generateKeyPairSync } from "node:crypto";
import type { ClusterImagePolicy, ImagePolicy, PolicySpec, Secret } from "../../src/api/types.ts";

type Mutator = (spec: { -readonly [K in keyof PolicySpec]: PolicySpec[K] }) => void;

export function newPublicKey(): string {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return Buffer.from(publicKey.export({ type: "spki", format: "pem" }).toString()).toString(
    "base64",
  );
}

function baseSpec(): PolicySpec {
  return { scopes: ["reg.example.com"], policy: { rootOfTrust: { policyType: "Reject" } } };
}

export function cip(name: string, ...mutators: Mutator[]): ClusterImagePolicy {
  const spec = baseSpec();
  for (const m of mutators) m(spec);
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ClusterImagePolicy",
    metadata: { name, generation: 1 },
    spec: spec as ClusterImagePolicy["spec"],
  };
}

export function ip(namespace: string, name: string, ...mutators: Mutator[]): ImagePolicy {
  const spec = baseSpec();
  for (const m of mutators) m(spec);
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name, namespace, generation: 1 },
    spec: spec,
  };
}

export const withScopes =
  (...scopes: string[]): Mutator =>
  (s) => {
    s.scopes = scopes;
  };

export const withKey =
  (keyData: string, ...additional: string[]): Mutator =>
  (s) => {
    s.policy = {
      ...s.policy,
      rootOfTrust: {
        policyType: "PublicKey",
        publicKey: {
          keyData,
          ...(additional.length > 0
            ? { additionalKeys: additional.map((k) => ({ keyData: k })) }
            : {}),
        },
      },
    };
  };

export const withSecretKey =
  (ref: { name: string; key: string; namespace?: string }): Mutator =>
  (s) => {
    s.policy = {
      ...s.policy,
      rootOfTrust: {
        policyType: "PublicKey",
        publicKey: { keySecretRef: ref as { name: string; key: string; namespace: string } },
      },
    };
  };

export const rejecting: Mutator = (s) => {
  s.policy = { rootOfTrust: { policyType: "Reject" } };
};

export const accepting: Mutator = (s) => {
  s.policy = { rootOfTrust: { policyType: "InsecureAcceptAnything" } };
};

export const withIdentity =
  (identity: NonNullable<PolicySpec["policy"]["signedIdentity"]>): Mutator =>
  (s) => {
    s.policy = { ...s.policy, signedIdentity: identity };
  };

export function secret(namespace: string, name: string, data: Record<string, string>): Secret {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace }, data };
}

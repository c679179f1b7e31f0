// OpenShift config.openshift.io/v1 objects: the spec is kept as it is and only apiVersion
// changes; OpenShift's own fields only, strictly; and a warning wherever OpenShift would have
// ignored an ImagePolicy scope under a ClusterImagePolicy scope, which here adds requirements.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { importObjects } from "../../../src/import/importObjects.ts";
import { convertOpenShift, nestedScopeWarnings } from "../../../src/import/openshift.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const KEY = Buffer.from(readFileSync(path.join(ROOT, "test/fixtures/keys/a.pub"))).toString(
  "base64",
);

const spec = (scopes: string[]) => ({
  scopes,
  policy: {
    rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: KEY } },
    signedIdentity: { matchPolicy: "MatchRepository" },
  },
});

function os(kind: "ClusterImagePolicy" | "ImagePolicy", name: string, scopes: string[]) {
  return {
    apiVersion: "config.openshift.io/v1",
    kind,
    metadata: {
      name,
      ...(kind === "ImagePolicy" ? { namespace: "team-a" } : {}),
      uid: "x",
      resourceVersion: "1",
    },
    spec: spec(scopes),
    status: { conditions: [{ type: "Pending", status: "False" }] },
  };
}

const run = (docs: unknown[]) =>
  importObjects(docs, {
    secretNamespace: "imagepolicy-system",
    policyControllerNamespace: "cosign-system",
    defaultSecretKey: "cosign.pub",
    widenGlobs: false,
    trust: undefined,
    noMatchPolicy: undefined,
    partial: false,
  });

describe("OpenShift objects", () => {
  it("keep their spec and names; only apiVersion changes", () => {
    const r = run([
      os("ClusterImagePolicy", "c", ["quay.io/acme"]),
      os("ImagePolicy", "i", ["quay.io/other"]),
    ]);
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.notes).toEqual([expect.stringContaining("OpenShift ignores an ImagePolicy scope")]);
    expect(r.objects).toEqual([
      {
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ClusterImagePolicy",
        metadata: {
          name: "c",
          annotations: {
            "imagepolicy.dev/imported-from": "config.openshift.io/v1 ClusterImagePolicy",
          },
        },
        spec: spec(["quay.io/acme"]),
      },
      {
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ImagePolicy",
        metadata: {
          name: "i",
          namespace: "team-a",
          annotations: { "imagepolicy.dev/imported-from": "config.openshift.io/v1 ImagePolicy" },
        },
        spec: spec(["quay.io/other"]),
      },
    ]);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["this project's policyType", { policyType: "Reject" }, "spec.policy.rootOfTrust.policyType"],
    [
      "this project's keySecretRef",
      {
        policyType: "PublicKey",
        publicKey: { keyData: KEY, keySecretRef: { name: "a", namespace: "b", key: "c" } },
      },
      "spec.policy.rootOfTrust.publicKey",
    ],
    [
      "this project's additionalKeys",
      { policyType: "PublicKey", publicKey: { keyData: KEY, additionalKeys: [{ keyData: KEY }] } },
      "spec.policy.rootOfTrust.publicKey",
    ],
  ])("refuse %s, a field OpenShift does not have", (_name, rootOfTrust, field) => {
    const o = os("ClusterImagePolicy", "c", ["quay.io"]);
    const r = convertOpenShift(
      { ...o, spec: { ...o.spec, policy: { rootOfTrust } } },
      "ClusterImagePolicy",
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => p.field)).toContain(field);
  });

  it("run through this project's validation: a bad key is refused with the field", () => {
    const o = os("ClusterImagePolicy", "c", ["quay.io"]);
    const r = run([
      {
        ...o,
        spec: {
          ...o.spec,
          policy: {
            rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: "bm90IGEga2V5" } },
          },
        },
      },
    ]);
    expect(r.objects).toEqual([]);
    // The API's PEM rules (start, end, one block) each refuse it at that field.
    expect([...new Set(r.problems.map((p) => p.field))]).toEqual([
      "(converted) spec.policy.rootOfTrust.publicKey.keyData",
    ]);
  });
});

describe("ImagePolicy scopes OpenShift would have ignored", () => {
  it.each([
    ["equal", "quay.io/acme", "quay.io/acme", true],
    ["nested", "quay.io", "quay.io/acme/app", true],
    ["under a wildcard", "*.example.com", "reg.example.com/app", true],
    ["sibling", "quay.io/acme", "quay.io/other", false],
    ["port is not a parent", "reg.example.com", "reg.example.com:5000/app", false],
  ])("%s", (_name, cluster, namespaced, warned) => {
    const c = convertOpenShift(os("ClusterImagePolicy", "c", [cluster]), "ClusterImagePolicy");
    const i = convertOpenShift(os("ImagePolicy", "i", [namespaced]), "ImagePolicy");
    if (!c.ok || !i.ok) throw new Error("fixture did not convert");
    const w = nestedScopeWarnings([c.converted, i.converted]);
    expect(w.length).toBe(warned ? 1 : 0);
    if (warned) {
      expect(w[0]?.source.name).toBe("i");
      expect(w[0]?.message).toContain("OpenShift ignored this ImagePolicy there");
    }
  });
});

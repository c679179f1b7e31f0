import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { refKey, type ClusterImagePolicy } from "../../../src/api/types.ts";
import { plan, PlanCache, type PlanInput } from "../../../src/controller/plan.ts";
import { LATEST_KNOWN } from "../../../src/compiler/crioVersion.ts";
import { parseLayer } from "../../../src/compiler/layer.ts";
import { parseImage } from "../../../src/compiler/scopes.ts";
import {
  accepting,
  cip,
  ip,
  newPublicKey,
  rejecting,
  withKey,
  withSecretKey,
  withScopes,
} from "../../support/builders.ts";
import { publicKeyring } from "../../support/keyMaterial.ts";

/** A well-formed public key the compiler refuses (secp256k1: containers-image cannot verify
 * with it); a private key is refused earlier, by the schema, as the API server would. */
function unsupportedKey(): string {
  const { publicKey: k } = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
  return Buffer.from(k.export({ type: "spki", format: "pem" }).toString()).toString("base64");
}

function pauseReference(): string {
  const p = parseImage("registry.k8s.io/pause:3.10");
  if (!p.ok) throw new Error(p.reason);
  return p.reference;
}

function input(
  objects: unknown[],
  previous?: ReturnType<typeof plan>,
  overrides: Partial<PlanInput> = {},
): PlanInput {
  return {
    objects,
    secrets: () => undefined,
    target: LATEST_KNOWN,
    publishedCluster: previous?.cluster.layer,
    publishedNamespaces: new Map(
      [...(previous?.namespaces ?? [])].map(([ns, l]) => [ns, l.layer] as const),
    ),
    operatorNamespace: "imagepolicy-system",
    protectedImages: [
      { reference: pauseReference(), reason: "WouldRejectPause", namespaces: "all", what: "pause" },
    ],
    quota: { maxPolicies: 256, maxScopes: 1024, maxBytes: 262_144 },
    namespaceLookasidePrefixes: [],
    ...overrides,
  };
}

const gen = <T extends { metadata: object }>(o: T, generation: number): T => ({
  ...o,
  metadata: { ...o.metadata, generation },
});

describe("plan", () => {
  it("publishes a cluster layer and one layer per namespace with policies", () => {
    const key = newPublicKey();
    const p = plan(input([cip("a", withKey(key)), ip("team", "b", withKey(key))]));
    expect(p.cluster.layer.policies.map((x) => x.name)).toEqual(["a"]);
    expect([...p.namespaces.keys()]).toEqual(["team"]);
    expect(parseLayer(p.cluster.text)).toEqual(p.cluster.layer);
    expect(p.cluster.revision).toMatch(/^[0-9a-f]{16}$/);
    expect(plan(input([cip("a", withKey(key)), ip("team", "b", withKey(key))])).cluster.text).toBe(
      p.cluster.text,
    );
  });

  it("does not check again an object a status write replaced (same uid and generation)", () => {
    const cache = new PlanCache();
    const key = newPublicKey();
    const stored = (generation: number, status: object): ClusterImagePolicy => {
      const o = cip("a", withKey(key));
      return { ...o, metadata: { ...o.metadata, uid: "u-1", generation }, status };
    };
    const first = plan({ ...input([stored(1, {})]), cache });
    const form = first.cluster.layer.policies[0];
    expect(form?.name).toBe("a");
    // The informer's object after a status write: another object, the same spec.
    const again = plan({ ...input([stored(1, { conditions: [] })], first), cache });
    expect(again.cluster.layer.policies[0]).toBe(form);
    expect(again.cluster).toBe(first.cluster);
    // A new generation is checked again.
    const next = plan({ ...input([stored(2, {})], again), cache });
    expect(next.cluster.layer.policies[0]).not.toBe(form);
    expect(next.cluster.layer.policies[0]?.generation).toBe(2);
    // Only the generations the last plan saw are kept.
    const back = plan({ ...input([stored(1, { conditions: [] })], next), cache });
    expect(back.cluster.layer.policies[0]).not.toBe(form);
    expect(back.cluster.layer.policies[0]).toEqual(form);
    // Without a uid (a file) only the object itself is the key.
    const plain = cip("a", withKey(key));
    const fromFile = plan({ ...input([plain]), cache }).cluster.layer.policies[0];
    expect(plan({ ...input([{ ...plain }]), cache }).cluster.layer.policies[0]).not.toBe(fromFile);
  });

  it("keeps the last accepted form of a refused object, with the refusal's field path", () => {
    const good = gen(cip("a", withKey(newPublicKey())), 1);
    const first = plan(input([good]));
    const bad = gen(cip("a", withKey(unsupportedKey())), 2);
    const second = plan(input([bad], first));
    expect(second.cluster.text).toBe(first.cluster.text);
    const o = second.outcomes.get(refKey({ kind: "ClusterImagePolicy", name: "a" }));
    expect(o?.generation).toBe(2);
    expect(o?.inLayer).toBe(true);
    expect(o?.layerGeneration).toBe(1);
    expect(o?.refusals[0]?.field).toBe("spec.policy.rootOfTrust.publicKey.keyData");
    expect(o?.refusals[0]?.reason).toBe("InvalidKey");
  });

  it("drops an object refused from the start and a namespace left without policies", () => {
    const p = plan(input([ip("team", "b", withKey(unsupportedKey()))]));
    expect(p.namespaces.size).toBe(0);
    expect(p.outcomes.get("ImagePolicy/team/b")?.inLayer).toBe(false);
  });

  it("refuses a policy that would reject the pause image and keeps the previous form", () => {
    const exception = cip("pause", withScopes("registry.k8s.io/pause"), accepting);
    const deny = cip("deny", withScopes("*"), rejecting);
    const first = plan(input([exception, deny]));
    expect(first.outcomes.get("ClusterImagePolicy//deny")?.refusals).toEqual([]);
    // Narrowing the exception away would lock the pause image out.
    const narrowed = cip("pause", withScopes("registry.k8s.io/other"), accepting);
    const second = plan(input([narrowed, deny], first));
    expect(second.outcomes.get("ClusterImagePolicy//pause")?.refusals[0]?.reason).toBe(
      "WouldRejectPause",
    );
    expect(second.cluster.text).toBe(first.cluster.text);
    // A deny-all without any exception is refused outright.
    const alone = plan(input([deny]));
    expect(alone.outcomes.get("ClusterImagePolicy//deny")?.refusals[0]?.reason).toBe(
      "WouldRejectPause",
    );
    expect(alone.cluster.layer.policies).toEqual([]);
  });

  it("refuses a namespace policy that rejects an image protected in every namespace", () => {
    const p = plan(
      input([ip("imagepolicy-system", "x", withScopes("registry.k8s.io"), rejecting)]),
    );
    expect(p.outcomes.get("ImagePolicy/imagepolicy-system/x")?.refusals[0]?.reason).toBe(
      "WouldRejectPause",
    );
    const other = plan(input([ip("team", "x", withScopes("registry.k8s.io"), rejecting)]));
    expect(other.outcomes.get("ImagePolicy/team/x")?.refusals[0]?.reason).toBe("WouldRejectPause");
    const elsewhere = plan(input([ip("team", "x", withScopes("quay.io"), rejecting)]));
    expect(elsewhere.outcomes.get("ImagePolicy/team/x")?.refusals).toEqual([]);
  });
});

const withGpg =
  (lookaside: string): Parameters<typeof cip>[1] =>
  (s) => {
    s.policy = {
      rootOfTrust: {
        policyType: "GPGKey",
        gpgKey: { keyData: publicKeyring().toString("base64"), lookaside },
      },
    };
  };

const refusalOf = (p: ReturnType<typeof plan>, key: string) => p.outcomes.get(key)?.refusals[0];

describe("plan: trust boundaries (docs/security.md)", () => {
  it("rule 1: a ClusterImagePolicy never reads a Secret outside the operator namespace", () => {
    const key = newPublicKey();
    const reads: string[] = [];
    const secrets = (ns: string, name: string): string | undefined => {
      reads.push(`${ns}/${name}`);
      return key;
    };
    const foreign = cip(
      "vendor",
      withSecretKey({ namespace: "team-a", name: "vendor-key", key: "k" }),
    );
    const own = cip(
      "own",
      withScopes("quay.io"),
      withSecretKey({ namespace: "imagepolicy-system", name: "own-key", key: "k" }),
    );
    const p = plan(input([foreign, own], undefined, { secrets }));
    expect(refusalOf(p, "ClusterImagePolicy//vendor")).toMatchObject({
      reason: "SecretNamespaceNotAllowed",
      field: "spec.policy.rootOfTrust.publicKey.keySecretRef.namespace",
    });
    expect(reads).toEqual(["imagepolicy-system/own-key"]);
    expect(p.cluster.layer.policies.map((x) => x.name)).toEqual(["own"]);
  });

  it("rule 1: an ImagePolicy reads its Secret from its own namespace only", () => {
    const reads: string[] = [];
    const secrets = (ns: string, name: string): string | undefined => {
      reads.push(`${ns}/${name}`);
      return newPublicKey();
    };
    plan(
      input([ip("team-a", "x", withSecretKey({ name: "k", key: "k" }))], undefined, { secrets }),
    );
    expect(reads).toEqual(["team-a/k"]);
  });

  it("a Secret not read yet keeps the published form and says why", () => {
    const ref = withSecretKey({ name: "k", key: "k" });
    const first = plan(
      input([ip("team-a", "x", ref)], undefined, { secrets: () => newPublicKey() }),
    );
    const second = plan(
      input([ip("team-a", "x", ref)], first, { pendingSecrets: new Set(["team-a/k"]) }),
    );
    expect(refusalOf(second, "ImagePolicy/team-a/x")?.reason).toBe("SecretPending");
    expect(second.namespaces.get("team-a")?.text).toBe(first.namespaces.get("team-a")?.text);
  });

  it("rule 3: an ImagePolicy may not use a file:// lookaside, nor one outside the allow-list", () => {
    const local = ip(
      "team-a",
      "x",
      withScopes("reg.io/app"),
      withGpg("file:///etc/kubernetes/pki"),
    );
    const allowed = { namespaceLookasidePrefixes: ["https://sigs.example.com/"] };
    for (const overrides of [{}, allowed]) {
      const p = plan(input([local], undefined, overrides));
      // The API's parser refuses file:// in an ImagePolicy first (field ...gpgKey.lookaside);
      // plan()'s own gate (LookasideNotAllowed) is the second.
      const r = refusalOf(p, "ImagePolicy/team-a/x");
      expect(["Invalid", "LookasideNotAllowed"]).toContain(r?.reason);
      expect(r?.field).toBe("spec.policy.rootOfTrust.gpgKey.lookaside");
      expect(p.namespaces.size).toBe(0);
    }
    const other = ip("team-a", "x", withScopes("reg.io/app"), withGpg("https://evil.example/"));
    expect(
      refusalOf(plan(input([other], undefined, allowed)), "ImagePolicy/team-a/x")?.reason,
    ).toBe("LookasideNotAllowed");
    const good = ip("team-a", "x", withScopes("reg.io/app"), withGpg("https://sigs.example.com/a"));
    expect(
      plan(input([good], undefined, allowed)).outcomes.get("ImagePolicy/team-a/x")?.refusals,
    ).toEqual([]);
  });

  it("rule 3: a published namespace lookaside that is no longer allowed leaves the layer", () => {
    const allowed = { namespaceLookasidePrefixes: ["https://sigs.example.com/"] };
    const x = ip("team-a", "x", withScopes("reg.io/app"), withGpg("https://sigs.example.com/a"));
    const first = plan(input([x], undefined, allowed));
    expect(first.namespaces.has("team-a")).toBe(true);
    const second = plan(input([x], first));
    expect(refusalOf(second, "ImagePolicy/team-a/x")?.reason).toBe("LookasideNotAllowed");
    expect(second.namespaces.has("team-a")).toBe(false);
  });

  it("rule 3: a cluster policy wins a lookaside conflict against a published namespace policy", () => {
    const allowed = { namespaceLookasidePrefixes: ["https://sigs.example.com/"] };
    const theirs = ip(
      "team-a",
      "x",
      withScopes("reg.io/app"),
      withGpg("https://sigs.example.com/a"),
    );
    const first = plan(input([theirs], undefined, allowed));
    const cluster = cip(
      "vendor",
      withScopes("reg.io/app/sub"),
      withGpg("https://vendor.example/sigs"),
    );
    const second = plan(input([theirs, cluster], first, allowed));
    expect(second.outcomes.get("ClusterImagePolicy//vendor")?.refusals).toEqual([]);
    expect(second.cluster.layer.policies.map((p) => p.name)).toEqual(["vendor"]);
    expect(refusalOf(second, "ImagePolicy/team-a/x")?.reason).toBe("ConflictingLookaside");
    expect(second.outcomes.get("ImagePolicy/team-a/x")?.inLayer).toBe(false);
  });

  it("rule 3: a namespace lookaside may not redirect a cluster GPG policy's signatures", () => {
    const allowed = { namespaceLookasidePrefixes: ["https://sigs.example.com/"] };
    const cluster = cip("vendor", withScopes("reg.io"), withGpg("https://vendor.example/sigs"));
    const theirs = ip(
      "team-a",
      "x",
      withScopes("reg.io/app"),
      withGpg("https://sigs.example.com/a"),
    );
    const p = plan(input([cluster, theirs], undefined, allowed));
    expect(refusalOf(p, "ImagePolicy/team-a/x")?.reason).toBe("LookasideNotAllowed");
    expect(p.outcomes.get("ClusterImagePolicy//vendor")?.refusals).toEqual([]);
  });

  it("rule 2: twelve ImagePolicies of 256 long scopes hit the quota, naming it; no one else waits", () => {
    const key = newPublicKey();
    const longScopes = (i: number) =>
      Array.from({ length: 256 }, (_, j) => `registry.example.com/${"x".repeat(180)}/p${i}/r${j}`);
    const flood = Array.from({ length: 12 }, (_, i) =>
      ip(
        "mallory",
        `flood-${String(i).padStart(2, "0")}`,
        withScopes(...longScopes(i)),
        withKey(key),
      ),
    );
    const p = plan(
      input([
        ...flood,
        ip("team-a", "tight", withKey(key)),
        cip("c", withScopes("quay.io"), withKey(key)),
      ]),
    );
    const refused = flood.filter(
      (f) => refusalOf(p, `ImagePolicy/mallory/${f.metadata.name}`) !== undefined,
    );
    expect(refused.length).toBeGreaterThan(0);
    const r = refusalOf(p, `ImagePolicy/mallory/${refused[0]?.metadata.name ?? ""}`);
    expect(r?.reason).toBe("QuotaExceeded");
    expect(r?.message).toMatch(/--namespace-max-(scopes|bytes)/);
    const layer = p.namespaces.get("mallory");
    expect(Buffer.byteLength(layer?.text ?? "")).toBeLessThanOrEqual(262_144 + 64);
    expect(p.outcomes.get("ImagePolicy/team-a/tight")?.refusals).toEqual([]);
    expect(p.namespaces.has("team-a")).toBe(true);
    expect(p.cluster.layer.policies.map((x) => x.name)).toEqual(["c"]);
  }, 60_000);

  it("rule 2: the policy count limit names its flag", () => {
    const many = Array.from({ length: 3 }, (_, i) =>
      ip("team-a", `p${i}`, withScopes(`quay.io/${i}`)),
    );
    const p = plan(
      input(many, undefined, { quota: { maxPolicies: 2, maxScopes: 1024, maxBytes: 262_144 } }),
    );
    expect(refusalOf(p, "ImagePolicy/team-a/p2")?.message).toContain("--namespace-max-policies");
    expect(p.namespaces.get("team-a")?.layer.policies.length).toBe(2);
  });

  it("rule 5: requiring an unrelated key for the pause image is refused, not only reject", () => {
    const p = plan(
      input([cip("pause-signed", withScopes("registry.k8s.io/pause"), withKey(newPublicKey()))]),
    );
    expect(refusalOf(p, "ClusterImagePolicy//pause-signed")?.reason).toBe("WouldRejectPause");
    expect(refusalOf(p, "ClusterImagePolicy//pause-signed")?.message).toContain("sigstoreKeys");
    expect(p.cluster.layer.policies).toEqual([]);
  });

  it("rule 5: an image protected in one namespace binds that namespace's policies only", () => {
    const coredns = parseImage("registry.k8s.io/coredns/coredns:v1.11.1");
    if (!coredns.ok) throw new Error(coredns.reason);
    const protectedImages: PlanInput["protectedImages"] = [
      {
        reference: coredns.reference,
        reason: "WouldRejectProtectedImage",
        namespaces: ["kube-system"],
        what: "coredns",
      },
    ];
    const deny = (ns: string) => ip(ns, "deny", withScopes("registry.k8s.io/coredns"), rejecting);
    const p = plan(input([deny("kube-system"), deny("team-a")], undefined, { protectedImages }));
    expect(refusalOf(p, "ImagePolicy/kube-system/deny")?.reason).toBe("WouldRejectProtectedImage");
    expect(p.outcomes.get("ImagePolicy/team-a/deny")?.refusals).toEqual([]);
    const cluster = plan(
      input([cip("deny", withScopes("registry.k8s.io/coredns"), rejecting)], undefined, {
        protectedImages,
      }),
    );
    expect(refusalOf(cluster, "ClusterImagePolicy//deny")?.reason).toBe(
      "WouldRejectProtectedImage",
    );
  });

  it("rule 5: deleting an exception puts a lock-out risk on the policies that now decide", () => {
    const exception = cip("pause", withScopes("registry.k8s.io/pause"), accepting);
    const deny = cip("deny", withScopes("*"), rejecting);
    const first = plan(input([exception, deny]));
    const second = plan(input([deny], first));
    const o = second.outcomes.get("ClusterImagePolicy//deny");
    expect(o?.refusals).toEqual([]);
    expect(o?.exposures.map((e) => e.image.reason)).toContain("WouldRejectPause");
    expect(second.warnings.join("\n")).toContain("registry.k8s.io/pause");
  });
});

describe("plan: Secrets being read", () => {
  const ref = withSecretKey({ name: "k", key: "k" });
  const key = newPublicKey();

  it("keeps an up-to-date published form silently while its Secret settles", () => {
    const first = plan(input([ip("team-a", "x", ref)], undefined, { secrets: () => key }));
    const second = plan(
      input([ip("team-a", "x", ref)], first, { settlingSecrets: new Set(["team-a/k"]) }),
    );
    expect(second.outcomes.get("ImagePolicy/team-a/x")?.refusals).toEqual([]);
    expect(second.namespaces.get("team-a")?.text).toBe(first.namespaces.get("team-a")?.text);
  });

  it("says SecretPending for a new generation whose Secret settles", () => {
    const first = plan(input([ip("team-a", "x", ref)], undefined, { secrets: () => key }));
    const edited = gen(ip("team-a", "x", ref, withScopes("quay.io/x")), 2);
    const second = plan(input([edited], first, { settlingSecrets: new Set(["team-a/k"]) }));
    expect(refusalOf(second, "ImagePolicy/team-a/x")?.reason).toBe("SecretPending");
    expect(second.namespaces.get("team-a")?.text).toBe(first.namespaces.get("team-a")?.text);
  });
});

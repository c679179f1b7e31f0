import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { outcomeKey, plan, type PlanInput } from "../../../src/controller/plan.ts";
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
  withScopes,
} from "../../support/builders.ts";

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

function input(objects: unknown[], previous?: ReturnType<typeof plan>): PlanInput {
  return {
    objects,
    secrets: () => undefined,
    target: LATEST_KNOWN,
    publishedCluster: previous?.cluster.layer,
    publishedNamespaces: new Map(
      [...(previous?.namespaces ?? [])].map(([ns, l]) => [ns, l.layer] as const),
    ),
    operatorNamespace: "imagepolicy-system",
    protectedImages: [{ reference: pauseReference(), reason: "WouldRejectPause" }],
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

  it("keeps the last accepted form of a refused object, with the refusal's field path", () => {
    const good = gen(cip("a", withKey(newPublicKey())), 1);
    const first = plan(input([good]));
    const bad = gen(cip("a", withKey(unsupportedKey())), 2);
    const second = plan(input([bad], first));
    expect(second.cluster.text).toBe(first.cluster.text);
    const o = second.outcomes.get(outcomeKey({ kind: "ClusterImagePolicy", name: "a" }));
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

  it("refuses a namespace policy of the operator namespace that rejects the pause image", () => {
    const p = plan(
      input([ip("imagepolicy-system", "x", withScopes("registry.k8s.io"), rejecting)]),
    );
    expect(p.outcomes.get("ImagePolicy/imagepolicy-system/x")?.refusals[0]?.reason).toBe(
      "WouldRejectPause",
    );
    const other = plan(input([ip("team", "x", withScopes("registry.k8s.io"), rejecting)]));
    expect(other.outcomes.get("ImagePolicy/team/x")?.refusals).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { fingerprints } from "../../../src/compiler/fingerprint.ts";
import { explainRefusal, type NodeReport } from "../../../src/refusals/explainRefusal.ts";
import { readPublishedLayer, type PublishedLayer } from "../../../src/refusals/layers.ts";
import { parseRefusalEvent, type Refusal } from "../../../src/refusals/parse.ts";
import { recordStatus } from "../../../src/refusals/record.ts";
import { namespaceFileRevision } from "../../../src/nodeStatus.ts";
import {
  kubeletEvent,
  layerConfigMap,
  policy,
  publicKey,
  pullFailedMessage,
  REASONS,
} from "./fixtures.ts";

const clusterKey = publicKey();
const teamKey = publicKey();

function refusal(image: string, reason: string = REASONS.NoSignature): Refusal {
  const r = parseRefusalEvent(kubeletEvent({ message: pullFailedMessage(image, reason) }));
  if (r === undefined) throw new Error("fixture is not a refusal");
  return r;
}

const cluster: PublishedLayer = readPublishedLayer(
  layerConfigMap(undefined, [
    policy(
      "signed-apps",
      ["registry.example"],
      { kind: "sigstoreKeys", keys: [clusterKey.b64] },
      4,
    ),
    policy("no-evil", ["evil.example"], { kind: "reject" }),
  ]),
  undefined,
);
const team: PublishedLayer = readPublishedLayer(
  layerConfigMap("team", [
    policy(
      "team-signed",
      ["registry.example/team"],
      { kind: "sigstoreKeys", keys: [teamKey.b64] },
      2,
    ),
  ]),
  "team",
);

const upToDate = (ns?: PublishedLayer): NodeReport => ({
  name: "node-a",
  crioVersion: { major: 1, minor: 36, patch: 0 },
  enforcing: true,
  appliedRevisions: {
    "cluster.json": cluster.revision,
    ...(ns === undefined
      ? {}
      : { "team.json": namespaceFileRevision(cluster.revision, ns.revision) }),
  },
});

describe("explainRefusal", () => {
  it("names the cluster layer, its scope, policy and key fingerprint", () => {
    const x = explainRefusal({
      refusal: refusal("registry.example/app:v1"),
      cluster,
      namespace: undefined,
      node: upToDate(),
      recordName: "web-0-abc",
    });
    expect(x.decidingLayer).toBe("Cluster");
    expect(x.file).toBe("cluster.json");
    expect(x.fileScope).toBe("registry.example");
    expect(x.cluster?.policies).toEqual([
      { kind: "ClusterImagePolicy", name: "signed-apps", generation: 4 },
    ]);
    expect(x.accepts).toEqual([
      `a sigstore signature by key ${clusterKey.fingerprint}, naming exactly registry.example/app:v1 (matchRepoDigestOrExact, pulled by tag: a signature naming only the repository is not enough)`,
    ]);
    expect(x.notes).toEqual([]);
    expect(x.hint).toMatch(/No signature of the image was found/);
    expect(x.summary).toMatch(
      /^Pull of registry\.example\/app:v1 refused by the cluster layer \(ClusterImagePolicies\): scope registry\.example of ClusterImagePolicy\/signed-apps\. Details: kubectl get imagepullrefusal web-0-abc -n team -o yaml\./,
    );
  });

  it("names the namespace layer when only it imposes something, and both when both do", () => {
    const open = readPublishedLayer(layerConfigMap(undefined, []), undefined);
    const onlyNs = explainRefusal({
      refusal: refusal("registry.example/team/api:v2"),
      cluster: open,
      namespace: team,
      node: upToDate(team),
      recordName: "r",
    });
    expect(onlyNs.decidingLayer).toBe("Namespace");
    expect(onlyNs.file).toBe("policies/team.json");
    expect(onlyNs.namespace?.policies).toEqual([
      { kind: "ImagePolicy", name: "team-signed", namespace: "team", generation: 2 },
    ]);
    const both = explainRefusal({
      refusal: refusal("registry.example/team/api:v2"),
      cluster,
      namespace: team,
      node: upToDate(team),
      recordName: "r",
    });
    expect(both.decidingLayer).toBe("Both");
    expect(both.accepts).toHaveLength(2);
    expect(both.accepts.join(" ")).toContain(teamKey.fingerprint);
    expect(both.accepts.join(" ")).toContain(clusterKey.fingerprint);
  });

  it("names the rejecting layer for a Reject scope", () => {
    const x = explainRefusal({
      refusal: refusal("evil.example/x:1", REASONS.RejectedByPolicy),
      cluster,
      namespace: team,
      node: upToDate(team),
      recordName: "r",
    });
    expect(x.decidingLayer).toBe("Cluster");
    expect(x.accepts).toEqual(["nothing: this scope rejects every image (Reject)"]);
    expect(x.hint).toMatch(/rejects every image/);
  });

  it("says when the node is behind the published revision or has no status", () => {
    const behind = explainRefusal({
      refusal: refusal("registry.example/app:v1"),
      cluster,
      namespace: team,
      node: { ...upToDate(), appliedRevisions: { "cluster.json": "0123456789abcdef" } },
      recordName: "r",
    });
    expect(behind.notes).toEqual([
      `Node node-a holds cluster.json at revision 0123456789abcdef, not the published ${cluster.revision}: it may have decided on an older policy.`,
      "Node node-a has not written policies/team.json yet: CRI-O read cluster.json, so this namespace's ImagePolicies did not apply.",
    ]);
    expect(behind.namespace).toBeUndefined();
    const unknown = explainRefusal({
      refusal: refusal("registry.example/app:v1"),
      cluster,
      namespace: undefined,
      node: undefined,
      recordName: "r",
    });
    expect(unknown.notes).toEqual([
      "Node node-a has no ImagePolicyNodeStatus: this explains the published revision.",
    ]);
  });

  it("says None when the published policy accepts the image", () => {
    const x = explainRefusal({
      refusal: refusal("elsewhere.example/app:v1"),
      cluster,
      namespace: undefined,
      node: upToDate(),
      recordName: "r",
    });
    expect(x.decidingLayer).toBe("None");
    expect(x.notes.at(-1)).toMatch(/accepts elsewhere\.example\/app:v1 unconditionally now/);
  });

  it("a CRI-O older than 1.27.1 reads only cluster.json: the namespace layer does not apply", () => {
    const x = explainRefusal({
      refusal: refusal("registry.example/team/api:v2"),
      cluster,
      namespace: team,
      node: { ...upToDate(), crioVersion: { major: 1, minor: 26, patch: 0 } },
      recordName: "r",
    });
    expect(x.decidingLayer).toBe("Cluster");
    expect(x.notes[0]).toMatch(/reads only cluster\.json/);
  });

  it("never carries key material: no PEM, no base64 of it, no DER", () => {
    const x = explainRefusal({
      refusal: refusal("registry.example/team/api:v2"),
      cluster,
      namespace: team,
      node: upToDate(team),
      recordName: "r",
    });
    const text = JSON.stringify([
      x,
      recordStatus(refusal("registry.example/team/api:v2"), x, 1, "2026-12-02T02:00:00Z"),
    ]);
    for (const k of [clusterKey, teamKey]) {
      expect(fingerprints(k.b64)).toEqual([k.fingerprint]);
      const der = k.pem
        .split("\n")
        .filter((l) => !l.startsWith("-----"))
        .join("");
      expect(text).not.toContain(k.b64.slice(0, 40));
      expect(text).not.toContain(der.slice(0, 40));
      expect(text).not.toContain(der.slice(-40));
      expect(text).toContain(k.fingerprint);
    }
    expect(text).not.toContain("BEGIN PUBLIC KEY");
  });
});

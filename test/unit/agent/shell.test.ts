// The pure parts of the agent's shell: layer ConfigMaps -> tracked layers, the node status and its
// merge patch, and flags.

import { readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseAgentArgs, AgentUsageError } from "../../../src/agent/config.ts";
import { LayerSources, trimLayerConfigMap } from "../../../src/agent/layers.ts";
import { layerRevision } from "../../../src/layerConfigMap.ts";
import {
  appliedNamespaceRevision,
  hasAppliedCluster,
  hasAppliedNamespace,
  reportedNamespaceRevision,
  nodeStatus,
  parseNodeStatusObject,
  patchBody,
  sameStatus,
  type Observation,
} from "../../../src/nodeStatus.ts";
import { serializeLayer, type Layer } from "../../../src/compiler/layer.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";

function cm(name: string, layer: Layer | string, labels: Record<string, string>): KubeObject {
  const text = typeof layer === "string" ? layer : serializeLayer(layer);
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      namespace: "imagepolicy-system",
      labels: { "app.kubernetes.io/managed-by": "imagepolicy-operator", ...labels },
      annotations: { "imagepolicy.dev/revision": layerRevision(text) },
    },
    data: { "layer.json": text },
  };
}

const cluster: Layer = {
  policies: [{ name: "deny", scopes: [""], requirement: { kind: "reject" } }],
};
const teamA: Layer = { namespace: "team-a", policies: [] };
const clusterCm = cm("imagepolicy-layer-cluster", cluster, { "imagepolicy.dev/layer": "cluster" });
const nsLabels = { "imagepolicy.dev/layer": "namespace", "imagepolicy.dev/namespace": "team-a" };

function read(
  sources: LayerSources,
  cms: readonly KubeObject[],
): ReturnType<LayerSources["state"]> {
  sources.update(cms.map(trimLayerConfigMap), () => undefined);
  return sources.state();
}

describe("layer sources", () => {
  it("reads the cluster and namespace layers with their revisions", () => {
    const s = read(new LayerSources(), [
      clusterCm,
      cm("imagepolicy-layer-ns-team-a", teamA, nsLabels),
    ]);
    expect(s.problems).toEqual([]);
    expect(s.cluster).toEqual({
      ok: true,
      layer: { text: serializeLayer(cluster), revision: layerRevision(serializeLayer(cluster)) },
    });
    expect(s.namespaces.get("team-a")).toMatchObject({ ok: true });
  });
  it("keeps the last usable layer of a ConfigMap that became unusable", () => {
    const sources = new LayerSources();
    read(sources, [clusterCm, cm("imagepolicy-layer-ns-team-a", teamA, nsLabels)]);
    const broken = read(sources, [
      clusterCm,
      {
        ...cm("imagepolicy-layer-ns-team-a", "{not json", nsLabels),
        metadata: {
          ...cm("imagepolicy-layer-ns-team-a", "{not json", nsLabels).metadata,
          resourceVersion: "2",
        },
      },
    ]);
    const ns = broken.namespaces.get("team-a");
    expect(ns?.ok).toBe(false);
    if (ns?.ok === false) expect(ns.lastGood?.text).toEqual(serializeLayer(teamA));
  });
  it("parses a layer only when its text changed", () => {
    const sources = new LayerSources();
    const parsed: string[] = [];
    const onParsed = (ns: string | undefined): void => {
      parsed.push(ns ?? "cluster");
    };
    const a = cm("imagepolicy-layer-ns-team-a", teamA, nsLabels);
    sources.update([clusterCm, a], onParsed);
    // A new resourceVersion with the same text (an annotation changed): no parse.
    sources.update(
      [clusterCm, { ...a, metadata: { ...a.metadata, resourceVersion: "9" } }],
      onParsed,
    );
    expect(parsed).toEqual(["cluster", "team-a"]);
    expect(sources.parsed).toBe(2);
  });
  it("keeps the namespaces sorted and current through any sequence of updates", () => {
    const nsCm = (ns: string, version: number): KubeObject => {
      const c = cm(
        `imagepolicy-layer-ns-${ns}`,
        {
          namespace: ns,
          policies:
            version === 0
              ? []
              : [{ name: `v${String(version)}`, scopes: [""], requirement: { kind: "reject" } }],
        },
        { ...nsLabels, "imagepolicy.dev/namespace": ns },
      );
      return { ...c, metadata: { ...c.metadata, resourceVersion: `${ns}-${String(version)}` } };
    };
    const names = ["b", "a", "d", "c", "e"];
    fc.assert(
      fc.property(
        fc.array(fc.dictionary(fc.constantFrom(...names), fc.integer({ min: 0, max: 2 })), {
          maxLength: 8,
        }),
        (rounds) => {
          const sources = new LayerSources();
          for (const round of rounds) {
            // The informer lists in no particular order.
            const cms = Object.entries(round).map(([ns, v]) => nsCm(ns, v));
            const s = read(sources, [...cms.reverse(), clusterCm]);
            const fresh = read(new LayerSources(), cms);
            expect([...s.namespaces.keys()]).toEqual(Object.keys(round).sort());
            expect([...s.namespaces]).toEqual([...fresh.namespaces]);
            expect(sources.state()).toBe(s); // the same object while nothing moved
          }
        },
      ),
    );
  });
  it("forgets a layer whose ConfigMap is gone or is no longer labelled a layer", () => {
    const sources = new LayerSources();
    const a = cm("imagepolicy-layer-ns-team-a", teamA, nsLabels);
    const b = cm(
      "imagepolicy-layer-ns-team-b",
      { namespace: "team-b", policies: [] },
      {
        ...nsLabels,
        "imagepolicy.dev/namespace": "team-b",
      },
    );
    const other = cm("unrelated", "{}", {});
    expect([...read(sources, [clusterCm, a, b, other]).namespaces.keys()]).toEqual([
      "team-a",
      "team-b",
    ]);
    // team-a's labels are gone (a new resourceVersion), team-b is deleted.
    const unlabelled: KubeObject = {
      ...a,
      metadata: { ...a.metadata, labels: {}, resourceVersion: "7" },
    };
    const s = read(sources, [clusterCm, unlabelled, other]);
    expect([...s.namespaces.keys()]).toEqual([]);
    expect(s.cluster?.ok).toBe(true);
  });
  it("refuses a layer published under another namespace's name", () => {
    const s = read(new LayerSources(), [
      clusterCm,
      cm("imagepolicy-layer-ns-team-b", teamA, {
        ...nsLabels,
        "imagepolicy.dev/namespace": "team-b",
      }),
    ]);
    expect(s.namespaces.get("team-b")).toMatchObject({
      ok: false,
      reason: expect.stringContaining("namespace team-a") as string,
    });
  });
  it("has no cluster layer without its ConfigMap", () => {
    expect(read(new LayerSources(), []).cluster).toBeUndefined();
  });
  it("reports a revision annotation that does not match the data", () => {
    const bad = {
      ...clusterCm,
      metadata: { ...clusterCm.metadata, annotations: { "imagepolicy.dev/revision": "0000" } },
    };
    expect(read(new LayerSources(), [bad]).problems[0]).toContain("does not match");
  });
  it("keeps only what the agent reads of a ConfigMap", () => {
    const t = trimLayerConfigMap({
      ...clusterCm,
      metadata: { ...clusterCm.metadata, managedFields: [{ manager: "x" }] },
      data: { "layer.json": "{}", other: "x" },
    });
    expect(t.metadata["managedFields"]).toBeUndefined();
    expect(t["data"]).toEqual({ "layer.json": "{}" });
  });
});

describe("node status", () => {
  const obs: Observation = {
    runtime: { name: "cri-o", version: "1.34.0" },
    enforcing: true,
    enforcingReason: "ok",
    appliedRevisions: { "cluster.json": "a", "x.json": "a.b" },
    ready: { ok: true, reason: "Applied", message: "m" },
    registriesD: { complete: true, message: "m" },
    lastError: "",
    generation: 1,
  };
  it("is unchanged when only time passes, and keeps transition times", () => {
    const s1 = nodeStatus(obs, undefined, "2024-01-01T00:00:00Z");
    const s2 = nodeStatus(obs, s1, "2024-01-01T01:00:00Z");
    expect(sameStatus(s2, s1)).toBe(true);
    expect(s2.conditions[0]?.lastTransitionTime).toBe("2024-01-01T00:00:00Z");
  });
  it("patches only what changed, removed revisions as null", () => {
    const s1 = nodeStatus(obs, undefined, "t1");
    const s2 = nodeStatus({ ...obs, appliedRevisions: { "cluster.json": "c" } }, s1, "t2");
    expect(sameStatus(s2, s1)).toBe(false);
    expect(s2.lastTransitionTime).toBe("t2");
    expect(patchBody(s2, s1)).toEqual({
      appliedRevisions: { "cluster.json": "c", "x.json": null },
      lastTransitionTime: "t2",
    });
    expect(patchBody(s1, s1)).toBeUndefined();
  });
  it("parses what it reports", () => {
    const s1 = nodeStatus(obs, undefined, "2024-01-01T00:00:00Z");
    const parsed = parseNodeStatusObject({
      metadata: { generation: 3, ownerReferences: [{ uid: "u" }] },
      spec: { nodeName: "n" },
      status: JSON.parse(JSON.stringify(s1)) as unknown,
    });
    expect(parsed).toEqual({ generation: 3, ownerUids: ["u"], nodeName: "n", status: s1 });
    expect(() => parseNodeStatusObject({ status: { enforcing: "yes" } })).toThrow(/enforcing/);
  });
  it("reads revision strings as docs/internals.md says", () => {
    const applied = { "cluster.json": "c1", "a.json": "c1.n1", "b.json": "c1.n2" };
    expect(hasAppliedCluster(applied, "c1")).toBe(true);
    expect(hasAppliedCluster({ ...applied, "b.json": "c0.n2" }, "c1")).toBe(false);
    expect(hasAppliedCluster({ ...applied, "b.json": "" }, "c1")).toBe(false);
    expect(hasAppliedCluster({ ...applied, "b.json": "c10.n2" }, "c1")).toBe(false);
    expect(hasAppliedNamespace(applied, "a", "n1")).toBe(true);
    expect(hasAppliedNamespace(applied, "a", "1")).toBe(false);
    expect(hasAppliedNamespace(applied, "c", "n1")).toBe(false);
  });
  it("reads the short namespace form against cluster.json's revision", () => {
    expect(reportedNamespaceRevision("c1.n1", "c1")).toBe("n1");
    expect(reportedNamespaceRevision("c1.unrendered", "c1")).toBe("unrendered");
    expect(reportedNamespaceRevision("c0.n1", "c1")).toBe("c0.n1");
    expect(reportedNamespaceRevision("", "c1")).toBe("");
    expect(reportedNamespaceRevision("c1.n1", "")).toBe("c1.n1");
    const applied = { "cluster.json": "c1", "a.json": "n1", "b.json": "c0.n2" };
    expect(hasAppliedCluster(applied, "c1")).toBe(false);
    expect(hasAppliedCluster({ ...applied, "b.json": "n2" }, "c1")).toBe(true);
    expect(hasAppliedCluster({ ...applied, "b.json": "" }, "c1")).toBe(false);
    expect(hasAppliedNamespace(applied, "a", "n1")).toBe(true);
    expect(hasAppliedNamespace(applied, "b", "n2")).toBe(true);
    expect(hasAppliedNamespace(applied, "a", "1")).toBe(false);
    expect(appliedNamespaceRevision(applied, "a")).toBe("c1.n1");
    expect(appliedNamespaceRevision(applied, "b")).toBe("c0.n2");
    expect(appliedNamespaceRevision({ ...applied, "a.json": "" }, "a")).toBe("");
    expect(appliedNamespaceRevision({ "a.json": "n1" }, "a")).toBe("n1");
    expect(appliedNamespaceRevision(applied, "c")).toBeUndefined();
  });
});

describe("flags", () => {
  it("has the documented defaults", () => {
    const p = parseAgentArgs([], { NODE_NAME: "n1" });
    if (p.help) expect.fail("help");
    expect(p.config).toMatchObject({
      kubeconfig: { kind: "in-cluster" },
      namespace: "imagepolicy-system",
      nodeName: "n1",
      host: {
        root: "/",
        policyPath: "/etc/crio/imagepolicy/cluster.json",
        policyDir: "/etc/crio/policies",
        crioSocket: "/var/run/crio/crio.sock",
      },
      expectedPolicyPath: "/etc/crio/imagepolicy/cluster.json",
      probeIntervalMs: 60_000,
      statusDelayMs: 1_000,
    });
  });
  it("takes the status delay in seconds, from 0 to 60", () => {
    const delay = (s: string): number | undefined => {
      const p = parseAgentArgs([`--status-delay=${s}`], { NODE_NAME: "n" });
      return p.help ? undefined : p.config.statusDelayMs;
    };
    expect(delay("0")).toBe(0);
    expect(delay("0.25")).toBe(250);
    expect(delay("60")).toBe(60_000);
    for (const bad of ["-1", "61", "soon", "Infinity"]) {
      expect(() => delay(bad)).toThrow(/--status-delay must be a number of seconds from 0 to 60/);
    }
  });
  it("accepts the DaemonSet's arguments and needs a node name", () => {
    const ds = parse(
      readFileSync(path.join(import.meta.dirname, "../../../config/agent/daemonset.yaml"), "utf8"),
    ) as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    const [command, ...args] = ds.spec.template.spec.containers[0]?.args ?? [];
    expect(command).toBe("agent");
    const p = parseAgentArgs(
      args.map((a) =>
        a.replace("$(POD_NAMESPACE)", "imagepolicy-system").replace("$(NODE_NAME)", "n"),
      ),
      {},
    );
    expect(p.help ? undefined : p.config.healthAddr).toBe(":8081");
    expect(() => parseAgentArgs([], {})).toThrow(AgentUsageError);
    expect(() => parseAgentArgs(["--nope"], { NODE_NAME: "n" })).toThrow(AgentUsageError);
  });
});

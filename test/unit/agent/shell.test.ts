// The pure parts of the agent's shell: layer ConfigMaps -> desired state, the node status and its
// merge patch, and flags.

import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { parseAgentArgs, AgentUsageError } from "../../../src/agent/config.ts";
import { desiredFrom, readLayers } from "../../../src/agent/layers.ts";
import { layerRevision } from "../../../src/layerConfigMap.ts";
import {
  nodeStatus,
  sameStatus,
  statusPatch,
  type Observation,
} from "../../../src/agent/status.ts";
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

describe("readLayers", () => {
  it("reads the cluster and namespace layers with their revisions", () => {
    const s = readLayers(
      [clusterCm, cm("imagepolicy-layer-ns-team-a", teamA, nsLabels)],
      new Map(),
    );
    expect(s.problems).toEqual([]);
    const d = desiredFrom(s);
    expect(d?.cluster.revision).toBe(layerRevision(serializeLayer(cluster)));
    expect(d?.namespaces.get("team-a")).toMatchObject({ ok: true });
  });
  it("keeps the last usable layer of a ConfigMap that became unusable", () => {
    const first = readLayers(
      [clusterCm, cm("imagepolicy-layer-ns-team-a", teamA, nsLabels)],
      new Map(),
    );
    const broken = readLayers(
      [clusterCm, cm("imagepolicy-layer-ns-team-a", "{not json", nsLabels)],
      first.lastGood,
    );
    const ns = broken.namespaces.get("team-a");
    expect(ns?.ok).toBe(false);
    if (ns?.ok === false) expect(ns.lastGood?.layer).toEqual(teamA);
  });
  it("refuses a layer published under another namespace's name", () => {
    const s = readLayers(
      [
        clusterCm,
        cm("imagepolicy-layer-ns-team-b", teamA, {
          ...nsLabels,
          "imagepolicy.dev/namespace": "team-b",
        }),
      ],
      new Map(),
    );
    expect(s.namespaces.get("team-b")).toMatchObject({
      ok: false,
      reason: expect.stringContaining("namespace team-a") as string,
    });
  });
  it("applies nothing without a cluster layer", () => {
    expect(desiredFrom(readLayers([], new Map()))).toBeUndefined();
  });
  it("reports a revision annotation that does not match the data", () => {
    const bad = {
      ...clusterCm,
      metadata: { ...clusterCm.metadata, annotations: { "imagepolicy.dev/revision": "0000" } },
    };
    expect(readLayers([bad], new Map()).problems[0]).toContain("does not match");
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
  it("sets removed revisions to null in the merge patch", () => {
    const s1 = nodeStatus(obs, undefined, "t1");
    const s2 = nodeStatus({ ...obs, appliedRevisions: { "cluster.json": "c" } }, s1, "t2");
    expect(sameStatus(s2, s1)).toBe(false);
    expect(s2.lastTransitionTime).toBe("t2");
    expect(statusPatch(s2, s1)["appliedRevisions"]).toEqual({
      "cluster.json": "c",
      "x.json": null,
    });
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
    });
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

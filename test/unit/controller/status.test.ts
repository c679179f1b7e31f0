import { describe, expect, it } from "vitest";
import type { Outcome } from "../../../src/controller/plan.ts";
import {
  desiredStatus,
  Fleet,
  nodeHasApplied,
  observedStatus,
  statusChanged,
  type NodeView,
} from "../../../src/controller/status.ts";

const accepted: Outcome = {
  ref: { kind: "ClusterImagePolicy", name: "p" },
  generation: 3,
  refusals: [],
  inLayer: true,
  layerGeneration: 3,
  exposures: [],
};
const refused: Outcome = {
  ...accepted,
  generation: 4,
  refusals: [
    {
      field: "spec.policy.rootOfTrust.publicKey.keyData",
      reason: "InvalidKey",
      message: "a private key",
    },
  ],
};
const layer = { kind: "cluster", revision: "aaaa" } as const;
const node = (name: string, applied: string | undefined, enforcing = true): NodeView => ({
  name,
  crio: true,
  report:
    applied === undefined
      ? undefined
      : { enforcing, appliedRevisions: { "cluster.json": applied, "ns.json": `${applied}.bbbb` } },
});

describe("policy status", () => {
  it("is not Ready while a CRI-O node holds the files but does not enforce them", () => {
    const s = desiredStatus(
      accepted,
      layer,
      new Fleet([node("n1", "aaaa"), node("n2", "aaaa", false)]),
      undefined,
      "T1",
    );
    expect(s.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ["Compiled", "True", "Compiled"],
      ["Applied", "True", "Applied"],
      ["Ready", "False", "NotEnforcing"],
    ]);
    expect(s.rollout?.display).toBe("1/2");
  });

  it("is Ready when compiled and every CRI-O node reports the revision", () => {
    const s = desiredStatus(
      accepted,
      layer,
      new Fleet([node("n1", "aaaa"), node("n2", "aaaa")]),
      undefined,
      "T1",
    );
    expect(s.observedGeneration).toBe(3);
    expect(s.conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).toEqual([
      ["Compiled", "True", "Compiled", 3],
      ["Applied", "True", "Applied", 3],
      ["Ready", "True", "Ready", 3],
    ]);
    expect(s.rollout).toEqual({
      nodesApplied: 2,
      nodesEnforcing: 2,
      nodesTotal: 2,
      display: "2/2",
      revision: "aaaa",
    });
  });

  it("reports RollingOut with counts, and covered nodes only when enforcing", () => {
    const nodes = [node("n1", "aaaa", false), node("n2", "old0"), node("n3", undefined)];
    const s = desiredStatus(accepted, layer, new Fleet(nodes), undefined, "T1");
    const applied = s.conditions.find((c) => c.type === "Applied");
    expect(applied?.reason).toBe("RollingOut");
    expect(applied?.message).toContain("1/3 CRI-O nodes");
    expect(s.rollout?.display).toBe("0/3");
    expect(s.rollout?.nodesApplied).toBe(1);
  });

  it("names the field path and keeps the last accepted form in the message when refused", () => {
    const s = desiredStatus(refused, layer, new Fleet([node("n1", "aaaa")]), undefined, "T1");
    const compiled = s.conditions.find((c) => c.type === "Compiled");
    expect(compiled?.status).toBe("False");
    expect(compiled?.reason).toBe("InvalidKey");
    expect(compiled?.message).toContain("spec.policy.rootOfTrust.publicKey.keyData");
    expect(compiled?.message).toContain("generation 3");
    const ready = s.conditions.find((c) => c.type === "Ready");
    expect([ready?.status, ready?.reason, ready?.observedGeneration]).toEqual([
      "False",
      "InvalidKey",
      4,
    ]);
  });

  it("says Stalled while the current generation is refused, and drops it once accepted", () => {
    // kstatus reads Stalled=True as Failed; Ready=False alone would read as InProgress forever.
    const s = desiredStatus(refused, layer, new Fleet([node("n1", "aaaa")]), undefined, "T1");
    const stalled = s.conditions.find((c) => c.type === "Stalled");
    expect([stalled?.status, stalled?.reason, stalled?.observedGeneration]).toEqual([
      "True",
      "InvalidKey",
      4,
    ]);
    const fixed = desiredStatus(
      { ...accepted, generation: 5, layerGeneration: 5 },
      layer,
      new Fleet([node("n1", "aaaa")]),
      observedStatus({ status: s }),
      "T2",
    );
    expect(fixed.conditions.map((c) => c.type)).not.toContain("Stalled");
    expect(statusChanged(fixed, observedStatus({ status: s }))).toBe(true);
  });

  it("moves lastTransitionTime only when a condition's status changes", () => {
    const first = desiredStatus(accepted, layer, new Fleet([node("n1", "old0")]), undefined, "T1");
    const observed = observedStatus({ status: first });
    const same = desiredStatus(accepted, layer, new Fleet([node("n1", "old0")]), observed, "T2");
    expect(statusChanged(same, observed)).toBe(false);
    const rolled = desiredStatus(accepted, layer, new Fleet([node("n1", "aaaa")]), observed, "T3");
    expect(statusChanged(rolled, observed)).toBe(true);
    const t = (type: string): string | undefined =>
      rolled.conditions.find((c) => c.type === type)?.lastTransitionTime;
    expect([t("Compiled"), t("Applied"), t("Ready")]).toEqual(["T1", "T3", "T3"]);
  });

  it("ignores condition order and conditions of other writers when diffing", () => {
    const s = desiredStatus(accepted, layer, new Fleet([]), undefined, "T1");
    const observed = observedStatus({
      status: {
        ...s,
        conditions: [
          ...[...s.conditions].reverse(),
          {
            type: "Other",
            status: "True",
            lastTransitionTime: "T0",
            reason: "X",
            message: "",
          },
        ],
      },
    });
    expect(statusChanged(s, observed)).toBe(false);
    expect(statusChanged(s, undefined)).toBe(true);
  });

  it("reads node revisions as docs/internals.md says", () => {
    const r = {
      enforcing: true,
      appliedRevisions: { "cluster.json": "aaaa", "ns.json": "aaaa.bbbb" },
    };
    expect(nodeHasApplied(r, { kind: "cluster", revision: "aaaa" })).toBe(true);
    expect(nodeHasApplied(r, { kind: "namespace", namespace: "ns", revision: "bbbb" })).toBe(true);
    expect(nodeHasApplied(r, { kind: "namespace", namespace: "other", revision: "bbbb" })).toBe(
      false,
    );
    const stale = {
      enforcing: true,
      appliedRevisions: { "cluster.json": "aaaa", "ns.json": "old0.bbbb" },
    };
    expect(nodeHasApplied(stale, { kind: "cluster", revision: "aaaa" })).toBe(false);
    expect(nodeHasApplied({ enforcing: true, appliedRevisions: {} }, layer)).toBe(false);
  });
});

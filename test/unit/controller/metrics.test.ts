// The controller's gauges the alerts read that are not set on the reconcile path: the policies
// gauge counts the caches' objects by their Ready condition when Prometheus scrapes.

import { describe, expect, it } from "vitest";
import { ControllerMetrics, type PolicyReadiness } from "../../../src/controller/metrics.ts";

function line(text: string, series: string): number | undefined {
  const l = text.split("\n").find((x) => x.startsWith(`${series} `));
  return l === undefined ? undefined : Number(l.split(" ")[1]);
}

describe("imagepolicy_controller_policies", () => {
  it("counts objects by kind, Ready status and reason at every scrape, forgetting the gone", async () => {
    const m = new ControllerMetrics();
    let objects: PolicyReadiness[] = [
      { kind: "ImagePolicy", ready: "False", reason: "NotEnforcing" },
      { kind: "ImagePolicy", ready: "False", reason: "NotEnforcing" },
      { kind: "ClusterImagePolicy", ready: "True", reason: "Ready" },
      { kind: "ClusterImagePolicy", ready: "", reason: "" },
    ];
    m.countPolicies(() => objects);
    const first = await m.registry.metrics();
    expect(
      line(
        first,
        'imagepolicy_controller_policies{kind="ImagePolicy",ready="False",reason="NotEnforcing"}',
      ),
    ).toBe(2);
    expect(
      line(
        first,
        'imagepolicy_controller_policies{kind="ClusterImagePolicy",ready="True",reason="Ready"}',
      ),
    ).toBe(1);
    expect(
      line(first, 'imagepolicy_controller_policies{kind="ClusterImagePolicy",ready="",reason=""}'),
    ).toBe(1);

    objects = [{ kind: "ClusterImagePolicy", ready: "True", reason: "Ready" }];
    const second = await m.registry.metrics();
    expect(
      line(
        second,
        'imagepolicy_controller_policies{kind="ImagePolicy",ready="False",reason="NotEnforcing"}',
      ),
    ).toBeUndefined();
    expect(
      line(
        second,
        'imagepolicy_controller_policies{kind="ClusterImagePolicy",ready="True",reason="Ready"}',
      ),
    ).toBe(1);
  });
});

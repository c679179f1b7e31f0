// config/grafana/imagepolicy-operator.json is a dashboard Grafana imports: panel ids unique, every
// query on the dashboard's Prometheus data source variable, every expression parsed by Prometheus'
// own parser (hack/tools/promtool.sh builds promql-metrics). Its metric names are checked against
// the real processes by test/apiserver/metricsNames.test.ts.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  DASHBOARD,
  dashboard,
  dashboardExpressions,
  metricNames,
  panels,
  type Dashboard,
} from "../support/monitoring.ts";
import { toolBin } from "../support/tools.ts";

let promqlMetrics: string;
let d: Dashboard;

beforeAll(async () => {
  promqlMetrics = path.join(await toolBin("promtool.sh"), "promql-metrics");
  d = await dashboard();
}, 3_600_000);

describe("config/grafana/imagepolicy-operator.json", () => {
  it("has unique panel ids and queries only the data source variable", async () => {
    const all = panels(d);
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
    const raw: unknown = JSON.parse(await readFile(DASHBOARD, "utf8"));
    const text = JSON.stringify(raw);
    // Every datasource reference names the ${datasource} variable, none a fixed uid.
    const uids = [...text.matchAll(/"uid":"([^"]*)"/g)].map((m) => m[1]);
    expect(uids.filter((u) => u !== d.uid && u !== "${datasource}")).toEqual([]);
    for (const p of all.filter((q) => q.type !== "row")) {
      expect(p.targets?.length ?? 0, p.title).toBeGreaterThan(0);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
    }
  });

  it("has expressions Prometheus parses, each selecting named metrics of this operator", async () => {
    const exprs = dashboardExpressions(d);
    expect(exprs.length).toBeGreaterThan(10);
    const names = await metricNames(
      promqlMetrics,
      exprs.map((e) => e.expr),
    );
    for (const [i, list] of names.entries()) {
      expect(list.length, exprs[i]?.panel).toBeGreaterThan(0);
      for (const n of list) expect(n, exprs[i]?.panel).toMatch(/^imagepolicy_(controller|agent)_/);
    }
  }, 120_000);
});

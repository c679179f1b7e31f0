// Every metric the alerting rules (config/prometheus/alerts.yaml) and the Grafana dashboard
// (config/grafana/imagepolicy-operator.json) name is exported by the real processes: the
// controller and an agent run against a real API server with config/default installed and the
// sample policies applied, and their /metrics are scraped. Names come from Prometheus' own parser
// (hack/tools/promtool.sh builds promql-metrics). When a process renames or drops a metric, this
// fails and names the alert or panel that would go blind.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { alertRules, dashboard, dashboardExpressions, metricNames } from "../support/monitoring.ts";
import { scrape, startOperatorCluster, type OperatorCluster } from "../support/operatorCluster.ts";
import { toolBin } from "../support/tools.ts";
import { waitFor } from "../support/waitFor.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const NODE = "node-a";

let dir: string;
let cp: ControlPlane;
let cluster: OperatorCluster;
let promqlMetrics: string;
const exported = new Map<string, Set<string>>();

/** The series names a scrape can hold: every sample's name, and for each `# TYPE` line the names
 * its type implies even before a first observation (a labelled counter shows no sample until it
 * is incremented; a histogram's are _bucket, _sum and _count). */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(line);
    if (type !== null) {
      const [, name = "", kind] = type;
      const suffixes =
        kind === "histogram"
          ? ["_bucket", "_sum", "_count"]
          : kind === "summary"
            ? ["", "_sum", "_count"]
            : [""];
      for (const s of suffixes) names.add(`${name}${s}`);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample?.[1] !== undefined) names.add(sample[1]);
  }
  return names;
}

async function kubectl(args: string[]): Promise<string> {
  const r = await cp.kubectl(args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  promqlMetrics = path.join(await toolBin("promtool.sh"), "promql-metrics");
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-metrics-"));
  cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  await kubectl(["apply", "--server-side", "-k", path.join(ROOT, "config/default")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  await cp.registerNode(NODE, "cri-o://1.34.0");
  cluster = await startOperatorCluster({ cp, dir, namespace: NS, nodes: [NODE] });
  // Policies, so that the labelled series and the histograms have observations.
  await kubectl(["apply", "-k", path.join(ROOT, "config/samples")]);
  const teamA = path.join(cluster.agents.get(NODE)?.root ?? "", "etc/crio/policies/team-a.json");
  await waitFor("the agent wrote team-a.json", () => readFile(teamA, "utf8").then(() => true), {
    timeoutMs: 120_000,
    context: () => cluster.logs(),
  });
  exported.set("controller", exposedNames(await scrape(cluster.controllerMetrics)));
  exported.set("agent", exposedNames(await scrape(cluster.agents.get(NODE)?.metrics ?? "")));
}, 3_600_000);

afterAll(async () => {
  await cluster.stopAll();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
});

/** For each expression, the names neither process exports. */
async function missing(
  exprs: readonly { where: string; expr: string }[],
): Promise<{ where: string; names: string[] }[]> {
  const all = new Set([...exported.values()].flatMap((s) => [...s]));
  const names = await metricNames(
    promqlMetrics,
    exprs.map((e) => e.expr),
  );
  return exprs
    .map((e, i) => ({ where: e.where, names: (names[i] ?? []).filter((n) => !all.has(n)) }))
    .filter((m) => m.names.length > 0);
}

describe("metric names against the real controller and agent", () => {
  it("scrapes the operator's metrics from both processes", () => {
    const controller = [...(exported.get("controller") ?? [])];
    const agent = [...(exported.get("agent") ?? [])];
    console.info(`controller exports: ${controller.sort().join(", ")}`);
    console.info(`agent exports: ${agent.sort().join(", ")}`);
    expect(
      controller.filter((n) => n.startsWith("imagepolicy_controller_")).length,
    ).toBeGreaterThan(3);
    expect(agent.filter((n) => n.startsWith("imagepolicy_agent_")).length).toBeGreaterThan(3);
  });

  it("notices a metric neither process exports", async () => {
    const probe = { where: "probe", expr: "rate(imagepolicy_agent_renamed_total[5m]) > 0" };
    expect(await missing([probe])).toEqual([
      { where: "probe", names: ["imagepolicy_agent_renamed_total"] },
    ]);
  });

  it("finds every metric an alerting rule names", async () => {
    const rules = await alertRules();
    const exprs = rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }));
    expect(await missing(exprs)).toEqual([]);
  });

  it("finds every metric a dashboard panel names", async () => {
    const exprs = dashboardExpressions(await dashboard()).map((e) => ({
      where: `panel "${e.panel}"`,
      expr: e.expr,
    }));
    expect(await missing(exprs)).toEqual([]);
  });
});

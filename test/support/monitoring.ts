// The PromQL of config/prometheus/alerts.yaml and config/grafana/imagepolicy-operator.json, read
// strictly, and the metric names it selects (Prometheus' own parser, hack/tools/promql-metrics).

import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { runToolOk } from "./tools.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
export const ALERTS = path.join(repoRoot, "config/prometheus/alerts.yaml");
export const ALERT_TESTS = path.join(repoRoot, "config/prometheus/alerts_test.yaml");
export const DASHBOARD = path.join(repoRoot, "config/grafana/imagepolicy-operator.json");

const ruleSchema = z.strictObject({
  alert: z.string(),
  expr: z.string(),
  for: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  annotations: z.strictObject({ summary: z.string(), description: z.string() }),
});
export const rulesSchema = z.strictObject({
  groups: z.array(z.strictObject({ name: z.string(), rules: z.array(ruleSchema).min(1) })).min(1),
});
export type Rule = z.infer<typeof ruleSchema>;

export async function alertRules(file = ALERTS): Promise<Rule[]> {
  const parsed = rulesSchema.parse(parseYaml(await readFile(file, "utf8")));
  return parsed.groups.flatMap((g) => g.rules);
}

const targetSchema = z.looseObject({ expr: z.string(), refId: z.string() });
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: z.infer<typeof targetSchema>[] | undefined;
  panels?: Panel[] | undefined;
}
const panelSchema: z.ZodType<Panel> = z.lazy(() =>
  z.looseObject({
    id: z.number().int(),
    type: z.string(),
    title: z.string(),
    targets: z.array(targetSchema).optional(),
    panels: z.array(panelSchema).optional(),
  }),
);
export const dashboardSchema = z.looseObject({
  uid: z.string(),
  title: z.string(),
  panels: z.array(panelSchema),
});
export type Dashboard = z.infer<typeof dashboardSchema>;

export async function dashboard(file = DASHBOARD): Promise<Dashboard> {
  return dashboardSchema.parse(JSON.parse(await readFile(file, "utf8")));
}

/** Every panel, rows' nested panels included. */
export function panels(d: { readonly panels: readonly Panel[] }): Panel[] {
  return d.panels.flatMap((p) => [p, ...panels({ panels: p.panels ?? [] })]);
}

/** Grafana's built-in interval variables, replaced by a duration so Prometheus' parser reads the
 * expression; any other variable in an expression is an error (its metric could not be checked). */
export function withoutGrafanaVariables(expr: string): string {
  const replaced = expr.replace(/\$__(rate_interval|interval|range)\b/g, "5m");
  if (replaced.includes("$")) throw new Error(`unknown Grafana variable in ${expr}`);
  return replaced;
}

export function dashboardExpressions(d: Dashboard): { panel: string; expr: string }[] {
  return panels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: withoutGrafanaVariables(t.expr) })),
  );
}

/** The metric names each expression selects, with Prometheus' parser (hack/tools/promtool.sh
 * builds promql-metrics). An expression that does not parse, or selects no named metric, fails. */
export async function metricNames(
  promqlMetrics: string,
  exprs: readonly string[],
): Promise<string[][]> {
  const out = await runToolOk(promqlMetrics, [], { stdin: JSON.stringify(exprs) });
  return z.array(z.array(z.string())).length(exprs.length).parse(JSON.parse(out));
}

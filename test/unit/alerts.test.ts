// config/prometheus/alerts.yaml with promtool (hack/tools/promtool.sh): the rules check and lint
// clean, their unit tests (alerts_test.yaml) pass, and those tests are not vacuous: every alert has
// a case where it fires and one where it must not, and the tests fail when an alert is replaced by
// one that always fires or one that never does. test/apiserver/metricsNames.test.ts checks the
// metric names against the real processes.

import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseDocument } from "yaml";
import { z } from "zod";
import { ALERTS, ALERT_TESTS, alertRules, type Rule } from "../support/monitoring.ts";
import { runTool, runToolOk, toolBin } from "../support/tools.ts";

const LONG = 120_000;
let promtool: string;
let rules: Rule[];
let dir: string;

const testsSchema = z.strictObject({
  rule_files: z.array(z.string()),
  evaluation_interval: z.string(),
  tests: z.array(
    z.strictObject({
      interval: z.string(),
      input_series: z.array(z.strictObject({ series: z.string(), values: z.string() })),
      alert_rule_test: z.array(
        z.strictObject({
          eval_time: z.string(),
          alertname: z.string(),
          exp_alerts: z.array(
            z.strictObject({
              exp_labels: z.record(z.string(), z.string()),
              exp_annotations: z.record(z.string(), z.string()),
            }),
          ),
        }),
      ),
    }),
  ),
});

beforeAll(async () => {
  promtool = path.join(await toolBin("promtool.sh"), "promtool");
  rules = await alertRules();
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-alerts-"));
}, 3_600_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** alerts.yaml with one alert's expression replaced, next to a copy of the tests. */
async function mutated(alert: string, expr: string): Promise<string> {
  const doc = parseDocument(await readFile(ALERTS, "utf8"));
  const { groups } = z
    .looseObject({
      groups: z.array(z.looseObject({ rules: z.array(z.looseObject({ alert: z.string() })) })),
    })
    .parse(doc.toJS());
  const [g, r] = groups
    .flatMap((group, gi) => group.rules.map((rule, ri) => [gi, ri, rule.alert] as const))
    .filter(([, , name]) => name === alert)
    .map(([gi, ri]) => [gi, ri] as const)[0] ?? [-1, -1];
  expect(g, alert).toBeGreaterThanOrEqual(0);
  doc.setIn(["groups", g, "rules", r, "expr"], expr);
  const sub = await mkdtemp(path.join(dir, "mutant-"));
  await writeFile(path.join(sub, "alerts.yaml"), doc.toString());
  await copyFile(ALERT_TESTS, path.join(sub, "alerts_test.yaml"));
  return path.join(sub, "alerts_test.yaml");
}

describe("config/prometheus/alerts.yaml", () => {
  it(
    "passes promtool check rules, lint included",
    async () => {
      const out = await runToolOk(promtool, [
        "check",
        "rules",
        "--lint=all",
        "--lint-fatal",
        ALERTS,
      ]);
      expect(out).toContain(`SUCCESS: ${String(rules.length)} rules found`);
    },
    LONG,
  );

  it(
    "passes its promtool unit tests",
    async () => {
      const out = await runToolOk(promtool, ["test", "rules", ALERT_TESTS]);
      expect(out).toContain("SUCCESS");
    },
    LONG,
  );

  it("has, for every alert, a case where it fires and one where it must stay silent", async () => {
    const tests = testsSchema.parse(parseYaml(await readFile(ALERT_TESTS, "utf8")));
    expect(tests.rule_files).toEqual(["alerts.yaml"]);
    const cases = tests.tests.flatMap((t) => t.alert_rule_test);
    for (const { alert } of rules) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${alert} fires somewhere`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${alert} silent somewhere`,
      ).toBe(true);
    }
    expect(new Set(cases.map((c) => c.alertname))).toEqual(new Set(rules.map((r) => r.alert)));
  });

  it(
    "fails its tests when any alert always fires or never fires",
    async () => {
      for (const { alert } of rules) {
        for (const expr of ["vector(1)", "vector(1) < 0"]) {
          const r = await runTool(promtool, ["test", "rules", await mutated(alert, expr)]);
          expect(r.code, `${alert} replaced by ${expr}: ${r.stdout}${r.stderr}`).not.toBe(0);
          expect(r.stdout + r.stderr).toContain(alert);
        }
      }
    },
    LONG * 5,
  );
});

// The propagation benchmark's report (bench/propagation.ts): each namespace change is printed
// with what it asked of the agents, so a slow change can be told from a large one.

import { describe, expect, it } from "vitest";
import { report, type ChangeFigures, type RunFigures } from "../../../bench/propagation.ts";

function change(subject: string, layerBytes: number, watchMs: number, filesMs: number[]) {
  return {
    kind: "namespace",
    subject,
    layerBytes,
    watchMs,
    filesMs,
    statusMs: filesMs.map((f) => f + 500),
    agentCpuSeconds: filesMs.map(() => 0.05),
    agentWriteBytes: filesMs.map(() => 200_000),
    controller: { cpuSeconds: 0.1, counters: {} },
  } satisfies ChangeFigures;
}

describe("bench-propagation report", () => {
  const run: RunFigures = {
    nodes: 2,
    changes: [
      change("shipping-ci", 1_500, 400, [500, 600]),
      change("shipping-us", 80_000, 400, [700, 1_000]),
    ],
    controllerPeakRssKiB: 100_000,
    agentIdleRssKiB: [78_000, 77_000],
    agentPeakRssKiB: [100_000, 99_000],
    filesMatchCompiler: true,
  };
  const text = report([run], "after");

  it("gives each change its namespace, layer size, ratio and the agents' CPU", () => {
    const lines = text.split("\n");
    const us = lines.find((l) => l.includes("shipping-us"));
    expect(us).toBeDefined();
    expect(us).toMatch(/layer +78\.1 KiB/);
    expect(us).toContain("ratio 2.50");
    expect(us).toContain("agents' CPU 0.10 s");
    expect(lines.find((l) => l.includes("shipping-ci"))).toContain("ratio 1.50");
  });

  it("still judges the run's p99 against the target", () => {
    expect(text).toContain("files p99 / raw watch p99 = 2.50  (target <= 2: MISSED)");
    expect(text).toContain("change by change: 1.50, 2.50");
  });

  it("judges a cluster change by the agents' CPU, not by the raw watch", () => {
    const cluster = (cpu: number): ChangeFigures => ({
      ...change("cip-7", 300_000, 300, [7_000, 8_000]),
      kind: "cluster",
      agentCpuSeconds: [cpu, 1.0],
    });
    const ok = report([{ ...run, changes: [cluster(1.3)] }], "after");
    expect(ok).toContain("files p99 / raw watch p99 = 26.67  (no target:");
    expect(ok).toMatch(/agent CPU per node per change .* target <= 2 s: ok/);
    const over = report([{ ...run, changes: [cluster(2.4)] }], "after");
    expect(over).toMatch(/agent CPU per node per change .* target <= 2 s: MISSED/);
  });
});

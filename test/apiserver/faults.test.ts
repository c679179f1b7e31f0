// The bounded version of hack/bench-faults' kill test, in the default run: the real agent process,
// on a real kube-apiserver holding the large fixture's cluster layer and ten namespaces' layers,
// is killed with SIGKILL at random points while it moves its node from one cluster layer to the
// next, and (every third round) while it replaces the files of changed namespace layers in
// place. After every kill, with the agent dead, the node's files must hold the invariants CRI-O
// relies on (cluster.json exists, every file parses strictly, no namespace file allows what the
// cluster.json on disk refuses: bench/invariants.ts); after every change the restarted agent must
// converge to the offline compiler's files. The benchmark does the same 1,000 times on 4 nodes.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runKills } from "../../bench/faults.ts";
import { World } from "../../bench/world.ts";

const SEED = 20240601;
const KILLS = 12;

describe("kill -9 of the agent during cluster and namespace changes", () => {
  let dir = "";

  afterAll(async () => {
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  it(`${String(KILLS)} kills: files valid and tighten-only after each, converged after each change`, async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-faults-"));
    const lines: string[] = [];
    const figures = await runKills({
      dir,
      kills: KILLS,
      nodes: 1,
      seed: SEED,
      world: new World(SEED, { namespaces: 10 }),
      log: (line) => lines.push(line),
    });
    expect(figures.violations, lines.join("\n")).toEqual([]);
    expect(figures.convergedEveryTime).toBe(true);
    expect(figures.kills).toBeGreaterThanOrEqual(KILLS);
    expect(figures.clusterChanges).toBeGreaterThanOrEqual(2);
    // The third round changes namespace layers alone: their files are replaced in place.
    expect(figures.namespaceChanges).toBeGreaterThanOrEqual(1);
    // Every kill left files that were checked (cluster.json and ten namespace files at least).
    expect(figures.distinctFilesChecked).toBeGreaterThan(10);
  });
});

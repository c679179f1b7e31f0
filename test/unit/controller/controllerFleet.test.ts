// The controller's rollout rounds (controller.ts, the "rollout" key) on a real Controller over
// in-memory informers, a recording client and a fake clock (fakes.ts): node reports only schedule
// a round, at most one a second; a round queues the status of the objects of each layer whose
// rollout changed, and no other; a layer still rolling out gets its progress written with backoff
// (5 s, 10 s, ...), a new revision and the end of a rollout at once; a report or a Node heartbeat
// that changes nothing the counts read queues nothing; and, level-triggered, no status stays
// stale once the reports stop changing.

import { afterEach, describe, expect, it, vi } from "vitest";
import { refKey } from "../../../src/api/types.ts";
import {
  LAYERS_KEY,
  ROLLOUT_KEY,
  ROLLOUT_PROGRESS_STEPS,
  ROLLOUT_QUIET_MS,
} from "../../../src/controller/controller.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";
import {
  CLUSTER_LAYER_NAME,
  NAMESPACE_LAYER_PREFIX,
  REVISION_ANNOTATION,
} from "../../../src/layerConfigMap.ts";
import { cip, ip, withScopes } from "../../support/builders.ts";
import { FakeError, fakeController, type FakeController, withMeta } from "./fakes.ts";

const NODES = ["node-1", "node-2", "node-3", "node-4"] as const;
type NodeName = (typeof NODES)[number];
const CIP_KEYS = [
  refKey({ kind: "ClusterImagePolicy", name: "a" }),
  refKey({ kind: "ClusterImagePolicy", name: "b" }),
].map((k) => `status/${k}`);
const TEAM_KEY = `status/${refKey({ kind: "ImagePolicy", name: "c", namespace: "team" })}`;
const STATUS_KEYS = [...CIP_KEYS, TEAM_KEY];
const OLD = "0000000000000000";

let rv = 100;
const nextRv = (): string => String(rv++);

function node(name: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, resourceVersion: nextRv() },
    status: { nodeInfo: { containerRuntimeVersion: "cri-o://1.34.0" } },
  };
}

interface Revisions {
  readonly cluster: string;
  readonly team: string;
}

/** What one agent has applied: the published revisions or earlier ones, per layer. */
interface Applied {
  readonly cluster: boolean;
  readonly team: boolean;
  readonly enforcing?: boolean;
}

const CURRENT: Applied = { cluster: true, team: true };
const LAGGING: Applied = { cluster: false, team: false };

/** An agent's report of what it has applied. */
function report(name: string, revisions: Revisions, applied: Applied): KubeObject {
  const cluster = applied.cluster ? revisions.cluster : OLD;
  const team = applied.team ? revisions.team : OLD;
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicyNodeStatus",
    metadata: { name, resourceVersion: nextRv() },
    status: {
      runtime: "cri-o",
      enforcing: applied.enforcing ?? true,
      appliedRevisions: { "cluster.json": cluster, "team.json": `${cluster}.${team}` },
    },
  };
}

function revisionOf(f: FakeController, configMap: string): string {
  const cm = f.client.applied.find((o) => o.metadata.name === configMap);
  const revision = cm?.metadata.annotations?.[REVISION_ANNOTATION];
  if (revision === undefined) throw new FakeError(`${configMap} was not published`);
  return revision;
}

/** Each status key's rollout display in the writes since `from`, in order of writing. */
function displays(f: FakeController, from = 0): [string, string | undefined][] {
  return f.client.statusWrites
    .slice(from)
    .map((w) => [`status/${w.key}`, w.status.rollout?.display]);
}

/** The last status written for each key, by key. */
function lastWritten(f: FakeController): Map<string, FakeController["client"]["statusWrites"][0]> {
  return new Map(f.client.statusWrites.map((w) => [`status/${w.key}`, w]));
}

const allAt = (display: string, keys = STATUS_KEYS): [string, string][] =>
  keys.map((k) => [k, display]);

interface Scene {
  readonly f: FakeController;
  readonly revisions: Revisions;
  /** When the round that counted the first reports ran. */
  readonly roundAt: number;
  /** `name`'s agent reports `applied` (a MODIFIED event). */
  reports(name: NodeName, applied: Applied): void;
}

const running: FakeController[] = [];
afterEach(async () => {
  for (const f of running.splice(0)) await f.stop();
});

/** Two ClusterImagePolicies and one ImagePolicy, published; four CRI-O nodes whose reports
 * (`first`) arrive 5 s after the first round. */
async function scene(first: Record<NodeName, Applied>): Promise<Scene> {
  const f = await fakeController({
    items: {
      clusterImagePolicies: [
        withMeta(cip("a", withScopes("a.example.com"))),
        withMeta(cip("b", withScopes("b.example.com"))),
      ],
      imagePolicies: [withMeta(ip("team", "c", withScopes("c.example.com")))],
      nodes: NODES.map(node),
    },
  });
  running.push(f);
  // The first round: the layers (queued by the policies), the rollout (queued by the nodes),
  // then every status over the nodes without reports.
  expect(await f.drain()).toEqual([LAYERS_KEY, ROLLOUT_KEY, ...STATUS_KEYS]);
  expect(displays(f)).toEqual(allAt("0/4"));
  const revisions = {
    cluster: revisionOf(f, CLUSTER_LAYER_NAME),
    team: revisionOf(f, `${NAMESPACE_LAYER_PREFIX}team`),
  };

  await f.clock.advance(5_000);
  for (const name of NODES) {
    f.sources.nodeStatuses.emit({ type: "ADDED", object: report(name, revisions, first[name]) });
  }
  const roundAt = f.clock.now();
  return {
    f,
    revisions,
    roundAt,
    reports: (name, applied) => {
      f.sources.nodeStatuses.emit({ type: "MODIFIED", object: report(name, revisions, applied) });
    },
  };
}

/** node-3 and node-4 lag: 2/4 on both layers, counted and written. */
async function rollingOut(): Promise<Scene> {
  const s = await scene({
    "node-1": CURRENT,
    "node-2": CURRENT,
    "node-3": LAGGING,
    "node-4": LAGGING,
  });
  const before = s.f.client.statusWrites.length;
  expect(await s.f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
  expect(displays(s.f, before)).toEqual(allAt("2/4"));
  expect(s.f.queue.length).toBe(0);
  expect(s.f.clock.pendingTimers).toBe(0);
  return s;
}

describe("Controller rollout rounds", () => {
  it("counts a wave of node reports in one round and writes each status once", async () => {
    const s = await scene({
      "node-1": CURRENT,
      "node-2": CURRENT,
      "node-3": CURRENT,
      "node-4": CURRENT,
    });
    const { f } = s;
    const reportsGet = vi.spyOn(f.informers.nodeStatuses, "get");
    const before = f.client.statusWrites.length;
    // Four reports, one round: one look-up of each report for three status keys.
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
    expect(displays(f, before)).toEqual(allAt("4/4"));
    expect(reportsGet).toHaveBeenCalledTimes(NODES.length);
    for (const w of f.client.statusWrites.slice(before)) {
      expect(w.status.conditions.find((c) => c.type === "Applied")?.status).toBe("True");
    }
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("counts a report within 1 s of the last round 1 s after it, not earlier", async () => {
    const s = await rollingOut();
    const { f } = s;
    await f.clock.advance(300);
    s.reports("node-3", CURRENT);
    s.reports("node-4", CURRENT);
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(1);
    await f.clock.advance(699);
    expect(f.clock.now()).toBe(s.roundAt + 999);
    expect(f.queue.length).toBe(0);
    await f.clock.advance(1);
    expect(f.queue.length).toBe(1);

    const later = f.client.statusWrites.length;
    // The end of the rollout is written at once (no backoff).
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
    expect(displays(f, later)).toEqual(allAt("4/4"));
    for (const w of f.client.statusWrites.slice(later)) {
      expect(w.at).toBe(s.roundAt + 1_000);
      expect(w.status.conditions.find((c) => c.type === "Applied")?.status).toBe("True");
    }
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("writes the progress of a layer still rolling out with backoff, its end at once", async () => {
    const s = await rollingOut();
    const { f } = s;
    // The progress was written at roundAt; the next may be written 10 s later.
    await f.clock.advance(2_000);
    s.reports("node-3", CURRENT);
    const before = f.client.statusWrites.length;
    expect(await f.drain()).toEqual([ROLLOUT_KEY]);
    expect(f.client.statusWrites.length).toBe(before);
    expect(f.clock.pendingTimers).toBe(1);
    await f.clock.advance(7_999);
    expect(f.queue.length).toBe(0);
    await f.clock.advance(1);
    expect(f.clock.now()).toBe(s.roundAt + 10_000);
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
    expect(displays(f, before)).toEqual(allAt("3/4"));
    expect(f.clock.pendingTimers).toBe(0);

    // The last node: the rollout is over, written at once although the backoff (20 s) is not.
    await f.clock.advance(1_000);
    s.reports("node-4", CURRENT);
    const end = f.client.statusWrites.length;
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
    expect(displays(f, end)).toEqual(allAt("4/4"));
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("queues only the objects of the layer whose rollout changed", async () => {
    const s = await scene({
      "node-1": CURRENT,
      "node-2": CURRENT,
      "node-3": CURRENT,
      "node-4": { cluster: true, team: false },
    });
    const { f } = s;
    const before = f.client.statusWrites.length;
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
    expect(displays(f, before)).toEqual([...allAt("4/4", CIP_KEYS), [TEAM_KEY, "3/4"]]);

    await f.clock.advance(2_000);
    s.reports("node-4", CURRENT);
    const later = f.client.statusWrites.length;
    expect(await f.drain()).toEqual([ROLLOUT_KEY, TEAM_KEY]);
    expect(displays(f, later)).toEqual([[TEAM_KEY, "4/4"]]);
  });

  it("queues nothing for a report or a Node heartbeat that changes nothing it counts", async () => {
    const s = await rollingOut();
    const { f } = s;
    await f.clock.advance(2_000);
    s.reports("node-1", CURRENT); // the same revisions, a new resourceVersion
    f.sources.nodes.emit({ type: "MODIFIED", object: node("node-2") });
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("counts nodes that leave or join, and reports that go or come before their Node", async () => {
    // A round reads again only the nodes with an event since the last one (the snapshot is
    // kept between rounds): each kind of event must still reach the counts.
    const s = await rollingOut();
    const { f, revisions } = s;
    /** The display each status shows once every wait after `emit` ran out. */
    const after = async (emit: () => void): Promise<string[]> => {
      await f.clock.advance(2_000);
      emit();
      await f.drain();
      await f.clock.advance(120_000);
      await f.drain();
      const last = lastWritten(f);
      return STATUS_KEYS.map((k) => last.get(k)?.status.rollout?.display ?? "none");
    };
    const all = (display: string): string[] => STATUS_KEYS.map(() => display);
    const reportEvent = (type: "ADDED" | "DELETED", name: string): void => {
      f.sources.nodeStatuses.emit({ type, object: report(name, revisions, CURRENT) });
    };
    expect(
      await after(() => {
        f.sources.nodes.emit({ type: "DELETED", object: node("node-4") });
      }),
    ).toEqual(all("2/3"));
    expect(
      await after(() => {
        f.sources.nodes.emit({ type: "ADDED", object: node("node-5") });
        reportEvent("ADDED", "node-5");
      }),
    ).toEqual(all("3/4"));
    expect(
      await after(() => {
        reportEvent("DELETED", "node-1");
      }),
    ).toEqual(all("2/4"));
    // A report whose Node is not there yet counts once the Node comes.
    expect(
      await after(() => {
        reportEvent("ADDED", "node-6");
      }),
    ).toEqual(all("2/4"));
    expect(
      await after(() => {
        f.sources.nodes.emit({ type: "ADDED", object: node("node-6") });
      }),
    ).toEqual(all("3/5"));
    expect(f.queue.length).toBe(0);
  });

  it("ignores its own status write and puts right anyone else's", async () => {
    const s = await rollingOut();
    const { f } = s;
    const mine = lastWritten(f).get(CIP_KEYS[0] ?? "");
    const a = f.informers.clusterImagePolicies.get("a");
    if (mine === undefined || a === undefined) throw new FakeError("no status of a");
    f.sources.clusterImagePolicies.emit({
      type: "MODIFIED",
      object: {
        ...a,
        metadata: { ...a.metadata, resourceVersion: mine.resourceVersion },
        status: mine.status,
      },
    });
    expect(f.queue.length).toBe(0);

    f.sources.clusterImagePolicies.emit({
      type: "MODIFIED",
      object: { ...a, metadata: { ...a.metadata, resourceVersion: nextRv() }, status: {} },
    });
    const before = f.client.statusWrites.length;
    expect(await f.drain()).toEqual([CIP_KEYS[0]]);
    expect(displays(f, before)).toEqual([[CIP_KEYS[0], "2/4"]]);
  });

  it("does not wait on a wall clock that stepped back", async () => {
    const s = await rollingOut();
    const { f } = s;
    f.clock.step(-60_000);
    s.reports("node-3", CURRENT);
    s.reports("node-4", CURRENT);
    const before = f.client.statusWrites.length;
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...STATUS_KEYS]);
    expect(displays(f, before)).toEqual(allAt("4/4"));
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("leaves no status stale once the reports stop changing", async () => {
    const s = await rollingOut();
    const { f } = s;
    // A seeded walk: each step one node reports something, 0 to 3 s after the last.
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    const state = new Map<NodeName, Applied>([
      ["node-1", CURRENT],
      ["node-2", CURRENT],
      ["node-3", LAGGING],
      ["node-4", LAGGING],
    ]);
    const before = f.client.statusWrites.length;
    for (let step = 0; step < 200; step++) {
      const name = NODES[next(NODES.length)] ?? "node-1";
      const applied = { cluster: next(2) === 0, team: next(2) === 0, enforcing: next(4) !== 0 };
      state.set(name, applied);
      s.reports(name, applied);
      await f.clock.advance(next(3_000));
      await f.drain();
    }
    const walkWrites = f.client.statusWrites.length - before;
    // Quiet: every wait runs out.
    await f.clock.advance(120_000);
    await f.drain();
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);

    const count = (layer: "cluster" | "team"): number =>
      [...state.values()].filter(
        (a) => (layer === "cluster" ? a.cluster : a.team) && (a.enforcing ?? true),
      ).length;
    const last = lastWritten(f);
    for (const key of CIP_KEYS)
      expect(last.get(key)?.status.rollout?.display).toBe(`${count("cluster")}/4`);
    expect(last.get(TEAM_KEY)?.status.rollout?.display).toBe(`${count("team")}/4`);
    // Bounded: far fewer writes than one per object per report.
    expect(walkWrites).toBeLessThan(200 * STATUS_KEYS.length);
  });
});

describe("Controller rollout progress over many nodes", () => {
  const NAMES = Array.from({ length: 40 }, (_, i) => `n-${String(i).padStart(2, "0")}`);
  const clusterReport = (name: string, cluster: string): KubeObject => ({
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicyNodeStatus",
    metadata: { name, resourceVersion: nextRv() },
    status: { runtime: "cri-o", enforcing: true, appliedRevisions: { "cluster.json": cluster } },
  });

  it("writes a long rollout's progress once per quarter, a stalled one's counts once still", async () => {
    const f = await fakeController({
      items: {
        clusterImagePolicies: [
          withMeta(cip("a", withScopes("a.example.com"))),
          withMeta(cip("b", withScopes("b.example.com"))),
        ],
        nodes: NAMES.map(node),
      },
    });
    running.push(f);
    await f.drain();
    expect(displays(f)).toEqual(allAt("0/40", CIP_KEYS));
    const cluster = revisionOf(f, CLUSTER_LAYER_NAME);
    const before = f.client.statusWrites.length;

    // 33 nodes apply the layer, one every 4 s: 132 s, over which the backoff alone (5 s doubling
    // to 60 s) would allow six writes per object. Written: entering 1/4, 2/4 and 3/4 only.
    for (const name of NAMES.slice(0, 33)) {
      f.sources.nodeStatuses.emit({ type: "ADDED", object: clusterReport(name, cluster) });
      await f.clock.advance(4_000);
      await f.drain();
    }
    expect(displays(f, before)).toEqual([
      ...allAt("10/40", CIP_KEYS),
      ...allAt("20/40", CIP_KEYS),
      ...allAt("30/40", CIP_KEYS),
    ]);

    // The reports stop within the last step: the counts are written once they have been still
    // for ROLLOUT_QUIET_MS since the round that saw them last (the last drain), then nothing more.
    const stalled = f.client.statusWrites.length;
    await f.clock.advance(ROLLOUT_QUIET_MS - 1);
    expect(await f.drain()).toEqual([]);
    await f.clock.advance(1);
    expect(await f.drain()).toEqual([ROLLOUT_KEY, ...CIP_KEYS]);
    expect(displays(f, stalled)).toEqual(allAt("33/40", CIP_KEYS));
    await f.clock.advance(120_000);
    expect(await f.drain()).toEqual([]);
    expect(f.clock.pendingTimers).toBe(0);

    // The rest at once: the end is written at once.
    const end = f.client.statusWrites.length;
    for (const name of NAMES.slice(33)) {
      f.sources.nodeStatuses.emit({ type: "ADDED", object: clusterReport(name, cluster) });
    }
    await f.clock.advance(1_000);
    await f.drain();
    expect(displays(f, end)).toEqual(allAt("40/40", CIP_KEYS));
    // Per object: ROLLOUT_PROGRESS_STEPS + 1 writes after the first, however long it took.
    expect(f.client.statusWrites.length - before).toBe(
      (ROLLOUT_PROGRESS_STEPS + 1) * CIP_KEYS.length,
    );
  });
});

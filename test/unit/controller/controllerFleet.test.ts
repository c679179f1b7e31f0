// The controller's node snapshot (controller.ts #currentFleet) on a real Controller over in-memory
// informers, a recording client and a fake clock (fakes.ts): status keys reconciled one after
// another share one snapshot while Nodes and node reports are unchanged; a report that changes
// less than 1 s after the snapshot was built is served the old snapshot, and every status key is
// queued again for when the snapshot is 1 s old, then counts it; a report that changes later is
// counted at once.

import { afterEach, describe, expect, it, vi } from "vitest";
import { LAYERS_KEY } from "../../../src/controller/controller.ts";
import { outcomeKey } from "../../../src/controller/plan.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";
import {
  CLUSTER_LAYER_NAME,
  NAMESPACE_LAYER_PREFIX,
  REVISION_ANNOTATION,
} from "../../../src/layerConfigMap.ts";
import { cip, ip, withScopes } from "../../support/builders.ts";
import { FakeError, fakeController, type FakeController } from "./fakes.ts";

const NODES = ["node-1", "node-2", "node-3"] as const;
type NodeName = (typeof NODES)[number];
const STATUS_KEYS = [
  outcomeKey({ kind: "ClusterImagePolicy", name: "a" }),
  outcomeKey({ kind: "ClusterImagePolicy", name: "b" }),
  outcomeKey({ kind: "ImagePolicy", name: "c", namespace: "team" }),
].map((k) => `status/${k}`);

let rv = 100;
const nextRv = (): string => String(rv++);

function withMeta(o: KubeObject): KubeObject {
  const rvNow = nextRv();
  return { ...o, metadata: { ...o.metadata, uid: `uid-${rvNow}`, resourceVersion: rvNow } };
}

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

/** An agent's report: `current` holds the published revisions, else earlier ones. */
function report(name: NodeName, revisions: Revisions, current: boolean): KubeObject {
  const cluster = current ? revisions.cluster : "0000000000000000";
  const team = current ? revisions.team : "0000000000000000";
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicyNodeStatus",
    metadata: { name, resourceVersion: nextRv() },
    status: {
      runtime: "cri-o",
      enforcing: true,
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

const allAt = (display: string): [string, string][] => STATUS_KEYS.map((k) => [k, display]);

interface Scene {
  readonly f: FakeController;
  readonly revisions: Revisions;
  /** When the snapshot that counts node-3 as lagging was built. */
  readonly builtAt: number;
  /** node-3's agent reports the published revisions (a MODIFIED event). */
  catchUpNode3(): void;
}

const running: FakeController[] = [];
afterEach(async () => {
  for (const f of running.splice(0)) await f.stop();
});

/** Two ClusterImagePolicies and one ImagePolicy, published; three CRI-O nodes whose reports
 * arrived long after the first snapshot; node-3 reports earlier revisions: rollout 2/3. */
async function scene(): Promise<Scene> {
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
  // The first round: the layers, then every status over the nodes without reports.
  expect(await f.drain()).toEqual([LAYERS_KEY, ...STATUS_KEYS]);
  expect(displays(f)).toEqual(allAt("0/3"));
  const revisions = {
    cluster: revisionOf(f, CLUSTER_LAYER_NAME),
    team: revisionOf(f, `${NAMESPACE_LAYER_PREFIX}team`),
  };

  await f.clock.advance(5_000);
  for (const name of NODES) {
    f.sources.nodeStatuses.emit({
      type: "ADDED",
      object: report(name, revisions, name !== "node-3"),
    });
  }
  const before = f.client.statusWrites.length;
  const builtAt = f.clock.now();
  expect(await f.drain()).toEqual(STATUS_KEYS);
  expect(displays(f, before)).toEqual(allAt("2/3"));
  expect(f.queue.length).toBe(0);
  expect(f.clock.pendingTimers).toBe(0);
  return {
    f,
    revisions,
    builtAt,
    catchUpNode3: () => {
      f.sources.nodeStatuses.emit({
        type: "MODIFIED",
        object: report("node-3", revisions, true),
      });
    },
  };
}

describe("Controller node snapshot (#currentFleet)", () => {
  it("builds the snapshot once for status keys reconciled one after another", async () => {
    const s = await scene();
    const { f } = s;
    await f.clock.advance(2_000);
    s.catchUpNode3();
    const nodesList = vi.spyOn(f.informers.nodes, "list");
    const reportsGet = vi.spyOn(f.informers.nodeStatuses, "get");
    const reportsList = vi.spyOn(f.informers.nodeStatuses, "list");
    const before = f.client.statusWrites.length;

    expect(await f.drain()).toEqual(STATUS_KEYS);
    expect(displays(f, before)).toEqual(allAt("3/3"));
    // One pass over the nodes and one look-up of each report, for three status keys.
    expect(nodesList).toHaveBeenCalledTimes(1);
    expect(reportsGet).toHaveBeenCalledTimes(NODES.length);
    expect(reportsList).not.toHaveBeenCalled();

    // Nothing changed in the informers: later rounds, however late, reuse the snapshot.
    await f.clock.advance(10_000);
    const again = f.client.statusWrites.length;
    for (const key of STATUS_KEYS) await f.controller.reconcile(key);
    for (const key of STATUS_KEYS) await f.controller.reconcile(key);
    expect(displays(f, again)).toEqual([...allAt("3/3"), ...allAt("3/3")]);
    expect(nodesList).toHaveBeenCalledTimes(1);
    expect(reportsGet).toHaveBeenCalledTimes(NODES.length);
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("serves a snapshot younger than 1 s and computes every status again once it is 1 s old", async () => {
    const s = await scene();
    const { f } = s;
    await f.clock.advance(300);
    s.catchUpNode3();
    const nodesList = vi.spyOn(f.informers.nodes, "list");
    const before = f.client.statusWrites.length;

    // The report's event queues every status key at once; they still see node-3 lagging.
    expect(f.queue.length).toBe(STATUS_KEYS.length);
    expect(await f.drain()).toEqual(STATUS_KEYS);
    expect(displays(f, before)).toEqual(allAt("2/3"));
    for (const w of f.client.statusWrites.slice(before)) {
      expect(w.status.conditions.find((c) => c.type === "Applied")?.reason).toBe("RollingOut");
    }
    expect(nodesList).not.toHaveBeenCalled();

    // Every status key waits for the snapshot to be 1 s old, not earlier.
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(STATUS_KEYS.length);
    await f.clock.advance(699);
    expect(f.clock.now()).toBe(s.builtAt + 999);
    expect(f.queue.length).toBe(0);
    await f.clock.advance(1);
    expect(f.queue.length).toBe(STATUS_KEYS.length);
    expect(f.clock.pendingTimers).toBe(0);

    const later = f.client.statusWrites.length;
    expect(await f.drain()).toEqual(STATUS_KEYS);
    expect(displays(f, later)).toEqual(allAt("3/3"));
    for (const w of f.client.statusWrites.slice(later)) {
      expect(w.at).toBe(s.builtAt + 1_000);
      expect(w.status.conditions.find((c) => c.type === "Applied")?.status).toBe("True");
    }
    expect(nodesList).toHaveBeenCalledTimes(1);
    // Nothing more is scheduled once the new snapshot counts the last report.
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("does not wait on a wall clock that stepped back: the next key rebuilds the snapshot", async () => {
    const s = await scene();
    const { f } = s;
    f.clock.step(-60_000);
    s.catchUpNode3();
    const nodesList = vi.spyOn(f.informers.nodes, "list");
    const before = f.client.statusWrites.length;

    expect(await f.drain()).toEqual(STATUS_KEYS);
    expect(displays(f, before)).toEqual(allAt("3/3"));
    expect(nodesList).toHaveBeenCalledTimes(1);
    expect(f.clock.pendingTimers).toBe(0);
  });

  it("counts a report that changes more than 1 s after the snapshot at once", async () => {
    const s = await scene();
    const { f } = s;
    await f.clock.advance(1_001);
    s.catchUpNode3();
    const nodesList = vi.spyOn(f.informers.nodes, "list");
    const before = f.client.statusWrites.length;

    expect(await f.drain()).toEqual(STATUS_KEYS);
    expect(displays(f, before)).toEqual(allAt("3/3"));
    expect(nodesList).toHaveBeenCalledTimes(1);
    expect(f.queue.length).toBe(0);
    expect(f.clock.pendingTimers).toBe(0);
  });
});

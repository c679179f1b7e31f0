// The agent's work loop (src/agent/agent.ts), a real Agent on in-memory informers (FakeSource),
// files (MemoryFs) and status; fake timers:
// - the status report comes a while after the files (--status-delay): one report for a burst of
//   changes, a refused report retried alone, memory given back after it;
// - memory is given back right after a reconcile (the releaser then acts on a large growth only,
//   a cluster change) and again once the work queue stayed empty for RELEASE_IDLE_MS, so a burst
//   of small changes costs one full collection.

import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Agent, RELEASE_IDLE_MS, type StatusApi } from "../../../src/agent/agent.ts";
import { AgentMetrics } from "../../../src/agent/metrics.ts";
import { serializeLayer, type Layer } from "../../../src/compiler/layer.ts";
import { Informer } from "../../../src/kube/informer.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";
import { WorkQueue } from "../../../src/kube/workQueue.ts";
import {
  LAYER_KEY,
  layerConfigMapName,
  layerLabels,
  layerRevision,
  REVISION_ANNOTATION,
} from "../../../src/layerConfigMap.ts";
import { FakeSource } from "../controller/fakes.ts";
import { ACCEPT, keyReq, layer, MemoryFs, PATHS } from "./support.ts";

let version = 0;

function layerMap(l: Layer): KubeObject {
  const text = serializeLayer(l);
  version += 1;
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: layerConfigMapName(l.namespace),
      namespace: "imagepolicy-system",
      resourceVersion: String(version),
      labels: layerLabels(l.namespace),
      annotations: { [REVISION_ANNOTATION]: layerRevision(text) },
    },
    data: { [LAYER_KEY]: text },
  };
}

const NODE: KubeObject = {
  apiVersion: "v1",
  kind: "Node",
  metadata: { name: "node-1", uid: "n-1", resourceVersion: "1" },
  status: { nodeInfo: { containerRuntimeVersion: "cri-o://1.34.0" } },
};

/** A namespace layer whose one policy requires `key`. */
const team = (key: string): Layer =>
  layer("team", [[["team.example.com"], keyReq(Buffer.from(`key ${key}`).toString("base64"))]]);

interface Running {
  agent: Agent;
  fs: MemoryFs;
  layers: FakeSource;
  releases: () => number;
  /** Calls right after a reconcile (idle false: the releaser acts on a large growth only). */
  atOnce: () => number;
}

async function running(
  statusDelayMs = 0,
  status: StatusApi = {
    read: () => Promise.resolve(undefined),
    ensure: () => Promise.resolve(),
    patchStatus: () => Promise.resolve(),
  },
  random = 0.5,
): Promise<Running> {
  const fs = new MemoryFs();
  const layers = new FakeSource([
    layerMap(layer(undefined, [[["example.com"], ACCEPT]])),
    layerMap(team("k1")),
  ]);
  let released = 0;
  let atOnce = 0;
  const logger = pino({ level: "silent" });
  const agent = new Agent(
    {
      nodeName: "node-1",
      paths: PATHS,
      hostPolicyDir: "/etc/crio/policies",
      expectedPolicyPath: PATHS.clusterJson,
      expectedPolicyDir: "/etc/crio/policies",
      probeIntervalMs: 3_600_000,
      statusDelayMs,
    },
    {
      fs,
      logger,
      metrics: new AgentMetrics(),
      layers: new Informer({ name: "layers", source: layers, logger }),
      node: new Informer({ name: "node", source: new FakeSource([NODE]), logger }),
      status,
      probe: () => Promise.resolve({ ok: false, reason: "no CRI-O here" }),
      readNodeInputs: () => Promise.resolve({ registries: [], otherKeys: new Map(), problems: [] }),
      now: () => new Date(0),
      queue: new WorkQueue({ baseDelayMs: 1000, maxDelayMs: 60_000 }),
      releaseMemory: (idle) => {
        if (idle) released += 1;
        else atOnce += 1;
      },
      random: () => random,
    },
  );
  await agent.start();
  return { agent, fs, layers, releases: () => released, atOnce: () => atOnce };
}

/** Lets the agent's promises run (the in-memory fakes resolve at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await vi.advanceTimersByTimeAsync(0);
}

describe("Agent: memory given back after a burst", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("asks at once after each reconcile, and again once idle for RELEASE_IDLE_MS, once per burst", async () => {
    const { agent, fs, layers, releases, atOnce } = await running();
    await settle();
    expect(agent.ready).toBe(true);
    const teamFile = `${PATHS.policyDir}/team.json`;
    let text = fs.files.get(teamFile);
    expect(text).toBeDefined();
    // Files written: the releaser was asked at once (a large growth only), not yet when idle.
    const first = atOnce();
    expect(first).toBeGreaterThanOrEqual(1);
    expect(releases()).toBe(0);
    await vi.advanceTimersByTimeAsync(RELEASE_IDLE_MS);
    expect(releases()).toBe(1);

    // Three changes, each before the last one's wait is over: one release, after the last.
    for (const key of ["k2", "k3", "k4"]) {
      layers.emit({ type: "MODIFIED", object: layerMap(team(key)) });
      await settle();
      expect(fs.files.get(teamFile)).not.toBe(text);
      text = fs.files.get(teamFile);
      expect(atOnce()).toBeGreaterThan(first);
      await vi.advanceTimersByTimeAsync(RELEASE_IDLE_MS - 1);
      expect(releases()).toBe(1);
    }
    await vi.advanceTimersByTimeAsync(1);
    expect(releases()).toBe(2);

    // Stopped: no release left behind.
    layers.emit({ type: "MODIFIED", object: layerMap(team("k5")) });
    await settle();
    await agent.stop();
    await vi.advanceTimersByTimeAsync(10 * RELEASE_IDLE_MS);
    expect(releases()).toBe(2);
  });
});

/** A StatusApi recording each patch with the (fake) time it was made; `refuse` patches fail. */
function recorder(): {
  api: StatusApi;
  patches: { at: number; body: string }[];
  refuse: { next: number };
} {
  const patches: { at: number; body: string }[] = [];
  const refuse = { next: 0 };
  return {
    patches,
    refuse,
    api: {
      read: () => Promise.resolve(undefined),
      ensure: () => Promise.resolve(),
      patchStatus: (_name, patch) => {
        if (refuse.next > 0) {
          refuse.next -= 1;
          return Promise.reject(new Error("the API server refused it"));
        }
        patches.push({ at: Date.now(), body: JSON.stringify(patch) });
        return Promise.resolve();
      },
    },
  };
}

const revisionOf = (l: Layer): string => layerRevision(serializeLayer(l));

describe("Agent: the status report after the files", () => {
  const DELAY = 1_000;
  // random() is 0.5: a report waits 750 ms (half the delay, then half of the other half).
  const WAIT = 750;

  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("reports a while after the files, once for a burst of changes, the last one", async () => {
    const r = recorder();
    const { agent, fs, layers } = await running(DELAY, r.api);
    await settle();
    const teamFile = `${PATHS.policyDir}/team.json`;
    expect(fs.files.get(teamFile)).toBeDefined();
    expect(r.patches).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(WAIT - 1);
    expect(r.patches).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.patches).toHaveLength(1);
    expect(r.patches[0]?.body).toContain(revisionOf(team("k1")));

    // Three changes 200 ms apart: each file at once, one report 750 ms after the first.
    const start = Date.now();
    let text = fs.files.get(teamFile);
    for (const key of ["k2", "k3", "k4"]) {
      layers.emit({ type: "MODIFIED", object: layerMap(team(key)) });
      await settle();
      expect(fs.files.get(teamFile)).not.toBe(text);
      text = fs.files.get(teamFile);
      await vi.advanceTimersByTimeAsync(200);
    }
    expect(r.patches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(WAIT - 600);
    expect(r.patches).toHaveLength(2);
    expect(r.patches[1]?.at).toBe(start + WAIT);
    expect(r.patches[1]?.body).toContain(revisionOf(team("k4")));
    expect(r.patches[1]?.body).not.toContain(revisionOf(team("k3")));

    // Nothing changed since: no other report, however long it waits (short of the resync).
    await vi.advanceTimersByTimeAsync(60_000);
    expect(r.patches).toHaveLength(2);
    await agent.stop();
  });

  it("gives memory back after the report, not between the files and the report", async () => {
    const r = recorder();
    const { agent, fs, releases, atOnce } = await running(DELAY, r.api);
    await settle();
    expect(fs.files.get(`${PATHS.policyDir}/team.json`)).toBeDefined();
    expect(atOnce()).toBe(0);
    await vi.advanceTimersByTimeAsync(WAIT);
    expect(r.patches).toHaveLength(1);
    expect(atOnce()).toBe(1);
    expect(releases()).toBe(0);
    await vi.advanceTimersByTimeAsync(RELEASE_IDLE_MS);
    expect(releases()).toBe(1);
    await agent.stop();
  });

  it("retries a refused report alone, without touching the files again", async () => {
    const r = recorder();
    r.refuse.next = 2;
    const { agent, fs } = await running(DELAY, r.api);
    await settle();
    const written = fs.writes.length;
    expect(written).toBeGreaterThan(0);
    await vi.advanceTimersByTimeAsync(WAIT);
    expect(r.refuse.next).toBe(1);
    expect(r.patches).toHaveLength(0);
    // The queue's backoff (base 1 s here): the second try is refused, the third one lands.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.refuse.next).toBe(0);
    expect(r.patches).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(r.patches).toHaveLength(1);
    expect(r.patches[0]?.body).toContain(revisionOf(team("k1")));
    expect(fs.writes).toHaveLength(written);
    await agent.stop();
  });

  it("draws each report's wait between half the delay and all of it", async () => {
    for (const [random, wait] of [
      [0, DELAY / 2],
      [0.999, DELAY - 1],
    ] as const) {
      const r = recorder();
      const t0 = Date.now();
      const { agent } = await running(DELAY, r.api, random);
      await settle();
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(r.patches).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(r.patches.map((p) => Math.round(p.at - t0))).toEqual([wait]);
      await agent.stop();
    }
  });

  it("with no delay, reports right after the files", async () => {
    const r = recorder();
    const t0 = Date.now();
    const { agent, fs } = await running(0, r.api);
    await settle();
    expect(fs.files.get(`${PATHS.policyDir}/team.json`)).toBeDefined();
    expect(r.patches).toHaveLength(1);
    expect(r.patches[0]?.at).toBe(t0);
    await agent.stop();
  });
});

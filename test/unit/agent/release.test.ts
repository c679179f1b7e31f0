// When the agent gives memory back (src/agent/agent.ts): it asks right after a reconcile (the
// releaser then acts on a large growth only, a cluster change) and again once the work queue
// stayed empty for RELEASE_IDLE_MS, so a burst of small changes costs one full collection. A
// real Agent on in-memory informers (FakeSource), files (MemoryFs) and status; fake timers.

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

async function running(): Promise<{
  agent: Agent;
  fs: MemoryFs;
  layers: FakeSource;
  releases: () => number;
  /** Calls right after a reconcile (idle false: the releaser acts on a large growth only). */
  atOnce: () => number;
}> {
  const fs = new MemoryFs();
  const layers = new FakeSource([
    layerMap(layer(undefined, [[["example.com"], ACCEPT]])),
    layerMap(team("k1")),
  ]);
  let released = 0;
  let atOnce = 0;
  const logger = pino({ level: "silent" });
  const status: StatusApi = {
    read: () => Promise.resolve(undefined),
    ensure: () => Promise.resolve(),
    patchStatus: () => Promise.resolve(),
  };
  const agent = new Agent(
    {
      nodeName: "node-1",
      paths: PATHS,
      hostPolicyDir: "/etc/crio/policies",
      expectedPolicyPath: PATHS.clusterJson,
      expectedPolicyDir: "/etc/crio/policies",
      probeIntervalMs: 3_600_000,
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

// The explainer's shell with fakes for the API server (the real one: test/apiserver/refusals).

import { describe, expect, it } from "vitest";
import type { ListWatcher, WatchEvent } from "../../../src/kube/client.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";
import { CLUSTER_LAYER_NAME, layerConfigMapName } from "../../../src/layerConfigMap.ts";
import {
  DEFAULT_LIMITS,
  EVENT_REASON,
  RefusalExplainer,
  type ExplainerLimits,
  type RecordStore,
} from "../../../src/refusals/explainer.ts";
import { FakeClock, settle } from "../kube/fakeClock.ts";
import {
  kubeletEvent,
  layerConfigMap,
  policy,
  publicKey,
  pullFailedMessage,
  REASONS,
} from "./fixtures.ts";

const key = publicKey();

class FakeRecords implements RecordStore {
  readonly objects = new Map<string, KubeObject>();
  readonly statuses = new Map<string, unknown>();
  writes = 0;
  failNext = 0;
  #rv = 0;
  async get(namespace: string, name: string): Promise<KubeObject | undefined> {
    await Promise.resolve();
    return this.objects.get(`${namespace}/${name}`);
  }
  async create(obj: KubeObject): Promise<KubeObject> {
    return this.#put(obj);
  }
  async replace(obj: KubeObject): Promise<KubeObject> {
    return this.#put(obj);
  }
  async patchStatus(namespace: string, name: string, status: unknown): Promise<void> {
    await Promise.resolve();
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error("injected failure");
    }
    this.writes += 1;
    this.statuses.set(`${namespace}/${name}`, status);
  }
  async #put(obj: KubeObject): Promise<KubeObject> {
    await Promise.resolve();
    this.#rv += 1;
    const stored = {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: String(this.#rv), generation: 1 },
    };
    this.objects.set(`${obj.metadata.namespace ?? ""}/${obj.metadata.name}`, stored);
    return stored;
  }
}

const noEvents: ListWatcher = {
  list: () => Promise.resolve({ items: [], resourceVersion: "1" }),
  watch: (_rv: string, _on: (e: WatchEvent) => void, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      signal.addEventListener(
        "abort",
        () => {
          resolve();
        },
        { once: true },
      );
    }),
};

function setup(limits: Partial<ExplainerLimits> = {}) {
  const clock = new FakeClock();
  const records = new FakeRecords();
  const notes: { namespace?: string | undefined; name: string; reason: string; note: string }[] =
    [];
  const configMaps = new Map<string, KubeObject>([
    [
      CLUSTER_LAYER_NAME,
      layerConfigMap(undefined, [
        policy("signed", ["registry.example"], { kind: "sigstoreKeys", keys: [key.b64] }),
      ]),
    ],
  ]);
  const x = new RefusalExplainer(
    {
      events: noEvents,
      layerConfigMap: (name) => configMaps.get(name),
      nodeStatus: () => undefined,
      records,
      eventSink: {
        record: (regarding, _type, reason, _action, note) => {
          notes.push({ namespace: regarding.namespace, name: regarding.name, reason, note });
          return Promise.resolve();
        },
      },
      clock,
      delay: clock.delay,
      logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
    },
    { ...DEFAULT_LIMITS, ...limits },
  );
  const abort = new AbortController();
  const running = x.run(abort.signal);
  const stop = async (): Promise<void> => {
    abort.abort();
    await running;
  };
  const drain = async (): Promise<void> => {
    for (let i = 0; i < 10_000 && x.pending > 0; i++) await settle();
    await settle();
  };
  return { x, clock, records, notes, configMaps, stop, drain };
}

const refused = (
  o: { pod?: string; uid?: string; namespace?: string; image?: string; count?: number } = {},
) =>
  kubeletEvent({
    ...o,
    message: pullFailedMessage(o.image ?? "registry.example/app:v1", REASONS.NoSignature),
  });

describe("RefusalExplainer", () => {
  it("writes one record and one Event per (pod, image, revision), whatever the kubelet repeats", async () => {
    const s = setup();
    for (let i = 1; i <= 50; i++) s.x.offer(refused({ count: i }));
    await s.drain();
    expect(s.records.objects.size).toBe(1);
    expect(s.records.writes).toBe(1);
    expect(s.notes).toHaveLength(1);
    expect(s.notes[0]).toMatchObject({ namespace: "team", name: "web-0", reason: EVENT_REASON });
    expect(s.notes[0]?.note).toContain(key.fingerprint);
    expect(s.x.outcomes().get("deduplicated")).toBe(49);
    // A new revision of the cluster layer: explained again, once.
    s.configMaps.set(
      CLUSTER_LAYER_NAME,
      layerConfigMap(undefined, [policy("signed", ["registry.example"], { kind: "reject" })], "2"),
    );
    for (let i = 0; i < 5; i++) s.x.offer(refused());
    await s.drain();
    expect(s.records.writes).toBe(2);
    expect(s.notes).toHaveLength(2);
    expect(
      s.records.statuses.get(`team/${[...s.records.objects.values()][0]?.metadata.name ?? ""}`),
    ).toMatchObject({
      accepts: ["nothing: this scope rejects every image (Reject)"],
    });
    await s.stop();
  });

  it("replaces the record of a recreated pod of the same name", async () => {
    const s = setup();
    s.x.offer(refused({ uid: "uid-1" }));
    await s.drain();
    s.x.offer(refused({ uid: "uid-2" }));
    await s.drain();
    const [record] = s.records.objects.values();
    expect(s.records.objects.size).toBe(1);
    expect(record?.metadata.ownerReferences).toEqual([
      { apiVersion: "v1", kind: "Pod", name: "web-0", uid: "uid-2" },
    ]);
    await s.stop();
  });

  it("tries again at the kubelet's next repeat when a write failed", async () => {
    const s = setup();
    s.records.failNext = 1;
    s.x.offer(refused());
    await s.drain();
    expect(s.x.outcomes().get("failed")).toBe(1);
    s.x.offer(refused({ count: 2 }));
    await s.drain();
    expect(s.records.writes).toBe(1);
    expect(s.x.outcomes().get("explained")).toBe(1);
    await s.stop();
  });

  it("rate-limits per namespace without starving the others", async () => {
    const s = setup({ perNamespace: { perSecond: 1, burst: 2 } });
    for (let i = 0; i < 10; i++)
      s.x.offer(refused({ namespace: "noisy", pod: `p${String(i)}`, uid: `n${String(i)}` }));
    s.x.offer(refused({ namespace: "quiet", uid: "q" }));
    await s.drain();
    expect(s.notes.filter((n) => n.namespace === "noisy")).toHaveLength(2);
    expect(s.notes.filter((n) => n.namespace === "quiet")).toHaveLength(1);
    expect(s.x.outcomes().get("rate_limited")).toBe(8);
    // The kubelet repeats; a second later a token is back.
    await s.clock.advance(1000);
    s.x.offer(refused({ namespace: "noisy", pod: "p5", uid: "n5" }));
    await s.drain();
    expect(s.notes.filter((n) => n.namespace === "noisy")).toHaveLength(3);
    await s.stop();
  });

  it("holds at most `dedupe` keys and `pending` jobs, however many pods fail", async () => {
    const s = setup({
      dedupe: 100,
      pending: 10,
      global: { perSecond: 1e9, burst: 1e9 },
      perNamespace: { perSecond: 1e9, burst: 1e9 },
      namespaces: 16,
    });
    for (let i = 0; i < 2000; i++)
      s.x.offer(
        refused({ namespace: `ns${String(i % 40)}`, pod: `p${String(i)}`, uid: `u${String(i)}` }),
      );
    expect(s.x.pending).toBe(10);
    expect(s.x.outcomes().get("dropped")).toBe(1990);
    await s.drain();
    // Once the worker has drained them, new ones are taken again.
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 10; i++)
        s.x.offer(
          refused({ pod: `r${String(round)}-${String(i)}`, uid: `r${String(round)}-${String(i)}` }),
        );
      await s.drain();
    }
    expect(s.x.pending).toBe(0);
    expect(s.x.outcomes().get("explained")).toBe(310);
    // The dedupe map forgot the oldest: a repeat of the very first one is explained again.
    s.x.offer(refused({ namespace: "ns0", pod: "p0", uid: "u0" }));
    await s.drain();
    expect(s.x.outcomes().get("explained")).toBe(311);
    await s.stop();
  });

  it("waits for the published cluster layer and ignores Events that are no refusal", async () => {
    const s = setup();
    s.configMaps.delete(CLUSTER_LAYER_NAME);
    s.x.offer(refused());
    s.x.offer(kubeletEvent({ message: "Back-off pulling image", reason: "BackOff" }));
    s.configMaps.set(layerConfigMapName("team"), {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "x" },
    });
    await s.drain();
    expect(s.x.outcomes().get("no_layer")).toBe(1);
    expect(s.x.outcomes().get("not_a_refusal")).toBe(1);
    expect(s.records.objects.size).toBe(0);
    await s.stop();
  });
});

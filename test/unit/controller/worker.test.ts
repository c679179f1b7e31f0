// The controller's worker (Controller.runWorker) on a real Controller over in-memory informers and
// a recording client whose status writes can be held (fakes.ts): status keys run up to
// STATUS_CONCURRENCY at once, the layers key never runs while a status write is in flight, and
// every status is written once the writes are let through.

import { afterEach, expect, it } from "vitest";
import { refKey } from "../../../src/api/types.ts";
import { LAYERS_KEY, STATUS_CONCURRENCY } from "../../../src/controller/controller.ts";
import { cip, withScopes } from "../../support/builders.ts";
import { fakeController, type FakeController, withMeta } from "./fakes.ts";

const POLICIES = 10;
const running: FakeController[] = [];
afterEach(async () => {
  for (const f of running.splice(0)) await f.stop();
});

/** Lets the event loop run until `done` holds (the worker runs on real promises). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !done(); i++) await new Promise((r) => setImmediate(r));
  expect(done()).toBe(true);
}

it("writes statuses a few at a time and runs the layers key alone", async () => {
  const f = await fakeController({
    items: {
      clusterImagePolicies: Array.from({ length: POLICIES }, (_, i) =>
        withMeta(cip(`p${i}`, withScopes(`r${i}.example.com`))),
      ),
    },
  });
  running.push(f);
  let release = (): void => undefined;
  f.client.hold = new Promise<void>((r) => {
    release = r;
  });
  // Whenever the layers key starts: how many status writes were in flight.
  const inFlightAtLayers: number[] = [];
  const reconcile = f.controller.reconcile.bind(f.controller);
  f.controller.reconcile = (key: string) => {
    if (key === LAYERS_KEY) inFlightAtLayers.push(f.client.statusInFlight);
    return reconcile(key);
  };
  const abort = new AbortController();
  const worker = f.controller.runWorker(abort.signal);

  // The first layers reconcile queues every policy's status: only STATUS_CONCURRENCY start.
  await until(() => f.client.statusInFlight === STATUS_CONCURRENCY);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  expect(f.client.statusInFlight).toBe(STATUS_CONCURRENCY);
  expect(f.client.statusWrites).toHaveLength(0);

  // A layers key queued now waits for the writes in flight.
  f.queue.add(LAYERS_KEY);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  expect(inFlightAtLayers).toEqual([0]);

  release();
  f.client.hold = undefined;
  await until(() => f.client.statusWrites.length === POLICIES && f.queue.length === 0);
  expect(new Set(f.client.statusWrites.map((w) => w.key))).toEqual(
    new Set(
      Array.from({ length: POLICIES }, (_, i) =>
        refKey({ kind: "ClusterImagePolicy", name: `p${i}` }),
      ),
    ),
  );
  expect(inFlightAtLayers).toEqual([0, 0]);

  abort.abort();
  f.queue.shutDown();
  await worker;
});

import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../../src/kube/workQueue.ts";
import { FakeClock } from "./fakeClock.ts";

function queue(clock: FakeClock): WorkQueue {
  return new WorkQueue({
    clock,
    schedule: clock.schedule,
    baseDelayMs: 100,
    maxDelayMs: 1_000,
  });
}

describe("WorkQueue", () => {
  it("dedupes a key added several times while it waits", async () => {
    const q = queue(new FakeClock());
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
    expect(q.length).toBe(0);
  });

  it("never hands one key to two workers; a key added while processing comes back after done", async () => {
    const q = queue(new FakeClock());
    q.add("a");
    const key = await q.get();
    expect(key).toBe("a");
    q.add("a");
    q.add("a");
    expect(q.length).toBe(0);
    q.done("a");
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("a");
    q.done("a");
    expect(q.length).toBe(0);
  });

  it("backs off exponentially per key up to the cap, and forget resets it", async () => {
    const clock = new FakeClock();
    const q = queue(clock);
    expect([0, 1, 2, 3, 4, 10].map((n) => q.backoffFor(n))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const start = clock.now();
      q.addRateLimited("k");
      expect(q.length).toBe(0);
      while (q.length === 0) await clock.advance(10);
      delays.push(clock.now() - start);
      expect(await q.get()).toBe("k");
      q.done("k");
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    q.forget("k");
    expect(q.failures("k")).toBe(0);
    const start = clock.now();
    q.addRateLimited("k");
    while (q.length === 0) await clock.advance(10);
    expect(clock.now() - start).toBe(100);
  });

  it("keeps the earliest of several delayed adds of one key", async () => {
    const clock = new FakeClock();
    const q = queue(clock);
    q.addAfter("k", 500);
    q.addAfter("k", 200);
    q.addAfter("k", 900);
    await clock.advance(199);
    expect(q.length).toBe(0);
    await clock.advance(1);
    expect(q.length).toBe(1);
    await clock.advance(1_000);
    expect(q.length).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it("wakes a waiting worker and releases it on shutdown", async () => {
    const q = queue(new FakeClock());
    const waiting = q.get();
    q.add("x");
    expect(await waiting).toBe("x");
    const blocked = q.get();
    q.shutDown();
    expect(await blocked).toBeUndefined();
    q.add("y");
    expect(await q.get()).toBeUndefined();
  });
});

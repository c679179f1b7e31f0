import { describe, expect, it } from "vitest";
import { BoundedLru, RateLimiter } from "../../../src/refusals/limits.ts";
import { FakeClock } from "../kube/fakeClock.ts";

describe("BoundedLru", () => {
  it("never holds more than its capacity and forgets the least recently used", () => {
    const lru = new BoundedLru<string, number>(3);
    for (let i = 0; i < 1000; i++) lru.set(`k${String(i)}`, i);
    expect(lru.size).toBe(3);
    expect([lru.has("k997"), lru.has("k998"), lru.has("k999"), lru.has("k0")]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    lru.get("k997");
    lru.set("new", 1);
    expect(lru.has("k997")).toBe(true);
    expect(lru.has("k998")).toBe(false);
  });

  it.each([0, -1, 1.5, Number.NaN])("refuses capacity %s", (c) => {
    expect(() => new BoundedLru(c)).toThrow(RangeError);
  });
});

describe("RateLimiter", () => {
  it("spends the burst, then refills at the rate, per key and overall", () => {
    const clock = new FakeClock();
    const rl = new RateLimiter(clock, { perSecond: 10, burst: 5 }, { perSecond: 1, burst: 2 }, 100);
    expect([rl.tryTake("a"), rl.tryTake("a"), rl.tryTake("a")]).toEqual([true, true, false]);
    expect([rl.tryTake("b"), rl.tryTake("b")]).toEqual([true, true]);
    // Global burst (5) spent after one more.
    expect([rl.tryTake("c"), rl.tryTake("d")]).toEqual([true, false]);
    clock.step(1000);
    expect(rl.tryTake("a")).toBe(true);
    expect(rl.tryTake("a")).toBe(false);
  });

  it("adds nothing when the clock steps back", () => {
    const clock = new FakeClock();
    const rl = new RateLimiter(
      clock,
      { perSecond: 100, burst: 100 },
      { perSecond: 1, burst: 1 },
      10,
    );
    expect(rl.tryTake("a")).toBe(true);
    clock.step(-60_000);
    expect(rl.tryTake("a")).toBe(false);
    clock.step(60_000);
    expect(rl.tryTake("a")).toBe(false);
    clock.step(1000);
    expect(rl.tryTake("a")).toBe(true);
  });
});

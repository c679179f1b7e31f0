// A fake Clock, Delay and Schedule for the adapter's timing tests: time moves only in advance().

import { setImmediate as tick } from "node:timers/promises";
import type { Clock, Delay, Schedule } from "../../../src/kube/clock.ts";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

export class AbortedByTest extends Error {
  override readonly name = "AbortedByTest";
}

export class FakeClock implements Clock {
  #now = 1_000_000;
  #seq = 0;
  #timers: Timer[] = [];

  now(): number {
    return this.#now;
  }

  /** Steps the wall clock (backwards with a negative `ms`, as NTP may) without running timers. */
  step(ms: number): void {
    this.#now += ms;
  }

  readonly schedule: Schedule = (fn, ms) => {
    const timer = { at: this.#now + ms, seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  };

  readonly delay: Delay = (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(new AbortedByTest("aborted"));
        return;
      }
      const cancel = this.schedule(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        cancel();
        reject(new AbortedByTest("aborted"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });

  /** Moves time forward by `ms`, firing timers in order and letting promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const next = [...this.#timers].sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (next === undefined || next.at > end) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  get pendingTimers(): number {
    return this.#timers.length;
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await tick();
}

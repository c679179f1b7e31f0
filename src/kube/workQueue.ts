// A keyed work queue in the manner of client-go's workqueue: a key is queued at most once (adding
// it again while it waits is a no-op), a key is processed by one worker at a time (added while
// processing, it is queued again when done), and failures back off per key exponentially up to a
// cap until forget(key). Time is injected (Clock + Schedule) so tests run it on a fake clock.

import { systemClock, systemSchedule, type Clock, type Schedule } from "./clock.ts";

export interface WorkQueueOptions {
  readonly clock?: Clock;
  readonly schedule?: Schedule;
  /** Delay after the first failure of a key (default 100 ms); doubled per failure. */
  readonly baseDelayMs?: number;
  /** Cap of the per-key backoff (default 60 s). */
  readonly maxDelayMs?: number;
}

export class WorkQueue<K extends string = string> {
  readonly #clock: Clock;
  readonly #schedule: Schedule;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #queue: K[] = [];
  /** Keys that need processing (queued, or to be queued again after processing). */
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #failures = new Map<K, number>();
  readonly #waiting = new Map<K, { readonly readyAt: number; readonly cancel: () => void }>();
  readonly #getters: ((key: K | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#schedule = options.schedule ?? systemSchedule;
    this.#baseDelayMs = options.baseDelayMs ?? 100;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
  }

  /** Queues `key` now unless it is already queued. */
  add(key: K): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    const getter = this.#getters.shift();
    if (getter !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      getter(key);
    } else {
      this.#queue.push(key);
    }
  }

  /** Queues `key` after `ms`; of several pending delays for one key the earliest wins. */
  addAfter(key: K, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + ms;
    const pending = this.#waiting.get(key);
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      pending.cancel();
    }
    const cancel = this.#schedule(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { readyAt, cancel });
  }

  /** Queues `key` after its next backoff delay: base * 2^failures, capped. */
  addRateLimited(key: K): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.addAfter(key, this.backoffFor(failures));
  }

  /** The delay the n-th consecutive failure (0-based) waits. */
  backoffFor(failures: number): number {
    return Math.min(this.#baseDelayMs * 2 ** Math.min(failures, 52), this.#maxDelayMs);
  }

  /** Resets the backoff of `key` (call after it succeeded). */
  forget(key: K): void {
    this.#failures.delete(key);
  }

  failures(key: K): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process, waiting for one; undefined once shut down. Call done(key) after. */
  get(): Promise<K | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      return Promise.resolve(key);
    }
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile it is queued again. */
  done(key: K): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#dirty.delete(key);
      this.add(key);
    }
  }

  /** Number of keys ready to be processed. */
  get length(): number {
    return this.#queue.length;
  }

  /** Stops handing out keys: pending get() calls resolve to undefined, delayed adds are dropped. */
  shutDown(): void {
    this.#shuttingDown = true;
    for (const { cancel } of this.#waiting.values()) cancel();
    this.#waiting.clear();
    this.#queue.length = 0;
    this.#dirty.clear();
    for (const getter of this.#getters.splice(0)) getter(undefined);
  }
}

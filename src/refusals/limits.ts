// The two bounds of refusal explanations: a least-recently-used map with a fixed capacity (what
// was explained, so a pod in ImagePullBackOff is explained once per policy revision however often
// the kubelet repeats its Event), and token buckets (how many explanations per second overall and
// per namespace, so one namespace's failing pods cannot use up the others' share). Both hold at
// most a fixed number of entries whatever the input: the controller's memory does not grow with
// the number of pods, images or namespaces. Time is injected.

import type { Clock } from "../kube/index.ts";

/** A Map that forgets its least recently used entry beyond `capacity`. */
export class BoundedLru<K, V> {
  readonly capacity: number;
  readonly #map = new Map<K, V>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, not ${String(capacity)}`);
    }
    this.capacity = capacity;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The value, marking it recently used. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.capacity) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }
}

export interface Rate {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Most tokens held (and the first burst). */
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A global token bucket and one per key (namespace), the per-key ones in a BoundedLru: a key it
 * forgot starts again with a full bucket, and the global bucket still bounds the total. */
export class RateLimiter {
  readonly #clock: Clock;
  readonly #global: Rate;
  readonly #perKey: Rate;
  readonly #globalBucket: Bucket;
  readonly #buckets: BoundedLru<string, Bucket>;

  constructor(clock: Clock, global: Rate, perKey: Rate, keys: number) {
    this.#clock = clock;
    this.#global = global;
    this.#perKey = perKey;
    this.#globalBucket = { tokens: global.burst, at: clock.now() };
    this.#buckets = new BoundedLru(keys);
  }

  /** Takes a token for `key` and one from the global bucket if both have one; else takes none. */
  tryTake(key: string): boolean {
    const now = this.#clock.now();
    refill(this.#globalBucket, this.#global, now);
    const bucket = this.#buckets.get(key) ?? { tokens: this.#perKey.burst, at: now };
    refill(bucket, this.#perKey, now);
    this.#buckets.set(key, bucket);
    if (this.#globalBucket.tokens < 1 || bucket.tokens < 1) return false;
    this.#globalBucket.tokens -= 1;
    bucket.tokens -= 1;
    return true;
  }
}

function refill(b: Bucket, rate: Rate, now: number): void {
  // A clock that stepped back adds nothing (and does not move `at` back).
  const elapsed = Math.max(0, now - b.at);
  b.tokens = Math.min(rate.burst, b.tokens + (elapsed / 1000) * rate.perSecond);
  b.at = Math.max(b.at, now);
}

import pino from "pino";
import { describe, expect, it } from "vitest";
import { KubeError } from "../../../src/kube/errors.ts";
import {
  LeaderElectionConfigError,
  LeaderElector,
  type LeaseRecord,
  type LeaseStore,
  type StoredLease,
} from "../../../src/kube/leaderElection.ts";
import { FakeClock, settle } from "./fakeClock.ts";

/** An in-memory Lease with compare-and-swap; `down` makes every call fail like an unreachable
 * API server. */
class MemoryLeaseStore implements LeaseStore {
  lease: StoredLease | undefined;
  down = false;
  #version = 0;
  get(): Promise<StoredLease | undefined> {
    if (this.down) return Promise.reject(new KubeError("unreachable", {}));
    return Promise.resolve(this.lease);
  }
  create(record: LeaseRecord): Promise<StoredLease> {
    if (this.down) return Promise.reject(new KubeError("unreachable", {}));
    if (this.lease !== undefined) return Promise.reject(new KubeError("exists", { status: 409 }));
    this.lease = { record, version: String(++this.#version) };
    return Promise.resolve(this.lease);
  }
  update(record: LeaseRecord, version: string): Promise<StoredLease> {
    if (this.down) return Promise.reject(new KubeError("unreachable", {}));
    if (this.lease?.version !== version) {
      return Promise.reject(new KubeError("conflict", { status: 409 }));
    }
    this.lease = { record, version: String(++this.#version) };
    return Promise.resolve(this.lease);
  }
}

/** One candidate's view of a shared store, which can be cut off. */
class StoreView implements LeaseStore {
  down = false;
  readonly #store: LeaseStore;
  constructor(store: LeaseStore) {
    this.#store = store;
  }
  get(): Promise<StoredLease | undefined> {
    return this.down ? Promise.reject(new KubeError("cut off", {})) : this.#store.get();
  }
  create(record: LeaseRecord): Promise<StoredLease> {
    return this.down ? Promise.reject(new KubeError("cut off", {})) : this.#store.create(record);
  }
  update(record: LeaseRecord, version: string): Promise<StoredLease> {
    return this.down
      ? Promise.reject(new KubeError("cut off", {}))
      : this.#store.update(record, version);
  }
}

const logger = pino({ level: "silent" });
const timing = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

interface Candidate {
  readonly elector: LeaderElector;
  readonly stop: AbortController;
  readonly run: Promise<void>;
  readonly log: string[];
}

function candidate(identity: string, store: LeaseStore, clock: FakeClock): Candidate {
  const elector = new LeaderElector({
    identity,
    store,
    clock,
    delay: clock.delay,
    logger,
    ...timing,
  });
  const stop = new AbortController();
  const log: string[] = [];
  const run = elector.run(stop.signal, {
    onStartedLeading: () => log.push(`start@${clock.now()}`),
    onStoppedLeading: () => log.push(`stop@${clock.now()}`),
  });
  return { elector, stop, run, log };
}

describe("LeaderElector", () => {
  it("refuses inconsistent timing", () => {
    const clock = new FakeClock();
    expect(
      () =>
        new LeaderElector({
          identity: "a",
          store: new MemoryLeaseStore(),
          clock,
          delay: clock.delay,
          logger,
          leaseDurationMs: 10_000,
          renewDeadlineMs: 10_000,
          retryPeriodMs: 2_000,
        }),
    ).toThrow(LeaderElectionConfigError);
  });

  it("one leader; a standby takes over only after the lease went unrenewed for leaseDuration", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const aView = new StoreView(store);
    const a = candidate("a", aView, clock);
    await settle();
    expect(a.elector.isLeader).toBe(true);
    const b = candidate("b", store, clock);
    await clock.advance(30_000);
    expect(b.elector.isLeader).toBe(false);
    expect(store.lease?.record.holderIdentity).toBe("a");

    // "kill -9" a: from now on none of its calls reach the store (no renewal, no release).
    const killedAt = clock.now();
    aView.down = true;
    await clock.advance(14_000);
    expect(b.elector.isLeader).toBe(false);
    await clock.advance(4_000);
    expect(b.elector.isLeader).toBe(true);
    expect(store.lease?.record.holderIdentity).toBe("b");
    expect(store.lease?.record.leaseTransitions).toBe(1);
    // Took over between leaseDuration and leaseDuration + 2 retry periods after a's last
    // renewal (b measures from when it saw the last change, on its own clock).
    const took = Number(b.log[0]?.split("@")[1]) - killedAt;
    expect(took).toBeGreaterThanOrEqual(13_000);
    expect(took).toBeLessThanOrEqual(15_000 + 2 * 2_000);
    // a, cut off, has stopped leading by its renew deadline.
    expect(a.elector.isLeader).toBe(false);
    a.stop.abort();
    b.stop.abort();
    await Promise.all([a.run, b.run]);
  });

  it("a released lease is taken at the standby's next retry", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate("a", store, clock);
    await settle();
    const b = candidate("b", store, clock);
    await clock.advance(5_000);
    a.stop.abort();
    await a.run;
    expect(a.log).toEqual([`start@1000000`, `stop@${clock.now()}`]);
    expect(store.lease?.record.holderIdentity).toBe("");
    const releasedAt = clock.now();
    await clock.advance(2_000);
    expect(b.elector.isLeader).toBe(true);
    expect(Number(b.log[0]?.split("@")[1]) - releasedAt).toBeLessThanOrEqual(2_000);
    b.stop.abort();
    await b.run;
  });

  it("the leader stops leading when it cannot renew within renewDeadline", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate("a", store, clock);
    await settle();
    await clock.advance(6_000);
    expect(a.elector.isLeader).toBe(true);
    const lastRenew = store.lease?.record.renewTime ?? 0;
    store.down = true;
    await clock.advance(9_000);
    expect(a.elector.isLeader).toBe(true);
    await clock.advance(3_000);
    expect(a.elector.isLeader).toBe(false);
    const stoppedAt = Number(a.log[1]?.split("@")[1]);
    expect(stoppedAt - lastRenew).toBeGreaterThanOrEqual(10_000);
    // Before anybody else may take over (leaseDuration after the last renewal).
    expect(stoppedAt - lastRenew).toBeLessThan(15_000);
    // It campaigns again and wins once the API server is back.
    store.down = false;
    await clock.advance(3_000);
    expect(a.elector.isLeader).toBe(true);
    a.stop.abort();
    await a.run;
  });
});

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
//
// - a candidate takes the Lease when it does not exist, has no holder, or its record has not
//   changed for leaseDuration as measured on the candidate's own clock (never comparing clocks of
//   two machines: renewTime is only used to notice a change);
// - the leader renews every retryPeriod; if it cannot renew for renewDeadline it stops leading
//   (renewDeadline < leaseDuration, so it stops before anybody else may take over);
// - every write is a compare-and-swap on resourceVersion; on shutdown the leader releases the
//   Lease (empty holder) so a standby takes over at its next retry.
//
// The Lease API is behind LeaseStore so the timing is unit-tested with a fake clock and store.

import type { Logger } from "./log.ts";
import type { KubeApi } from "./client.ts";
import type { Clock, Delay } from "./clock.ts";
import { KubeError, isConflict } from "./errors.ts";
import { Resources, type KubeObject } from "./objects.ts";

export interface LeaseRecord {
  /** "" when released. */
  readonly holderIdentity: string;
  readonly leaseDurationSeconds: number;
  /** Milliseconds since the epoch. */
  readonly acquireTime: number;
  readonly renewTime: number;
  readonly leaseTransitions: number;
}

export interface StoredLease {
  readonly record: LeaseRecord;
  /** Opaque version for compare-and-swap (the Lease's resourceVersion). */
  readonly version: string;
}

export interface LeaseStore {
  get(): Promise<StoredLease | undefined>;
  /** Fails with a conflict (isConflict) if it exists. */
  create(record: LeaseRecord): Promise<StoredLease>;
  /** Fails with a conflict (isConflict) if the version changed. */
  update(record: LeaseRecord, version: string): Promise<StoredLease>;
}

export interface LeaderElectorOptions {
  readonly identity: string;
  readonly store: LeaseStore;
  readonly clock: Clock;
  readonly delay: Delay;
  readonly logger: Logger;
  /** Default 15 s. */
  readonly leaseDurationMs?: number;
  /** Default 10 s; must be less than leaseDurationMs. */
  readonly renewDeadlineMs?: number;
  /** Default 2 s; must be less than renewDeadlineMs. */
  readonly retryPeriodMs?: number;
}

export interface LeaderCallbacks {
  /** Called when this candidate becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading(signal: AbortSignal): void;
  /** Called when leadership is lost or released. */
  onStoppedLeading(): void;
  /** Called when the observed holder changes (also to another candidate). */
  onNewLeader?(identity: string): void;
}

export class LeaderElectionConfigError extends Error {
  override readonly name = "LeaderElectionConfigError";
}

class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

export class LeaderElector {
  readonly identity: string;
  readonly #store: LeaseStore;
  readonly #clock: Clock;
  readonly #delay: Delay;
  readonly #logger: Logger;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  #observed: StoredLease | undefined;
  /** Local time when #observed last changed. */
  #observedAt = 0;
  #leading = false;
  #lastHolder: string | undefined;

  constructor(options: LeaderElectorOptions) {
    this.identity = options.identity;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#delay = options.delay;
    this.#logger = options.logger;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (this.identity === "") throw new LeaderElectionConfigError("identity must not be empty");
    if (!(
      this.retryPeriodMs < this.renewDeadlineMs && this.renewDeadlineMs < this.leaseDurationMs
    )) {
      throw new LeaderElectionConfigError(
        "need retryPeriod < renewDeadline < leaseDuration, got " +
          `${this.retryPeriodMs} ms, ${this.renewDeadlineMs} ms, ${this.leaseDurationMs} ms`,
      );
    }
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Campaigns, leads, and campaigns again after losing the lease, until `signal` aborts; then
   * releases the lease if held. */
  async run(signal: AbortSignal, callbacks: LeaderCallbacks): Promise<void> {
    while (!signal.aborted) {
      const acquired = await this.#acquire(signal, callbacks);
      if (!acquired) break;
      const leading = new AbortController();
      this.#leading = true;
      this.#logger.info({ identity: this.identity }, "became leader");
      try {
        callbacks.onStartedLeading(leading.signal);
      } catch (err) {
        this.#logger.error({ err }, "onStartedLeading threw");
      }
      await this.#renewLoop(signal);
      this.#leading = false;
      leading.abort();
      callbacks.onStoppedLeading();
      if (isAborted(signal)) {
        await this.#release();
        break;
      }
      this.#logger.warn({ identity: this.identity }, "lost leadership; campaigning again");
    }
  }

  /** One attempt; true when this candidate holds the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.#clock.now();
    const fresh: LeaseRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    };
    let current: StoredLease | undefined;
    try {
      current = await this.#store.get();
    } catch (err) {
      this.#logger.warn({ err }, "cannot read the lease");
      return false;
    }
    if (current === undefined) {
      try {
        this.#observe(await this.#store.create(fresh), this.#clock.now());
        return true;
      } catch (err) {
        if (!isConflict(err)) this.#logger.warn({ err }, "cannot create the lease");
        return false;
      }
    }
    if (
      this.#observed === undefined ||
      this.#observed.version !== current.version ||
      this.#observed.record.holderIdentity !== current.record.holderIdentity ||
      this.#observed.record.renewTime !== current.record.renewTime
    ) {
      this.#observe(current, now);
    }
    const r = current.record;
    const heldByOther = r.holderIdentity !== "" && r.holderIdentity !== this.identity;
    if (heldByOther && this.#observedAt + r.leaseDurationSeconds * 1000 > now) return false;
    const mine = r.holderIdentity === this.identity;
    const next: LeaseRecord = {
      ...fresh,
      acquireTime: mine ? r.acquireTime : now,
      leaseTransitions: mine ? r.leaseTransitions : r.leaseTransitions + 1,
    };
    try {
      this.#observe(await this.#store.update(next, current.version), this.#clock.now());
      return true;
    } catch (err) {
      if (!isConflict(err)) this.#logger.warn({ err }, "cannot update the lease");
      return false;
    }
  }

  #observe(lease: StoredLease, at: number): void {
    this.#observed = lease;
    this.#observedAt = at;
    const holder = lease.record.holderIdentity;
    if (holder !== this.#lastHolder) {
      this.#lastHolder = holder;
      this.#onNewLeader?.(holder);
    }
  }

  #onNewLeader: ((identity: string) => void) | undefined;

  async #acquire(signal: AbortSignal, callbacks: LeaderCallbacks): Promise<boolean> {
    this.#onNewLeader = (identity) => callbacks.onNewLeader?.(identity);
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) return true;
      try {
        await this.#delay(this.retryPeriodMs, signal);
      } catch {
        return false;
      }
    }
    return false;
  }

  /** Returns when leadership is lost or `signal` aborts. */
  async #renewLoop(signal: AbortSignal): Promise<void> {
    for (;;) {
      try {
        await this.#delay(this.retryPeriodMs, signal);
      } catch {
        return;
      }
      const deadline = this.#observedAt + this.renewDeadlineMs;
      let renewed = false;
      while (!renewed && !signal.aborted && this.#clock.now() < deadline) {
        renewed = await this.#withDeadline(this.tryAcquireOrRenew(), deadline, signal);
        if (!renewed) {
          const holder = this.#observed?.record.holderIdentity;
          if (holder !== undefined && holder !== "" && holder !== this.identity) {
            this.#logger.warn({ identity: this.identity, holder }, "the lease was taken over");
            return;
          }
          try {
            await this.#delay(
              Math.min(this.retryPeriodMs, Math.max(0, deadline - this.#clock.now())),
              signal,
            );
          } catch {
            return;
          }
        }
      }
      if (signal.aborted) return;
      if (!renewed) {
        this.#logger.warn(
          { identity: this.identity, renewDeadlineMs: this.renewDeadlineMs },
          "could not renew the lease before the deadline",
        );
        return;
      }
    }
  }

  async #withDeadline(
    attempt: Promise<boolean>,
    deadline: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    const timer = new AbortController();
    const onAbort = (): void => {
      timer.abort();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await Promise.race([
        attempt,
        this.#delay(Math.max(0, deadline - this.#clock.now()), timer.signal).then(() => {
          throw new TimeoutError("lease renewal timed out");
        }),
      ]);
    } catch {
      return false;
    } finally {
      signal.removeEventListener("abort", onAbort);
      timer.abort();
    }
  }

  /** Gives the lease up so a standby need not wait for it to expire. */
  async #release(): Promise<void> {
    const observed = this.#observed;
    if (observed?.record.holderIdentity !== this.identity) return;
    const now = this.#clock.now();
    try {
      await this.#store.update(
        {
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: observed.record.leaseTransitions,
        },
        observed.version,
      );
      this.#logger.info({ identity: this.identity }, "released the lease");
    } catch (err) {
      this.#logger.warn({ err }, "cannot release the lease");
    }
  }
}

/** The Lease fields the elector reads; a field of the wrong type makes the Lease malformed. */
function leaseOf(lease: KubeObject, what: string): StoredLease {
  const version = lease.metadata.resourceVersion;
  if (version === undefined) throw new KubeError(`${what} has no resourceVersion`, {});
  const spec: unknown = lease["spec"] ?? {};
  if (typeof spec !== "object" || spec === null) throw new KubeError(`${what}: spec`, {});
  const field = (name: string, type: "string" | "number"): unknown => {
    const v: unknown = Reflect.get(spec, name);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== type || (type === "number" && !Number.isInteger(v))) {
      throw new KubeError(`${what} is malformed: spec.${name} is not a ${type}`, {});
    }
    return v;
  };
  const text = (name: string): string | undefined => {
    const v = field(name, "string");
    return typeof v === "string" ? v : undefined;
  };
  const int = (name: string): number => {
    const v = field(name, "number");
    return typeof v === "number" ? v : 0;
  };
  return {
    version,
    record: {
      holderIdentity: text("holderIdentity") ?? "",
      leaseDurationSeconds: int("leaseDurationSeconds"),
      acquireTime: millis(text("acquireTime")),
      renewTime: millis(text("renewTime")),
      leaseTransitions: int("leaseTransitions"),
    },
  };
}

/** A LeaseStore on a real Lease object. */
export function kubeLeaseStore(
  client: Pick<KubeApi, "get" | "create" | "replace">,
  namespace: string,
  name: string,
): LeaseStore {
  const toStored = (lease: KubeObject): StoredLease => leaseOf(lease, `Lease ${namespace}/${name}`);
  const body = (record: LeaseRecord, version?: string): KubeObject => ({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name, namespace, ...(version === undefined ? {} : { resourceVersion: version }) },
    spec: {
      holderIdentity: record.holderIdentity,
      leaseDurationSeconds: record.leaseDurationSeconds,
      acquireTime: microTime(record.acquireTime),
      renewTime: microTime(record.renewTime),
      leaseTransitions: record.leaseTransitions,
    },
  });
  return {
    get: async () => {
      const lease = await client.get(Resources.leases, { name, namespace });
      return lease === undefined ? undefined : toStored(lease);
    },
    create: async (record) => toStored(await client.create(Resources.leases, body(record))),
    update: async (record, version) =>
      toStored(await client.replace(Resources.leases, body(record, version))),
  };
}

/** metav1.MicroTime text (six fractional digits; the API server refuses three). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function millis(v: string | undefined): number {
  if (v === undefined) return 0;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new KubeError(`invalid time in Lease: ${v}`, {});
  return t;
}

/** Read through a call: TypeScript narrows `signal.aborted` after one check, but it changes. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

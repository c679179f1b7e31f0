// A real Controller on in-memory informers, a recording client and a fake clock (the approach of
// bench/controller.ts): each informer is a real Informer over a ListWatcher that lists the given
// objects and then keeps its watch open for the test to push events through; the client records
// every write instead of sending it (it implements the controller's narrow API,
// src/controller/api.ts, not the concrete KubeClient); the work queue runs on the fake clock.

import { pino } from "pino";
import { Controller, type ControllerInformers } from "../../../src/controller/controller.ts";
import { ControllerMetrics } from "../../../src/controller/metrics.ts";
import { policyRef, refKey } from "../../../src/api/types.ts";
import type { ControllerApi, EventSink, ObjectAddress } from "../../../src/controller/api.ts";
import type { PolicyStatus } from "../../../src/controller/status.ts";
import {
  type AppliedObject,
  type ListResult,
  type ListWatcher,
  type WatchEvent,
} from "../../../src/kube/client.ts";
import type { EventTarget } from "../../../src/kube/events.ts";
import { Informer } from "../../../src/kube/informer.ts";
import type { KubeObject, Resource } from "../../../src/kube/objects.ts";
import { WorkQueue } from "../../../src/kube/workQueue.ts";
import { FakeClock, settle } from "../kube/fakeClock.ts";

export class FakeError extends Error {
  override readonly name = "FakeError";
}

/** Lists `items`, then holds one watch open; emit() delivers an event through it. */
export class FakeSource implements ListWatcher {
  readonly #items: readonly KubeObject[];
  #onEvent: ((event: WatchEvent) => void) | undefined;

  constructor(items: readonly KubeObject[]) {
    this.#items = items;
  }

  list(): Promise<ListResult> {
    return Promise.resolve({ items: this.#items, resourceVersion: "1" });
  }

  watch(
    _resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.#onEvent = onEvent;
    return new Promise<void>((resolve) => {
      signal.addEventListener(
        "abort",
        () => {
          this.#onEvent = undefined;
          resolve();
        },
        { once: true },
      );
    });
  }

  /** Delivers `event` now (the informer updates its cache and calls its handlers). */
  emit(event: WatchEvent): void {
    if (this.#onEvent === undefined) throw new FakeError("no watch open");
    this.#onEvent(event);
  }
}

export interface StatusWrite {
  /** refKey of the object: "ClusterImagePolicy/a", "ImagePolicy/ns/b". */
  readonly key: string;
  readonly status: PolicyStatus;
  /** The fake clock's time of the write. */
  readonly at: number;
  /** The resourceVersion the write produced (what its watch event carries). */
  readonly resourceVersion: string;
}

let objectVersion = 0;

/** `o` as the API server would list it: with a uid and a resourceVersion of its own. */
export function withMeta(o: KubeObject): KubeObject {
  objectVersion += 1;
  const v = `m${String(objectVersion)}`;
  return { ...o, metadata: { ...o.metadata, uid: `uid-${v}`, resourceVersion: v } };
}

/** Records writes instead of sending them: the controller's API (src/controller/api.ts). */
export class RecordingClient implements ControllerApi, EventSink {
  readonly applied: KubeObject[] = [];
  readonly statusWrites: StatusWrite[] = [];
  readonly deleted: ObjectAddress[] = [];
  readonly events: { readonly regarding: EventTarget; readonly reason: string }[] = [];
  readonly #clock: FakeClock;
  #version = 0;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  apply(obj: KubeObject): Promise<AppliedObject> {
    this.applied.push(obj);
    return Promise.resolve({ ...obj.metadata, resourceVersion: this.#nextVersion() });
  }

  /** When set, each status write waits for this promise before it is recorded (a slow API
   * server); `statusInFlight` counts the writes waiting. */
  hold: Promise<void> | undefined;
  statusInFlight = 0;

  async patchStatus(
    _resource: Resource,
    ref: ObjectAddress,
    status: unknown,
  ): Promise<AppliedObject> {
    if (this.hold !== undefined) {
      this.statusInFlight += 1;
      try {
        await this.hold;
      } finally {
        this.statusInFlight -= 1;
      }
    }
    const key = refKey(policyRef(ref.name, ref.namespace));
    const resourceVersion = this.#nextVersion();
    // The controller passes the PolicyStatus it computed (desiredStatus); nothing was parsed.
    const written = status as PolicyStatus;
    this.statusWrites.push({ key, status: written, at: this.#clock.now(), resourceVersion });
    return {
      name: ref.name,
      ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
      resourceVersion,
    };
  }

  delete(_resource: Resource, ref: ObjectAddress): Promise<boolean> {
    this.deleted.push(ref);
    return Promise.resolve(true);
  }

  record(regarding: EventTarget, _type: string, reason: string): Promise<void> {
    this.events.push({ regarding, reason });
    return Promise.resolve();
  }

  /** A resourceVersion no informer list ("1") carries. */
  #nextVersion(): string {
    this.#version += 1;
    return `w${this.#version}`;
  }
}

type InformerName = Exclude<keyof ControllerInformers, "protectedPods">;

export interface FakeWorld {
  readonly items: Partial<Record<InformerName | "secrets" | "pods", readonly KubeObject[]>>;
  readonly namespace?: string;
  /** Namespaces whose pods' images are protected (pods come from items.pods). */
  readonly protectedNamespaces?: readonly string[];
}

export interface FakeController {
  readonly controller: Controller;
  readonly clock: FakeClock;
  readonly queue: WorkQueue;
  readonly client: RecordingClient;
  readonly informers: ControllerInformers;
  readonly sources: Record<InformerName, FakeSource>;
  /** Reconciles every key ready now, as runWorker does, until none is ready; returns them. */
  drain(): Promise<string[]>;
  stop(): Promise<void>;
}

const INFORMERS = [
  "clusterImagePolicies",
  "imagePolicies",
  "nodes",
  "layers",
  "nodeStatuses",
] as const satisfies readonly InformerName[];

/** Builds, starts and syncs a Controller (its informers deliver their lists at once). */
export async function fakeController(world: FakeWorld): Promise<FakeController> {
  const clock = new FakeClock();
  const logger = pino({ level: "silent" });
  const sources = Object.fromEntries(
    INFORMERS.map((name) => [name, new FakeSource(world.items[name] ?? [])]),
  ) as Record<InformerName, FakeSource>;
  const informers: ControllerInformers = {
    ...(Object.fromEntries(
      INFORMERS.map((name) => [
        name,
        new Informer({ name, source: sources[name], logger, delay: clock.delay }),
      ]),
    ) as Record<InformerName, Informer>),
    protectedPods: (world.protectedNamespaces ?? []).map(
      (ns) =>
        new Informer({
          name: `pods ${ns}`,
          source: new FakeSource(
            (world.items.pods ?? []).filter((p) => p.metadata.namespace === ns),
          ),
          logger,
          delay: clock.delay,
        }),
    ),
  };
  const client = new RecordingClient(clock);
  const queue = new WorkQueue({ clock, schedule: clock.schedule });
  const controller = new Controller(
    {
      namespace: world.namespace ?? "imagepolicy-system",
      crioVersionOverride: undefined,
      protectedImages: [],
      quota: { maxPolicies: 256, maxScopes: 1024, maxBytes: 262_144 },
      namespaceLookasidePrefixes: [],
    },
    {
      api: client,
      informers,
      queue,
      events: client,
      metrics: new ControllerMetrics(),
      clock,
      logger,
      secretInformer: ({ namespace, name }) =>
        new Informer({
          name: `secret ${namespace}/${name}`,
          source: new FakeSource(
            (world.items.secrets ?? []).filter(
              (s) => s.metadata.namespace === namespace && s.metadata.name === name,
            ),
          ),
          logger,
          delay: clock.delay,
        }),
    },
  );
  controller.start();
  await controller.waitForSync();
  await settle(); // every informer has opened its watch

  const drain = async (): Promise<string[]> => {
    const done: string[] = [];
    while (queue.length > 0) {
      const key = await queue.get();
      if (key === undefined) break;
      try {
        await controller.reconcile(key);
        queue.forget(key);
      } finally {
        queue.done(key);
      }
      done.push(key);
    }
    return done;
  };

  return {
    controller,
    clock,
    queue,
    client,
    informers,
    sources,
    drain,
    stop: async () => {
      queue.shutDown();
      await controller.stop();
    },
  };
}

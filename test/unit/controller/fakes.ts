// A real Controller on in-memory informers, a recording client and a fake clock (the approach of
// bench/controller.ts): each informer is a real Informer over a ListWatcher that lists the given
// objects and then keeps its watch open for the test to push events through; the client records
// every write instead of sending it; the work queue runs on the fake clock.

import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { Controller, type ControllerInformers } from "../../../src/controller/controller.ts";
import { ControllerMetrics } from "../../../src/controller/metrics.ts";
import { outcomeKey } from "../../../src/controller/plan.ts";
import type { PolicyStatus } from "../../../src/controller/status.ts";
import {
  KubeClient,
  type AppliedObject,
  type ListResult,
  type ListWatcher,
  type WatchEvent,
} from "../../../src/kube/client.ts";
import { EventRecorder } from "../../../src/kube/events.ts";
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
  /** outcomeKey of the object: "ClusterImagePolicy/a", "ImagePolicy/ns/b". */
  readonly key: string;
  readonly status: PolicyStatus;
  /** The fake clock's time of the write. */
  readonly at: number;
}

/** Records writes instead of sending them; no request leaves the process. */
export class RecordingClient extends KubeClient {
  readonly applied: KubeObject[] = [];
  readonly statusWrites: StatusWrite[] = [];
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    // A configuration that is never dialled: every call the controller makes is overridden.
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: "fake", server: "https://127.0.0.1:1", skipTLSVerify: false }],
      users: [{ name: "fake" }],
      contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
      currentContext: "fake",
    });
    super(config);
    this.#clock = clock;
  }

  override apply(obj: KubeObject): Promise<AppliedObject> {
    this.applied.push(obj);
    return Promise.resolve({ ...obj.metadata, resourceVersion: "1" });
  }

  override patchStatus(
    _resource: Resource,
    ref: { readonly name: string; readonly namespace?: string | undefined },
    status: unknown,
  ): Promise<AppliedObject> {
    const key = outcomeKey(
      ref.namespace === undefined
        ? { kind: "ClusterImagePolicy", name: ref.name }
        : { kind: "ImagePolicy", name: ref.name, namespace: ref.namespace },
    );
    this.statusWrites.push({ key, status: status as PolicyStatus, at: this.#clock.now() });
    return Promise.resolve({ ...ref, resourceVersion: "1" });
  }

  override delete(): Promise<boolean> {
    return Promise.resolve(true);
  }

  override create(_resource: Resource, obj: KubeObject): Promise<KubeObject> {
    return Promise.resolve(obj);
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
      client,
      informers,
      queue,
      events: new EventRecorder({ client, controller: "test", instance: "test", clock, logger }),
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

// The informer's failure paths against a scripted fake ListWatcher and a fake clock: it lists, then
// watches from the list's resourceVersion; resumes from the last seen resourceVersion when a stream
// ends; lists again on 410 and reports what changed while it was disconnected (deletions too);
// retries failed lists and watches with capped backoff; never throws, never exits; stop() ends it.

import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from "vitest";
import type { ListResult, ListWatcher, WatchEvent } from "../../../src/kube/client.ts";
import type { Delay } from "../../../src/kube/clock.ts";
import { KubeError, ResourceExpiredError } from "../../../src/kube/errors.ts";
import { Informer, type InformerEvent } from "../../../src/kube/informer.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";
import { FakeClock, settle } from "./fakeClock.ts";

/** What one list or watch call does. A call with no step left hangs until the signal aborts, like
 * a healthy watch that has nothing to say: then list rejects and watch resolves (as KubeClient). */
type ListStep = ListResult | Error;
interface WatchStep {
  readonly events: readonly WatchEvent[];
  /** "end": the server closed the stream; an Error: the watch failed. */
  readonly then: "end" | Error;
}

type Call = { readonly call: "list" } | { readonly call: "watch"; readonly from: string };

class ScriptedSource implements ListWatcher {
  readonly calls: Call[] = [];
  readonly lists: ListStep[] = [];
  readonly watches: WatchStep[] = [];

  /** What list() was asked to apply to each item (the informer's transform). */
  each: ((object: KubeObject) => KubeObject) | undefined;

  list(signal: AbortSignal, each?: (object: KubeObject) => KubeObject): Promise<ListResult> {
    this.calls.push({ call: "list" });
    this.each = each;
    const step = this.lists.shift();
    if (step === undefined) return hang(signal, "reject");
    if (step instanceof Error) return Promise.reject(step);
    // As the contract says: each item comes back as each(item).
    return Promise.resolve(
      each === undefined ? step : { ...step, items: step.items.map((o) => each(o)) },
    );
  }

  watch(
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.calls.push({ call: "watch", from: resourceVersion });
    const step = this.watches.shift();
    if (step === undefined) return hang(signal, "resolve");
    for (const event of step.events) onEvent(event);
    return step.then === "end" ? Promise.resolve() : Promise.reject(step.then);
  }
}

function hang<T>(signal: AbortSignal, onAbort: "resolve" | "reject"): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    signal.addEventListener(
      "abort",
      () => {
        if (onAbort === "reject") reject(new KubeError("aborted", {}));
        else resolve(undefined as T);
      },
      { once: true },
    );
  });
}

// Builders.
function cm(name: string, resourceVersion: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "ns", resourceVersion },
  };
}
const listed = (resourceVersion: string, ...items: KubeObject[]): ListResult => ({
  items,
  resourceVersion,
});
const added = (object: KubeObject): WatchEvent => ({ type: "ADDED", object });
const modified = (object: KubeObject): WatchEvent => ({ type: "MODIFIED", object });
const deleted = (object: KubeObject): WatchEvent => ({ type: "DELETED", object });
const bookmark = (resourceVersion: string): WatchEvent => ({ type: "BOOKMARK", resourceVersion });
const gone = (): ResourceExpiredError =>
  new ResourceExpiredError("watch: too old resource version: 5 (40)", { status: 410 });

/** `added ns/a@1`, `updated ns/a@3 (was 1)`, `deleted ns/b@2`. */
function describeEvent(e: InformerEvent): string {
  const at = (o: KubeObject): string =>
    `${o.metadata.namespace ?? ""}/${o.metadata.name}@${o.metadata.resourceVersion ?? ""}`;
  return e.type === "updated"
    ? `updated ${at(e.object)} (was ${e.old.metadata.resourceVersion ?? ""})`
    : `${e.type} ${at(e.object)}`;
}

/** `ns/a@1` for each cached object, in list() order. */
function cached(informer: Informer): string[] {
  return informer
    .list()
    .map(
      (o) => `${o.metadata.namespace ?? ""}/${o.metadata.name}@${o.metadata.resourceVersion ?? ""}`,
    );
}

interface Harness {
  readonly informer: Informer;
  readonly source: ScriptedSource;
  readonly clock: FakeClock;
  readonly events: string[];
  /** Every backoff the informer asked for, in ms. */
  readonly delays: number[];
}

function harness(
  script: (source: ScriptedSource) => void,
  backoff = { initialBackoffMs: 100, maxBackoffMs: 1_000 },
  transform?: (object: KubeObject) => KubeObject,
): Harness {
  const source = new ScriptedSource();
  script(source);
  const clock = new FakeClock();
  const delays: number[] = [];
  const delay: Delay = (ms, signal) => {
    delays.push(ms);
    return clock.delay(ms, signal);
  };
  const informer = new Informer({
    name: "configmaps ns",
    source,
    logger: pino({ level: "silent" }),
    delay,
    ...backoff,
    ...(transform === undefined ? {} : { transform }),
  });
  const events: string[] = [];
  informer.onEvent((e) => events.push(describeEvent(e)));
  return { informer, source, clock, events, delays };
}

const running: Informer[] = [];
let exit: MockInstance<typeof process.exit>;
beforeEach(() => {
  exit = vi.spyOn(process, "exit").mockImplementation((code) => {
    throw new Error(`process.exit(${String(code)}) called`);
  });
});
afterEach(async () => {
  for (const informer of running.splice(0)) await informer.stop();
  expect(exit).not.toHaveBeenCalled();
  exit.mockRestore();
});

/** Starts the informer and lets it run until it waits on the source or the clock. */
async function start(h: Harness): Promise<void> {
  running.push(h.informer);
  h.informer.start();
  await settle();
}

describe("Informer", () => {
  it("lists, then watches from the list's resourceVersion; watch events update the cache", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("a", "3"), cm("b", "7")));
      s.watches.push({
        events: [added(cm("c", "11")), modified(cm("a", "12")), deleted(cm("b", "13"))],
        then: "end",
      });
    });
    expect(h.informer.synced).toBe(false);
    await start(h);

    expect(h.source.calls).toEqual([
      { call: "list" },
      { call: "watch", from: "10" },
      { call: "watch", from: "13" },
    ]);
    expect(h.informer.synced).toBe(true);
    expect(h.events).toEqual([
      "added ns/a@3",
      "added ns/b@7",
      "added ns/c@11",
      "updated ns/a@12 (was 3)",
      "deleted ns/b@13",
    ]);
    expect(cached(h.informer)).toEqual(["ns/a@12", "ns/c@11"]);
    expect(h.informer.get("a", "ns")?.metadata.resourceVersion).toBe("12");
    expect(h.informer.get("b", "ns")).toBeUndefined();
    expect(h.informer.resourceVersion).toBe("13");
  });

  it("lists in name order after every event, an update in place of the object it replaces", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("c", "1"), cm("a", "2"), cm("b", "3")));
      s.watches.push({
        events: [
          modified(cm("b", "11")),
          added(cm("aa", "12")),
          modified(cm("a", "13")),
          deleted(cm("c", "14")),
          modified(cm("aa", "15")),
          added(cm("c", "16")),
        ],
        then: "end",
      });
    });
    // list() right after each event (the sorted list is kept between events).
    const seen: string[][] = [];
    h.informer.onEvent(() => seen.push(cached(h.informer)));
    await start(h);
    expect(seen).toEqual([
      ["ns/c@1"],
      ["ns/a@2", "ns/c@1"],
      ["ns/a@2", "ns/b@3", "ns/c@1"],
      ["ns/a@2", "ns/b@11", "ns/c@1"],
      ["ns/a@2", "ns/aa@12", "ns/b@11", "ns/c@1"],
      ["ns/a@13", "ns/aa@12", "ns/b@11", "ns/c@1"],
      ["ns/a@13", "ns/aa@12", "ns/b@11"],
      ["ns/a@13", "ns/aa@15", "ns/b@11"],
      ["ns/a@13", "ns/aa@15", "ns/b@11", "ns/c@16"],
    ]);
    // A copy each time: a caller that changes its list changes nothing here.
    h.informer.list().pop();
    expect(cached(h.informer)).toEqual(["ns/a@13", "ns/aa@15", "ns/b@11", "ns/c@16"]);
  });

  it("hands its transform to the list (applied page by page) and applies it to watch events", async () => {
    const seen: string[] = [];
    const labelled = (o: KubeObject): KubeObject => {
      seen.push(o.metadata.name);
      return { ...o, metadata: { ...o.metadata, labels: { kept: "yes" } } };
    };
    const h = harness(
      (s) => {
        s.lists.push(listed("10", cm("a", "3"), cm("b", "7")));
        s.watches.push({ events: [added(cm("c", "11"))], then: "end" });
      },
      undefined,
      labelled,
    );
    await start(h);
    expect(h.source.each).toBe(labelled);
    // Once each: the informer does not transform again what the list returned.
    expect(seen).toEqual(["a", "b", "c"]);
    expect(h.informer.list().map((o) => o.metadata.labels?.["kept"])).toEqual([
      "yes",
      "yes",
      "yes",
    ]);
  });
  it("resumes the watch from the last seen resourceVersion, bookmarks included, without listing again", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("a", "3")));
      // A stream that ends after a change, one that ends after only a bookmark, one with nothing.
      s.watches.push({ events: [modified(cm("a", "15"))], then: "end" });
      s.watches.push({ events: [bookmark("40")], then: "end" });
      s.watches.push({ events: [], then: "end" });
    });
    await start(h);

    expect(h.source.calls).toEqual([
      { call: "list" },
      { call: "watch", from: "10" },
      { call: "watch", from: "15" },
      { call: "watch", from: "40" },
      { call: "watch", from: "40" },
    ]);
    expect(h.delays).toEqual([]);
    expect(h.events).toEqual(["added ns/a@3", "updated ns/a@15 (was 3)"]);
    expect(cached(h.informer)).toEqual(["ns/a@15"]);
    expect(h.informer.resourceVersion).toBe("40");
  });

  // 410 as a watch ERROR event (ResourceExpiredError) and as an HTTP 410 answer to the watch
  // request itself, which KubeClient.watch reports as a KubeError with status 410.
  const expiries: [string, KubeError][] = [
    ["a 410 ERROR event (ResourceExpiredError)", gone()],
    [
      "an HTTP 410 response (KubeError status 410)",
      new KubeError("watch: HTTP 410", { status: 410 }),
    ],
  ];
  it.each(expiries)(
    "on %s lists again and reports what changed while disconnected, deletions included",
    async (_, error) => {
      const h = harness((s) => {
        s.lists.push(listed("10", cm("keep", "1"), cm("change", "2"), cm("remove", "3")));
        s.watches.push({ events: [bookmark("20")], then: error });
        // Meanwhile: "remove" deleted, "change" modified, "new" created, "keep" untouched.
        s.lists.push(listed("50", cm("change", "45"), cm("keep", "1"), cm("new", "48")));
      });
      await start(h);

      expect(h.source.calls).toEqual([
        { call: "list" },
        { call: "watch", from: "10" },
        { call: "list" },
        { call: "watch", from: "50" },
      ]);
      expect(h.delays).toEqual([]);
      expect(h.events.slice(3)).toEqual([
        "updated ns/change@45 (was 2)",
        "added ns/new@48",
        "deleted ns/remove@3",
      ]);
      expect(cached(h.informer)).toEqual(["ns/change@45", "ns/keep@1", "ns/new@48"]);
      expect(h.informer.get("remove", "ns")).toBeUndefined();
      expect(h.informer.synced).toBe(true);
    },
  );

  it("backs off when a watch expires again right after a re-list, instead of re-listing in a loop", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("a", "1")));
      s.watches.push({ events: [], then: gone() });
      s.lists.push(listed("11", cm("a", "1")));
      s.watches.push({ events: [], then: gone() });
      s.lists.push(listed("12", cm("a", "1")));
    });
    await start(h);
    // The first 410 after the initial list: nothing came through that watch, so back off.
    expect(h.delays).toEqual([100]);
    await h.clock.advance(100);
    await settle();
    expect(h.delays).toEqual([100, 200]);
    await h.clock.advance(200);
    await settle();
    expect(h.source.calls).toEqual([
      { call: "list" },
      { call: "watch", from: "10" },
      { call: "list" },
      { call: "watch", from: "11" },
      { call: "list" },
      { call: "watch", from: "12" },
    ]);
    expect(cached(h.informer)).toEqual(["ns/a@1"]);
  });

  it("retries a failing list with growing, capped backoff; synced only once a list succeeds", async () => {
    const h = harness((s) => {
      s.lists.push(
        new KubeError("list: HTTP 500: etcdserver: request timed out", { status: 500 }),
        new KubeError("list: connect ECONNREFUSED 10.96.0.1:443", {
          cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
        }),
        new KubeError("list: HTTP 503", { status: 503 }),
        new KubeError("list: HTTP 500", { status: 500 }),
        new KubeError("list: HTTP 500", { status: 500 }),
        new KubeError("list: HTTP 500", { status: 500 }),
        listed("10", cm("a", "3")),
      );
    });
    let syncedWhenResolved: boolean | undefined;
    const sync = h.informer.waitForSync().then(() => {
      syncedWhenResolved = h.informer.synced;
    });
    expect(() => {
      h.informer.start();
    }).not.toThrow();
    running.push(h.informer);
    await settle();

    // 100, 200, 400, 800, then capped at 1000; the list is retried only when each delay elapses.
    const expected = [100, 200, 400, 800, 1_000, 1_000];
    for (const [i, ms] of expected.entries()) {
      expect(h.delays).toEqual(expected.slice(0, i + 1));
      expect(h.source.calls.filter((c) => c.call === "list")).toHaveLength(i + 1);
      expect(h.informer.synced).toBe(false);
      expect(h.informer.list()).toEqual([]);
      expect(syncedWhenResolved).toBeUndefined();
      await h.clock.advance(ms - 1);
      expect(h.source.calls.filter((c) => c.call === "list")).toHaveLength(i + 1);
      await h.clock.advance(1);
    }

    await sync;
    expect(syncedWhenResolved).toBe(true);
    expect(h.informer.synced).toBe(true);
    expect(cached(h.informer)).toEqual(["ns/a@3"]);
    expect(h.events).toEqual(["added ns/a@3"]);
    expect(h.source.calls.at(-1)).toEqual({ call: "watch", from: "10" });
    await expect(h.informer.waitForSync()).resolves.toBeUndefined();
  });

  it("backs off and resumes from the last resourceVersion after other watch errors, keeping its cache", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("a", "3")));
      s.watches.push(
        {
          events: [modified(cm("a", "11"))],
          then: new KubeError("watch: error event 500: internal", { status: 500 }),
        },
        { events: [], then: new KubeError("watch: HTTP 403: forbidden", { status: 403 }) },
        {
          events: [],
          then: new KubeError("watch: socket hang up", { cause: new Error("ECONNRESET") }),
        },
        // Not a KubeError at all: still only logged and retried.
        { events: [], then: new TypeError("terminated") },
        { events: [added(cm("b", "12"))], then: "end" },
      );
    });
    await start(h);
    await h.clock.advance(100 + 200 + 400 + 800);

    expect(h.source.calls).toEqual([
      { call: "list" },
      { call: "watch", from: "10" },
      { call: "watch", from: "11" },
      { call: "watch", from: "11" },
      { call: "watch", from: "11" },
      { call: "watch", from: "11" },
      { call: "watch", from: "12" },
    ]);
    expect(h.delays).toEqual([100, 200, 400, 800]);
    expect(h.events).toEqual(["added ns/a@3", "updated ns/a@11 (was 3)", "added ns/b@12"]);
    expect(cached(h.informer)).toEqual(["ns/a@11", "ns/b@12"]);
    expect(h.informer.synced).toBe(true);
  });

  it("starts backing off from the initial delay again once the list succeeds", async () => {
    const h = harness((s) => {
      s.lists.push(
        new KubeError("list: HTTP 500", { status: 500 }),
        new KubeError("list: HTTP 500", { status: 500 }),
        new KubeError("list: HTTP 500", { status: 500 }),
        listed("10", cm("a", "3")),
      );
      // Healthy for a while (it delivered a change), then the connection drops.
      s.watches.push({
        events: [modified(cm("a", "11"))],
        then: new KubeError("watch: socket hang up", {}),
      });
    });
    await start(h);
    await h.clock.advance(100 + 200 + 400);

    expect(h.source.calls).toEqual([
      { call: "list" },
      { call: "list" },
      { call: "list" },
      { call: "list" },
      { call: "watch", from: "10" },
    ]);
    expect(h.delays).toEqual([100, 200, 400, 100]);
    await h.clock.advance(100);
    expect(h.source.calls.at(-1)).toEqual({ call: "watch", from: "11" });
  });

  it("starts backing off from the initial delay again once a watch delivers anything", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("a", "3")));
      s.watches.push(
        { events: [], then: new KubeError("watch: HTTP 500", { status: 500 }) },
        { events: [], then: new KubeError("watch: HTTP 500", { status: 500 }) },
        { events: [], then: new KubeError("watch: HTTP 500", { status: 500 }) },
        // Healthy again (a bookmark is enough), then the connection drops.
        { events: [bookmark("30")], then: new KubeError("watch: socket hang up", {}) },
      );
    });
    await start(h);
    await h.clock.advance(100 + 200 + 400);

    expect(h.delays).toEqual([100, 200, 400, 100]);
    await h.clock.advance(100);
    expect(h.source.calls.at(-1)).toEqual({ call: "watch", from: "30" });
  });

  it("keeps going when a handler throws", async () => {
    const h = harness((s) => {
      s.lists.push(listed("10", cm("a", "3")));
      s.watches.push({ events: [added(cm("b", "11"))], then: "end" });
    });
    h.informer.onEvent(() => {
      throw new Error("handler bug");
    });
    await start(h);

    expect(h.events).toEqual(["added ns/a@3", "added ns/b@11"]);
    expect(cached(h.informer)).toEqual(["ns/a@3", "ns/b@11"]);
    expect(h.source.calls.at(-1)).toEqual({ call: "watch", from: "11" });
  });

  describe("stop()", () => {
    const cases: [string, (s: ScriptedSource) => void][] = [
      ["while a list hangs", () => undefined],
      [
        "while a watch hangs",
        (s) => {
          s.lists.push(listed("10"));
        },
      ],
      [
        "while it waits to retry",
        (s) => {
          s.lists.push(new KubeError("list: HTTP 500", { status: 500 }));
        },
      ],
    ];
    it.each(cases)("ends the loop %s, and nothing is called after", async (_, script) => {
      const h = harness(script);
      await start(h);
      const callsBefore = h.source.calls.length;
      const pending = h.informer.waitForSync();

      await expect(h.informer.stop()).resolves.toBeUndefined();
      await expect(pending).resolves.toBeUndefined();
      await h.clock.advance(60_000);
      expect(h.source.calls).toHaveLength(callsBefore);
      expect(h.clock.pendingTimers).toBe(0);
    });

    it("can be called before start and twice", async () => {
      const h = harness(() => undefined);
      await h.informer.stop();
      await start(h);
      await h.informer.stop();
      await h.informer.stop();
      expect(h.source.calls).toEqual([{ call: "list" }]);
    });
  });
});

// A list+watch cache of one resource. It lists, then watches from the list's resourceVersion
// (bookmarks keep it fresh), resumes the watch from the last resourceVersion when the stream ends,
// lists again on 410 Gone, and on any other error retries with capped exponential backoff. It
// never stops on its own and never exits the process: only stop() ends it.
//
// Handlers are called after the cache is updated, so a handler that reads the cache sees the
// change. A re-list reports objects that disappeared meanwhile as deletions.

import type { Logger } from "./log.ts";
import type { ListWatcher, WatchEvent } from "./client.ts";
import { systemDelay, type Delay } from "./clock.ts";
import { isGone, ResourceExpiredError } from "./errors.ts";
import { objectKey, type KubeObject } from "./objects.ts";

export type InformerEvent =
  | { readonly type: "added"; readonly object: KubeObject }
  | { readonly type: "updated"; readonly object: KubeObject; readonly old: KubeObject }
  | { readonly type: "deleted"; readonly object: KubeObject };

export type InformerHandler = (event: InformerEvent) => void;

export interface InformerOptions {
  /** For logs and errors, e.g. "configmaps imagepolicy-system". */
  readonly name: string;
  readonly source: ListWatcher;
  readonly logger: Logger;
  readonly delay?: Delay;
  /** First retry delay after an error (default 500 ms), doubled up to maxBackoffMs (30 s). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** What the cache keeps of each object (client-go's SetTransform): e.g. without
   * metadata.managedFields, or only the fields a process reads. Default: the object as sent. */
  readonly transform?: (object: KubeObject) => KubeObject;
}

export class Informer {
  readonly name: string;
  readonly #source: ListWatcher;
  readonly #logger: Logger;
  readonly #delay: Delay;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #transform: (object: KubeObject) => KubeObject;
  readonly #cache = new Map<string, KubeObject>();
  #sorted: KubeObject[] | undefined;
  readonly #handlers = new Set<InformerHandler>();
  readonly #syncWaiters = new Set<() => void>();
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #synced = false;
  #resourceVersion = "";

  constructor(options: InformerOptions) {
    this.name = options.name;
    this.#source = options.source;
    this.#logger = options.logger;
    this.#delay = options.delay ?? systemDelay;
    this.#initialBackoffMs = options.initialBackoffMs ?? 500;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#transform = options.transform ?? ((o) => o);
  }

  /** Registers a handler; returns a function that removes it. */
  onEvent(handler: InformerHandler): () => void {
    this.#handlers.add(handler);
    return () => {
      this.#handlers.delete(handler);
    };
  }

  /** Starts listing and watching in the background. */
  start(): void {
    if (this.#loop !== undefined) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = this.#run(abort.signal);
  }

  /** Stops the watch; the cache keeps its last content. */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    this.#loop = undefined;
    for (const resolve of this.#syncWaiters) resolve();
    this.#syncWaiters.clear();
  }

  /** True once the first list has filled the cache. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves when the first list has filled the cache (or the informer stops). */
  waitForSync(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.add(resolve));
  }

  /** Every cached object, sorted by namespace/name (sorted once per change of the cache). */
  list(): KubeObject[] {
    this.#sorted ??= [...this.#cache.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
    return [...this.#sorted];
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.#cache.get(objectKey({ name, namespace }));
  }

  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  async #run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    // True from a re-list until the watch after it delivers something: a 410 in that window
    // means re-listing does not help right now, so it backs off instead of hammering the server.
    let freshList = false;
    let expiredStreak = 0;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === "") {
          await this.#relist(signal);
          failures = 0;
          freshList = true;
        }
        await this.#source.watch(
          this.#resourceVersion,
          (e) => {
            // A stream that delivers anything is healthy: the next failure backs off from the start.
            failures = 0;
            freshList = false;
            expiredStreak = 0;
            this.#apply(e);
          },
          signal,
        );
        failures = 0;
      } catch (err) {
        if (isAborted(signal)) break;
        // A 410 ERROR event (ResourceExpiredError), or an HTTP 410 answer to the watch request,
        // which KubeClient.watch reports as a KubeError with status 410.
        const expired = err instanceof ResourceExpiredError || isGone(err);
        if (expired) {
          this.#logger.info({ informer: this.name }, "watch expired (410); listing again");
          this.#resourceVersion = "";
          if (!freshList) continue;
          const wait = Math.min(this.#initialBackoffMs * 2 ** expiredStreak, this.#maxBackoffMs);
          expiredStreak += 1;
          try {
            await this.#delay(wait, signal);
          } catch {
            break;
          }
          continue;
        }
        const wait = Math.min(this.#initialBackoffMs * 2 ** failures, this.#maxBackoffMs);
        failures += 1;
        this.#logger.warn(
          { informer: this.name, err, retryInMs: wait },
          "list/watch failed; retrying",
        );
        try {
          await this.#delay(wait, signal);
        } catch {
          break;
        }
      }
    }
  }

  async #relist(signal: AbortSignal): Promise<void> {
    // Transformed page by page (the source applies it): the list is never held whole.
    const result = await this.#source.list(signal, this.#transform);
    const seen = new Set<string>();
    for (const object of result.items) {
      const key = objectKey(object.metadata);
      seen.add(key);
      this.#upsert(key, object);
    }
    for (const [key, object] of [...this.#cache]) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#sorted = undefined;
        this.#emit({ type: "deleted", object });
      }
    }
    this.#resourceVersion = result.resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const resolve of this.#syncWaiters) resolve();
      this.#syncWaiters.clear();
    }
  }

  #apply(event: WatchEvent): void {
    if (event.type === "BOOKMARK") {
      this.#resourceVersion = event.resourceVersion;
      return;
    }
    const object = this.#transform(event.object);
    const key = objectKey(object.metadata);
    if (event.type === "DELETED") {
      const old = this.#cache.get(key);
      this.#cache.delete(key);
      this.#sorted = undefined;
      if (old !== undefined) this.#emit({ type: "deleted", object });
    } else {
      this.#upsert(key, object);
    }
    this.#resourceVersion = object.metadata.resourceVersion ?? this.#resourceVersion;
  }

  #upsert(key: string, object: KubeObject): void {
    const old = this.#cache.get(key);
    this.#cache.set(key, object);
    // An update keeps the order: the object is replaced where it is, rather than sorting every
    // key again on the next list() (the agent lists 500 layer ConfigMaps per change).
    const sorted = this.#sorted;
    const at = old === undefined || sorted === undefined ? -1 : sorted.indexOf(old);
    if (sorted !== undefined && at >= 0) sorted[at] = object;
    else this.#sorted = undefined;
    if (old === undefined) this.#emit({ type: "added", object });
    else if (old.metadata.resourceVersion !== object.metadata.resourceVersion) {
      this.#emit({ type: "updated", object, old });
    }
  }

  #emit(event: InformerEvent): void {
    for (const handler of this.#handlers) {
      try {
        handler(event);
      } catch (err) {
        this.#logger.error({ informer: this.name, err }, "informer handler threw");
      }
    }
  }
}

/** Read through a call: TypeScript narrows `signal.aborted` after one check, but it changes. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

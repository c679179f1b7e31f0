// The kubelet's pod Events as a stream, with no cache: list, then watch from the list's
// resourceVersion (bookmarks keep it fresh), resume from the last resourceVersion when the stream
// ends, list again on 410 Gone, back off on errors. Unlike an Informer it keeps no object: the
// Events of a large cluster would otherwise sit in the controller's memory for their hour of
// life. Objects repeat after a re-list: the consumer deduplicates (explainer.ts).

import {
  type Delay,
  isGone,
  type KubeObject,
  type ListWatcher,
  ResourceExpiredError,
} from "../kube/index.ts";

export interface StreamLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface EventStreamOptions {
  readonly source: ListWatcher;
  readonly delay: Delay;
  readonly logger: StreamLogger;
  /** First retry delay after an error (default 1 s), doubled up to maxBackoffMs (60 s). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

/** Calls `onObject` for every listed, added and modified object until `signal` aborts. */
export async function streamObjects(
  o: EventStreamOptions,
  onObject: (object: KubeObject) => void,
  signal: AbortSignal,
): Promise<void> {
  const initial = o.initialBackoffMs ?? 1_000;
  const max = o.maxBackoffMs ?? 60_000;
  let resourceVersion = "";
  let failures = 0;
  while (!signal.aborted) {
    try {
      if (resourceVersion === "") {
        const listed = await o.source.list(signal);
        for (const item of listed.items) onObject(item);
        resourceVersion = listed.resourceVersion;
      }
      await o.source.watch(
        resourceVersion,
        (e) => {
          failures = 0;
          if (e.type === "BOOKMARK") {
            resourceVersion = e.resourceVersion;
            return;
          }
          resourceVersion = e.object.metadata.resourceVersion ?? resourceVersion;
          if (e.type !== "DELETED") onObject(e.object);
        },
        signal,
      );
    } catch (err) {
      if (isAborted(signal)) break;
      if (err instanceof ResourceExpiredError || isGone(err)) {
        o.logger.info({ err }, "event watch expired (410); listing again");
        resourceVersion = "";
      }
      const wait = Math.min(initial * 2 ** failures, max);
      failures += 1;
      o.logger.warn({ err, retryInMs: wait }, "event list/watch failed; retrying");
      try {
        await o.delay(wait, signal);
      } catch {
        break;
      }
    }
  }
}

/** Read through a call: TypeScript narrows `signal.aborted` after one check, but it changes. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

// Time as a dependency (docs/style.md habit 9): the work queue, informers and the leader elector take a
// Clock and a Delay so tests drive them with a fake clock instead of waiting.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as `signal` aborts. */
export type Delay = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Runs `fn` after `ms`; the returned function cancels it. */
export type Schedule = (fn: () => void, ms: number) => () => void;

export const systemClock: Clock = { now: () => Date.now() };

export const systemDelay: Delay = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export const systemSchedule: Schedule = (fn, ms) => {
  const timer = setTimeout(fn, ms);
  return () => {
    clearTimeout(timer);
  };
};

export class AbortedError extends Error {
  override readonly name = "AbortedError";
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new AbortedError("aborted", { cause: reason });
}

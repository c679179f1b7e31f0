// Polling for tests and scripts: the probe returns a value when the awaited state is reached and
// undefined (or throws) while it is not. On timeout the error names what was awaited, the last
// error the probe threw, and whatever `context` adds (logs, object dumps).

import { setTimeout as delay } from "node:timers/promises";

export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  readonly context?: () => string | Promise<string>;
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const context = options.context === undefined ? "" : `\n${await options.context()}`;
      throw new WaitTimeoutError(
        `timed out after ${String(timeoutMs)} ms waiting for ${what}` +
          `${last instanceof Error ? `: ${last.message}` : ""}${context}`,
        { cause: last },
      );
    }
    await delay(options.intervalMs ?? 100);
  }
}

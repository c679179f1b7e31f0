// The agent's logger: one JSON object per line on stdout, in pino's layout ({"level":30,"time":
// ..., bindings, fields, "msg"}), so log tooling reads the agent and the controller alike. Errors
// (an `err` field, or any Error value) are written as {type, message, stack, cause}.

import type { LogFn, Logger } from "../kube/index.ts";

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
export type LevelName = keyof typeof LEVELS | "silent";

export class LogLevelError extends Error {
  override readonly name = "LogLevelError";
}

export function parseLevel(s: string): LevelName {
  switch (s) {
    case "debug":
    case "info":
    case "warn":
    case "error":
    case "fatal":
    case "silent":
      return s;
    default:
      throw new LogLevelError(
        `unknown log level ${JSON.stringify(s)} (debug, info, warn, error, fatal, silent)`,
      );
  }
}

function serialize(v: unknown, depth = 0): unknown {
  if (v instanceof Error) {
    return {
      type: v.name,
      message: v.message,
      stack: v.stack,
      ...(v.cause === undefined || depth > 3 ? {} : { cause: serialize(v.cause, depth + 1) }),
    };
  }
  return v;
}

export function jsonLogger(options: {
  readonly level: LevelName;
  readonly base: Readonly<Record<string, unknown>>;
  readonly write: (line: string) => void;
  readonly now: () => number;
}): Logger {
  const min = options.level === "silent" ? Infinity : LEVELS[options.level];
  const make = (name: keyof typeof LEVELS): LogFn => {
    const level = LEVELS[name];
    const fn = (a: object | string, msg?: string): void => {
      if (level < min) return;
      const fields: Record<string, unknown> = {};
      if (typeof a === "string") msg = a;
      else for (const [k, v] of Object.entries(a)) fields[k] = serialize(v);
      let line: string;
      try {
        line = JSON.stringify({
          level,
          time: options.now(),
          ...options.base,
          ...fields,
          ...(msg === undefined ? {} : { msg }),
        });
      } catch {
        line = JSON.stringify({
          level,
          time: options.now(),
          ...options.base,
          msg: `${msg ?? ""} (fields not serialisable)`,
        });
      }
      options.write(`${line}\n`);
    };
    return fn;
  };
  return {
    debug: make("debug"),
    info: make("info"),
    warn: make("warn"),
    error: make("error"),
    fatal: make("fatal"),
  };
}

// What the adapter (and the processes built on it) log through: pino's Logger satisfies it (the
// controller), and so does the agent's small JSON logger (src/agent/log.ts), which spares every
// node pino's resident memory (docs/scale.md).

export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
  readonly fatal: LogFn;
}

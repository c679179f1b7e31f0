// A daemon started by a test (etcd, kube-apiserver, CRI-O, the kubelet, ...): its output appended
// to a log file, readiness polled with a probe, stopped with SIGTERM then SIGKILL. It runs under
// `setpriv --pdeathsig SIGKILL`, so the kernel kills it if the test process dies without cleaning
// up (nsenter and unshare exec in place, so the signal reaches the daemon they start).
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";

/** The process exited, or did not become ready in time. */
export class ProcessStartError extends Error {
  override readonly name = "ProcessStartError";
}

export interface ManagedProcessOptions {
  /** Environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** SIGTERM, then SIGKILL after this long (default 3 s). */
  readonly stopGraceMs?: number;
}

export class ManagedProcess {
  #exitCode: number | null | undefined = undefined;
  readonly #exited: Promise<void>;
  readonly #child: ChildProcess;
  readonly #stopGraceMs: number;

  readonly name: string;
  readonly logPath: string;
  readonly pid: number;

  private constructor(
    name: string,
    logPath: string,
    child: ChildProcess,
    pid: number,
    stopGraceMs: number,
  ) {
    this.name = name;
    this.logPath = logPath;
    this.pid = pid;
    this.#child = child;
    this.#stopGraceMs = stopGraceMs;
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exitCode = code ?? (signal === null ? -1 : -2);
        resolve();
      });
      child.once("error", () => {
        this.#exitCode ??= -1;
        resolve();
      });
    });
  }

  static spawn(
    name: string,
    file: string,
    args: readonly string[],
    logPath: string,
    options: ManagedProcessOptions = {},
  ): ManagedProcess {
    mkdirSync(path.dirname(logPath), { recursive: true });
    // Opened synchronously: spawn needs a file descriptor.
    const fd = openSync(logPath, "a");
    try {
      const child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", file, ...args], {
        stdio: ["ignore", fd, fd],
        ...(options.env === undefined ? {} : { env: options.env }),
      });
      if (child.pid === undefined) throw new ProcessStartError(`cannot spawn ${name} (${file})`);
      return new ManagedProcess(name, logPath, child, child.pid, options.stopGraceMs ?? 3_000);
    } finally {
      closeSync(fd);
    }
  }

  get exited(): boolean {
    return this.#exitCode !== undefined;
  }

  /**
   * Polls `probe` until it answers true. Throws when the process exits first or the time runs
   * out, with `context()` (default: the last lines of its own log).
   */
  async waitReady(
    timeoutMs: number,
    probe: () => Promise<boolean>,
    context: () => Promise<string> = () => this.logTail(),
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      if (this.exited) {
        throw new ProcessStartError(
          `${this.name} exited (code ${String(this.#exitCode)}) before becoming ready; ` +
            `log ${this.logPath}:\n${await context()}`,
        );
      }
      try {
        if (await probe()) return;
      } catch (error) {
        last = error;
      }
      await delay(250);
    }
    throw new ProcessStartError(
      `${this.name} did not become ready within ${String(timeoutMs)} ms; log ${this.logPath}:\n${await context()}`,
      { cause: last },
    );
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), this.#stopGraceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  killNow(): void {
    if (!this.exited) this.#child.kill("SIGKILL");
  }

  async logTail(lines = 60): Promise<string> {
    try {
      const text = await readFile(this.logPath, "utf8");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    } catch (error) {
      return `(cannot read ${this.logPath}: ${String(error)})`;
    }
  }
}

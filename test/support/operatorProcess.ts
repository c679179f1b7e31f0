// The controller and the agent as child processes (`node src/cli/main.ts controller|agent`), as
// test/apiserver does it, with their output in a log file under the test's directory.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const node = path.join(repoRoot, "node_modules/.bin/node");
const main = path.join(repoRoot, "src/cli/main.ts");

export class OperatorProcessError extends Error {
  override readonly name = "OperatorProcessError";
}

export interface OperatorProcess {
  readonly name: string;
  readonly logPath: string;
  /** Exit code, or null when killed by a signal; pending while it runs. */
  readonly exited: Promise<number | null>;
  readonly running: () => boolean;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  logTail(lines?: number): Promise<string>;
}

/** Runs `imagepolicy <command> <args>`; output appended to `logPath`. */
export function startOperatorProcess(
  name: string,
  command: "controller" | "agent",
  args: readonly string[],
  logPath: string,
): OperatorProcess {
  const fd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    // setpriv --pdeathsig: the kernel kills the child if the test process dies first.
    child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", node, main, command, ...args], {
      cwd: repoRoot,
      stdio: ["ignore", fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      done = true;
      resolve(code);
    });
    child.once("error", () => {
      done = true;
      resolve(null);
    });
  });
  return {
    name,
    logPath,
    exited,
    running: () => !done,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (!done) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async logTail(lines = 30) {
      const text = await readFile(logPath, "utf8").catch((e: unknown) => `(no log: ${String(e)})`);
      return `--- ${name} (${logPath}) ---\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`;
    },
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => {
        if (typeof a === "object" && a !== null) resolve(a.port);
        else reject(new OperatorProcessError("no free port"));
      });
    });
  });
}

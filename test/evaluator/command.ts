// Running the harness's external tools (skopeo, cosign, the hack/ scripts) as child processes.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface CommandResult {
  /** Exit code; null when the process was killed by a signal. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command could not be run, or exited non-zero where success was required. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  readonly result: CommandResult | undefined;
  constructor(message: string, result: CommandResult | undefined, options?: ErrorOptions) {
    super(message, options);
    this.result = result;
  }
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Milliseconds; the process is killed after it. Default 120 s. */
  readonly timeout?: number;
}

/**
 * Proxy settings that make any attempt to reach a host other than the local registry fail at
 * once: Go (and most clients) never proxy localhost and loopback addresses, and everything else
 * goes to a closed port. The tests must never depend on, or leak to, the Internet.
 */
export function offlineEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const trap = "http://127.0.0.1:9";
  return {
    ...process.env,
    HTTP_PROXY: trap,
    HTTPS_PROXY: trap,
    http_proxy: trap,
    https_proxy: trap,
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
    ...extra,
  };
}

function isExecError(
  err: unknown,
): err is Error & { code?: unknown; stdout?: unknown; stderr?: unknown; killed?: unknown } {
  return err instanceof Error;
}

/** Run a command and report its exit code; throws only when it could not be run at all. */
export async function runCommand(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      timeout: options.timeout ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
      encoding: "utf8",
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (isExecError(err) && typeof err.code === "number") {
      return {
        code: err.code,
        stdout: typeof err.stdout === "string" ? err.stdout : "",
        stderr: typeof err.stderr === "string" ? err.stderr : "",
      };
    }
    if (isExecError(err) && err.killed === true) {
      const result: CommandResult = {
        code: null,
        stdout: typeof err.stdout === "string" ? err.stdout : "",
        stderr: typeof err.stderr === "string" ? err.stderr : "",
      };
      throw new CommandError(`${file} was killed (timeout?): ${outputOf(result)}`, result, {
        cause: err,
      });
    }
    throw new CommandError(`cannot run ${file}`, undefined, { cause: err });
  }
}

/** Run a command that must succeed; returns its stdout. */
export async function mustRun(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) {
    throw new CommandError(
      `${file} ${args.join(" ")} exited with ${String(result.code)}: ${outputOf(result)}`,
      result,
    );
  }
  return result.stdout;
}

export function outputOf(result: CommandResult): string {
  return `${result.stderr.trim()}\n${result.stdout.trim()}`.trim();
}

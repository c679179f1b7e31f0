// The command-line tools the tests run (helm, promtool, promql-metrics, kstatus, kubectl), each
// built or found by its hack/tools/<name>.sh script, which prints the tool's bin directory. A
// script that fails makes the test fail (never skip): ToolError carries its stderr.

import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const execFileAsync = promisify(execFile);

export class ToolError extends Error {
  override readonly name = "ToolError";
}

/** The bin directory hack/tools/<script> prints (building the tool on first use). */
export async function toolBin(script: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(path.join(repoRoot, "hack/tools", script), {
      maxBuffer: 1 << 20,
    });
    return stdout.trim();
  } catch (cause) {
    const stderr =
      typeof cause === "object" && cause !== null && "stderr" in cause ? String(cause.stderr) : "";
    throw new ToolError(`hack/tools/${script} failed:\n${stderr.slice(-4000)}`, { cause });
  }
}

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `file args` with `stdin`; never rejects for a non-zero exit (the caller asserts). */
export function runTool(
  file: string,
  args: readonly string[],
  opts: { readonly stdin?: string; readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      cwd: opts.cwd ?? repoRoot,
      env: opts.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("error", (cause) => {
      reject(new ToolError(`cannot run ${file}`, { cause }));
    });
    child.once("close", (code) => {
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    child.stdin.end(opts.stdin ?? "");
  });
}

/** runTool, rejecting with the output when the exit code is not 0. */
export async function runToolOk(
  file: string,
  args: readonly string[],
  opts: Parameters<typeof runTool>[2] = {},
): Promise<string> {
  const r = await runTool(file, args, opts);
  if (r.code !== 0) {
    throw new ToolError(
      `${path.basename(file)} ${args.join(" ")}: exit ${String(r.code)}\n${r.stderr}${r.stdout}`,
    );
  }
  return r.stdout;
}

// Running a tool to completion (crictl, crio, the hack/tools scripts): its exit code and output,
// never an exception for a non-zero exit. A tool that cannot be started at all throws.
import { execFile } from "node:child_process";

export interface CommandResult {
  /** Exit code; null when the process was killed by a signal (timeout). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The tool could not be run at all (missing binary, permissions). */
export class ExecToolError extends Error {
  override readonly name = "ExecToolError";
}

export function execTool(
  file: string,
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs: number },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        ...(options.env === undefined ? {} : { env: options.env }),
        timeout: options.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8",
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        if (typeof err.code === "number") {
          resolve({ code: err.code, stdout, stderr });
          return;
        }
        if (err.killed === true || err.signal !== undefined) {
          resolve({ code: null, stdout, stderr });
          return;
        }
        reject(new ExecToolError(`cannot run ${file}`, { cause: err }));
      },
    );
  });
}

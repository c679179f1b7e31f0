// `imagepolicy validate -f <file-or-dir>... [--crio-version X.Y] [-o json]`
// Everything `compile` checks, without writing: what the API server would refuse at admission
// (reason Invalid, the same field paths and messages: src/api/parse.ts) and what only the
// compiler can judge (key material, Secrets, CRI-O version, lookaside conflicts), which on a
// cluster become status conditions of an admitted object. A GitOps pipeline that gates on it
// passes exactly the manifests `kubectl apply` admits and the controller compiles.
// Exit 0: no problem. Exit 1: problems printed. Exit 2: usage or I/O.

import { compileAll, type CompileResult } from "../compiler/compile.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import { formatDiagnostic, type Diagnostic } from "../compiler/diagnostics.ts";
import { secretLookupFrom } from "../compiler/validate.ts";
import type { Io } from "./io.ts";
import { readManifests, type Manifests } from "./manifests.ts";

export interface Checked {
  readonly manifests: Manifests;
  readonly result: CompileResult;
  /** Admission refusals first, then the compiler's, each in input order. */
  readonly diagnostics: readonly Diagnostic[];
}

/** Reads the manifests and runs every check `compile` runs. */
export async function checkManifests(
  files: readonly string[],
  crioVersion: CrioVersion,
): Promise<Checked> {
  const manifests = await readManifests(files);
  const result = compileAll(manifests.policies, secretLookupFrom(manifests.secrets), crioVersion);
  return { manifests, result, diagnostics: [...manifests.diagnostics, ...result.diagnostics] };
}

/** Prints the problems and a summary that says which of them the API server shares. */
export function reportProblems(diagnostics: readonly Diagnostic[], io: Io): void {
  for (const d of diagnostics) io.err(`error: ${formatDiagnostic(d)}`);
  const admission = diagnostics.filter((d) => d.admission !== undefined).length;
  io.err(
    `${diagnostics.length} problem(s): ${admission} the API server refuses at admission, ` +
      `${diagnostics.length - admission} only the compiler finds (status conditions on a cluster)`,
  );
}

export interface ValidateOptions {
  readonly files: readonly string[];
  readonly crioVersion: CrioVersion;
  /** "json": one JSON document on stdout listing every problem. */
  readonly output?: string;
}

export async function validateCommand(opts: ValidateOptions, io: Io): Promise<number> {
  if (opts.files.length === 0 || (opts.output !== undefined && opts.output !== "json")) {
    io.err("error: usage: imagepolicy validate -f <file-or-dir>... [--crio-version X.Y] [-o json]");
    return 2;
  }
  const { manifests, diagnostics } = await checkManifests(opts.files, opts.crioVersion);
  if (opts.output === "json") {
    io.out(
      JSON.stringify({
        policies: manifests.policies.length,
        problems: diagnostics.map((d) => ({
          kind: d.object.kind,
          name: d.object.name,
          ...(d.object.namespace === undefined ? {} : { namespace: d.object.namespace }),
          field: d.field,
          reason: d.reason,
          message: d.message,
          ...(d.admission === undefined ? {} : { admission: d.admission }),
        })),
      }),
    );
    return diagnostics.length === 0 ? 0 : 1;
  }
  if (diagnostics.length > 0) {
    reportProblems(diagnostics, io);
    return 1;
  }
  io.out(`${manifests.policies.length} policies valid`);
  return 0;
}

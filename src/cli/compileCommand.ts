// `imagepolicy compile -f <file-or-dir>... -o <outdir> [--crio-version X.Y]`
// Exit 0: every file written. Exit 1: diagnostics printed, nothing written. Exit 2: usage or I/O.
// It refuses exactly what `imagepolicy validate` refuses (the API server's admission checks plus
// the compiler's own), since both run checkManifests.

import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { outputFiles } from "../compiler/compile.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import { atomicWrite } from "../atomicWrite.ts";
import type { Io } from "./io.ts";
import { checkManifests, reportProblems } from "./validateCommand.ts";

export interface CompileOptions {
  readonly files: readonly string[];
  readonly outDir: string;
  readonly crioVersion: CrioVersion;
}

export async function compileCommand(opts: CompileOptions, io: Io): Promise<number> {
  const { manifests, result, diagnostics } = await checkManifests(opts.files, opts.crioVersion);
  if (diagnostics.length > 0 || result.files === undefined) {
    reportProblems(diagnostics, io);
    io.err("nothing written");
    return 1;
  }
  const files = result.files;
  // Build the whole tree beside the output, then move it in: no half-written output directory.
  const out = resolve(opts.outDir);
  await mkdir(dirname(out), { recursive: true });
  const staging = await mkdtemp(join(dirname(out), ".imagepolicy-compile-"));
  try {
    await mkdir(join(staging, "policies"));
    for (const [rel, text] of outputFiles(files)) {
      await mkdir(dirname(join(staging, rel)), { recursive: true });
      await atomicWrite(join(staging, rel), text);
    }
    await rm(out, { recursive: true, force: true });
    await rename(staging, out);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  io.out(
    `compiled ${manifests.policies.length} policies: ${out}/cluster.json, ` +
      `${files.namespaceJson.size} namespace file(s) in ${out}/policies, ${out}/registries.d/imagepolicy.yaml`,
  );
  return 0;
}

// `imagepolicy explain --image REF [--namespace NS] -f <file-or-dir>... [--crio-version X.Y]`

import { createHash } from "node:crypto";
import { describeRef } from "../api/types.ts";
import { canonicalJson } from "../canonicalJson.ts";
import { formatDiagnostic } from "../compiler/diagnostics.ts";
import { compileAll } from "../compiler/compile.ts";
import type { CrioVersion } from "../compiler/crioVersion.ts";
import { explain, type LayerDecision } from "../compiler/explain.ts";
import { parseImage } from "../compiler/scopes.ts";
import { secretLookupFrom } from "../compiler/validate.ts";
import type { Io } from "./io.ts";
import { readManifests } from "./manifests.ts";

export interface ExplainOptions {
  readonly files: readonly string[];
  readonly image: string;
  readonly namespace?: string;
  readonly crioVersion: CrioVersion;
}

const scopeName = (s: string): string => (s === "" ? '"" (the * scope)' : s);

/** One requirement on one line, key and CA data shown as a SHA-256 fingerprint of the PEM. */
function describeRequirement(r: unknown): string {
  const fingerprint = (b64: string): string =>
    `sha256:${createHash("sha256").update(Buffer.from(b64, "base64")).digest("hex").slice(0, 16)}`;
  const short = JSON.parse(JSON.stringify(r), (key, value: unknown) => {
    if (typeof value === "string" && /Data$/.test(key)) return fingerprint(value);
    if (Array.isArray(value) && /Datas$/.test(key)) {
      return (value as unknown[]).map((v): unknown => (typeof v === "string" ? fingerprint(v) : v));
    }
    return value;
  }) as unknown;
  return canonicalJson(short).replace(/\s+/g, " ").trim();
}

function printDecision(io: Io, title: string, d: LayerDecision | null, none: string): void {
  io.out(`${title}:`);
  if (d === null) {
    io.out(`  no scope matches: ${none}`);
    return;
  }
  io.out(`  deciding scope: ${scopeName(d.scope)}`);
  io.out(`  from: ${d.sources.map(describeRef).join(", ")}`);
  io.out(`  requirements (all must pass):`);
  for (const r of d.requirements) io.out(`    ${describeRequirement(r)}`);
}

export async function explainCommand(opts: ExplainOptions, io: Io): Promise<number> {
  const image = parseImage(opts.image);
  if (!image.ok) {
    io.err(`error: --image ${JSON.stringify(opts.image)}: ${image.reason}`);
    return 2;
  }
  const manifests = await readManifests(opts.files);
  const result = compileAll(
    manifests.policies,
    secretLookupFrom(manifests.secrets),
    opts.crioVersion,
  );
  for (const d of [...manifests.diagnostics, ...result.diagnostics]) {
    io.err(`warning: ${formatDiagnostic(d)} (this object is left out below)`);
  }
  const ns = opts.namespace === undefined ? undefined : result.namespaces.get(opts.namespace);
  const e = explain(image.reference, result.cluster, ns);
  io.out(`image: ${e.image}`);
  io.out(`lookup order: ${e.chain.map(scopeName).join(" -> ")}`);
  printDecision(io, "cluster layer", e.cluster, "accepted (stock default)");
  if (opts.namespace !== undefined) {
    printDecision(
      io,
      `namespace layer (${opts.namespace})`,
      e.namespace,
      ns === undefined ? "this namespace has no ImagePolicy" : "adds nothing",
    );
  }
  io.out(`file CRI-O reads: ${e.file}`);
  io.out(
    `  deciding scope: ${e.fileScope === null ? "none (default: accept)" : scopeName(e.fileScope)}`,
  );
  io.out(`  requirements (all must pass):`);
  for (const r of e.requirements) io.out(`    ${describeRequirement(r)}`);
  return 0;
}

// `compile`: the three stages of the compiler in one process, as the CLI and the benchmark run them
// (validate.ts: each object's layer form; assemble.ts: the rules that judge policies together,
// and the layers; combine.ts: each file a node would hold, for one CRI-O version). The controller
// runs stages one and two in plan.ts and publishes the layers; each agent runs stage three.

import type { AnyImagePolicy } from "../api/types.ts";
import { applySetRules, layersOf, type Candidate } from "./assemble.ts";
import { combine, indexLayer, type ScopeIndex } from "./combine.ts";
import type { CrioVersion } from "./crioVersion.ts";
import type { Diagnostic } from "./diagnostics.ts";
import { registriesD } from "./registriesD.ts";
import { validate, type SecretLookup, type ValidateResult } from "./validate.ts";

export interface CompiledFiles {
  readonly clusterJson: string;
  /** namespace -> <namespace>.json text, sorted by namespace. */
  readonly namespaceJson: ReadonlyMap<string, string>;
  readonly registriesDYaml: string;
}

export interface CompileResult {
  readonly validated: ValidateResult;
  readonly cluster: ScopeIndex;
  readonly namespaces: ReadonlyMap<string, ScopeIndex>;
  /** Present only when there are no diagnostics at all. */
  readonly files?: CompiledFiles;
  readonly diagnostics: readonly Diagnostic[];
}

export function compileAll(
  objects: readonly AnyImagePolicy[],
  secrets: SecretLookup,
  target: CrioVersion,
): CompileResult {
  const validated = validate(objects, secrets, target);
  // Nothing is published here: a candidate refused by stage two contributes nothing.
  const candidates: Candidate[] = validated.results.flatMap((v) =>
    v.ok
      ? [{ ref: v.object, current: v.policy, previous: undefined, chosen: v.policy, refusals: [] }]
      : [],
  );
  applySetRules(candidates, {});
  const layers = layersOf(candidates);
  const cluster = indexLayer(layers.cluster);
  const namespaces = new Map<string, ScopeIndex>();
  for (const [ns, layer] of layers.namespaces) namespaces.set(ns, indexLayer(layer));
  const diagnostics: Diagnostic[] = [
    ...validated.diagnostics,
    ...candidates.flatMap((c) => c.refusals.map((r) => ({ object: c.ref, ...r }))),
  ];
  const base = { validated, cluster, namespaces };
  if (diagnostics.length > 0) return { ...base, diagnostics };
  return { ...base, diagnostics, files: renderFiles(cluster, namespaces, target) };
}

/** Stage three over every layer: the files a node holds (cluster.json, one policy.json per
 * namespace layer, the registries.d file). The layers passed stages one and two: every feature
 * they use renders for `target` and no scope needs two lookasides. The controller's plan()
 * publishes layers whose rendering is exactly this (test/evaluator/golden.test.ts). */
export function renderFiles(
  cluster: ScopeIndex,
  namespaces: ReadonlyMap<string, ScopeIndex>,
  target: CrioVersion,
): CompiledFiles {
  const reg = registriesD(cluster, [...namespaces.values()]);
  const clusterDoc = combine([cluster], target);
  if (!clusterDoc.ok) throw new CompileInvariantError(clusterDoc.problems.join("; "));
  const namespaceJson = new Map<string, string>();
  for (const [ns, index] of namespaces) {
    const doc = combine([cluster, index], target);
    // validate() already refused every feature the target cannot parse.
    if (!doc.ok) throw new CompileInvariantError(doc.problems.join("; "));
    namespaceJson.set(ns, doc.text);
  }
  if (reg.conflicts.length > 0) {
    throw new CompileInvariantError(`lookaside conflicts left: ${JSON.stringify(reg.conflicts)}`);
  }
  return { clusterJson: clusterDoc.text, namespaceJson, registriesDYaml: reg.text };
}

/** The files a node holds, as paths relative to an output root (the CLI's layout). */
export function outputFiles(files: CompiledFiles): [path: string, text: string][] {
  return [
    ["cluster.json", files.clusterJson],
    ...[...files.namespaceJson].map(([ns, text]): [string, string] => [
      `policies/${ns}.json`,
      text,
    ]),
    ["registries.d/imagepolicy.yaml", files.registriesDYaml],
  ];
}

/** A bug: validate accepted what combine cannot render. */
export class CompileInvariantError extends Error {
  override readonly name = "CompileInvariantError";
}

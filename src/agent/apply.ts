// Runs a plan's steps in order and stops at the first failure (plan.ts explains the order).

import { serializeManifest, type Manifest } from "./manifest.ts";
import { namespaceFilePath, type NodePaths } from "./hostPaths.ts";
import type { NodeFs } from "./nodeFs.ts";
import type { Plan } from "./plan.ts";

export interface ApplyResult {
  /** Paths written (bytes changed) and removed, in order. */
  readonly written: readonly string[];
  readonly removed: readonly string[];
  /** The manifest as last written (or the one given when no manifest step ran). */
  readonly manifest: Manifest;
  /** Set when a step failed; the steps before it stay done. */
  readonly error?: Error;
}

export class ApplyError extends Error {
  override readonly name = "ApplyError";
}

export async function applyPlan(
  plan: Plan,
  manifest: Manifest,
  paths: NodePaths,
  fs: NodeFs,
): Promise<ApplyResult> {
  const written: string[] = [];
  const removed: string[] = [];
  let current = manifest;
  const nsPath = (ns: string): string => {
    const p = namespaceFilePath(paths, ns);
    if (p === undefined) throw new ApplyError(`namespace ${JSON.stringify(ns)} has no file name`);
    return p;
  };
  try {
    for (const step of plan.steps) {
      switch (step.kind) {
        case "write": {
          const f = step.file;
          const path =
            f.kind === "cluster"
              ? paths.clusterJson
              : f.kind === "registriesD"
                ? paths.registriesDFile
                : nsPath(f.namespace);
          if (await fs.writeIfChanged(path, step.text)) written.push(path);
          break;
        }
        case "delete": {
          const path = nsPath(step.namespace);
          if (await fs.remove(path)) removed.push(path);
          break;
        }
        case "manifest":
          if (await fs.writeIfChanged(paths.manifest, serializeManifest(step.manifest))) {
            written.push(paths.manifest);
          }
          current = step.manifest;
          break;
        default: {
          const _exhaustive: never = step;
          return _exhaustive;
        }
      }
    }
  } catch (cause) {
    const error = cause instanceof Error ? cause : new ApplyError("step failed", { cause });
    return { written, removed, manifest: current, error };
  }
  return { written, removed, manifest: current };
}

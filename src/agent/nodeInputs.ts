// The node's own configuration the agent reads on every reconcile: mirrors from registries.conf
// (and its .d drop-ins) and the keys of the other registries.d files. Synchronous reads of a few
// small local files: no thread-pool round trips (src/agent/nodeFs.ts says why).

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { NodePaths } from "./hostPaths.ts";
import { mergeRegistries, registriesFrom, type RegistryMirrors } from "./registriesConf.ts";
import { readOtherKeys } from "./registriesDFile.ts";
import { parseToml } from "./toml.ts";

export interface NodeInputs {
  readonly registries: readonly RegistryMirrors[];
  readonly otherKeys: ReadonlyMap<string, string>;
  /** Problems that do not stop the agent (an unreadable registries.conf: no mirrors known). */
  readonly problems: readonly string[];
}

export class NodeInputError extends Error {
  override readonly name = "NodeInputError";
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new NodeInputError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
}

function readRegistries(conf: string, problems: string[]): RegistryMirrors[] {
  const files = [conf];
  try {
    const d = `${conf}.d`;
    files.push(
      ...readdirSync(d)
        .filter((n) => n.endsWith(".conf"))
        .sort()
        .map((n) => path.join(d, n)),
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      problems.push(`cannot list ${conf}.d: ${(e as Error).message}`);
  }
  const all: RegistryMirrors[][] = [];
  for (const f of files) {
    try {
      const text = readIfExists(f);
      if (text !== undefined) all.push(registriesFrom(parseToml(text), f));
    } catch (e) {
      problems.push(`cannot read mirrors from ${f}: ${(e as Error).message}`);
    }
  }
  return mergeRegistries(all);
}

/** Throws (RegistriesDReadError) when another registries.d file cannot be read: writing our file
 * could then define a key twice. */
export function readNodeInputs(paths: NodePaths): NodeInputs {
  const problems: string[] = [];
  const registries = readRegistries(paths.registriesConf, problems);
  const otherKeys = readOtherKeys(
    [paths.registriesD, paths.systemRegistriesD],
    paths.registriesDFile,
  );
  return { registries, otherKeys, problems };
}

// glibc's malloc_trim(0) through the native addon native/malloc-trim.c. After a reconcile's peak
// the agent's malloc heap kept ~7 MiB of free pages resident under a few live chunks, which free()
// never returns and Node cannot ask for (docs/scale.md, "The agent"). The image carries the addon
// at native/malloc-trim.node beside src/; IMAGEPOLICY_MALLOC_TRIM names another build (the
// tests and benchmarks run the agent from a checkout, with the addon built into the cache by
// hack/tools/malloc-trim.sh). Without it the agent works the same and keeps that memory.

import { fileURLToPath } from "node:url";

/** Where the image puts the addon: /app/native/malloc-trim.node for /app/src/agent/. */
export const IMAGE_ADDON_PATH = fileURLToPath(
  new URL("../../native/malloc-trim.node", import.meta.url),
);

export type MallocTrim =
  | { readonly ok: true; readonly path: string; readonly trim: () => boolean }
  | { readonly ok: false; readonly path: string; readonly reason: string };

/** Loads the addon from `env.IMAGEPOLICY_MALLOC_TRIM`, else from the image's path. Never throws:
 * a missing or broken addon is a reason the caller logs. */
export function loadMallocTrim(env: NodeJS.ProcessEnv = process.env): MallocTrim {
  const path = env["IMAGEPOLICY_MALLOC_TRIM"] || IMAGE_ADDON_PATH;
  const module: { exports: { trim?: unknown } } = { exports: {} };
  try {
    process.dlopen(module, path);
  } catch (err) {
    return { ok: false, path, reason: (err as Error).message };
  }
  const exported = module.exports.trim;
  if (typeof exported !== "function") {
    return { ok: false, path, reason: "the addon exports no trim()" };
  }
  const trim = exported as () => unknown;
  return { ok: true, path, trim: () => trim() === true };
}

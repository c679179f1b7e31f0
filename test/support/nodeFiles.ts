// Reading a node's policy files as the compiler renders them: the agent names key files where
// the compiler inlines keys (src/agent/keyFiles.ts), so the key files are inlined again.

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { inlineKeyPaths } from "../../src/agent/keyFiles.ts";

/** Where the shipped DaemonSet's agent writes key files, as the host sees it. */
export const HOST_KEYS_DIR = "/etc/crio/imagepolicy/keys";

/** The policy file `rel` under a node root with the key files it names inlined, or undefined
 * when it cannot be read (missing, or a key file it names not there yet). */
export async function readPolicyInlined(root: string, rel: string): Promise<string | undefined> {
  const text = await readFile(path.join(root, rel), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return inlineKeyPaths(text, HOST_KEYS_DIR, (hostPath) => {
      try {
        return readFileSync(path.join(root, hostPath));
      } catch {
        return undefined;
      }
    });
  } catch {
    return undefined;
  }
}

// Golden files name the fixture registry and keys by placeholder, since ports and generated keys
// differ between machines.

import type { EvaluatorEnvironment } from "./environment.ts";

export type Placeholders = readonly (readonly [name: string, value: string])[];

export function placeholdersFor(env: EvaluatorEnvironment): Placeholders {
  const list: [string, string][] = [
    ["KEY_A", env.keys.a],
    ["KEY_B", env.keys.b],
    ["KEY_C", env.keys.c],
    ["KEY_COSIGN", env.keys.cosign],
    ["GPG_KEYRING", env.gpg.keyring],
    ["GPG_LOOKASIDE", env.gpg.lookaside],
    ["MIRROR_IDENTITY", env.mirrorIdentity],
    ["REGISTRY_LOCALHOST", env.registryLocalhost],
    ["REGISTRY", env.registry],
  ];
  // Longest values first, so that no value is replaced inside a longer one.
  return list.sort(([, a], [, b]) => b.length - a.length);
}

export function substitute(text: string, placeholders: Placeholders): string {
  let out = text;
  for (const [name, value] of placeholders) out = out.replaceAll("${" + name + "}", value);
  const left = /\$\{[A-Z_]+\}/.exec(out);
  if (left !== null) throw new Error(`unknown placeholder ${left[0]}`);
  return out;
}

export function unsubstitute(text: string, placeholders: Placeholders): string {
  let out = text;
  for (const [name, value] of placeholders) out = out.replaceAll(value, "${" + name + "}");
  return out;
}

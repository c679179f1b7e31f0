// Shared helpers of the agent's unit tests: an in-memory NodeFs that records every state the
// files pass through, a tiny policy.json evaluator on the compiler's scope semantics, and layer
// builders.

import path from "node:path";
import {
  parseLayer,
  serializeLayer,
  type Layer,
  type LayerPolicy,
} from "../../../src/compiler/layer.ts";
import type { Requirement } from "../../../src/compiler/requirements.ts";
import { fallbackChain, parseImage } from "../../../src/compiler/scopes.ts";
import { nodePaths, type NodePaths } from "../../../src/agent/hostPaths.ts";
import type { NodeFs } from "../../../src/agent/nodeFs.ts";
import type { LayerInput } from "../../../src/agent/plan.ts";
import { layerRevision } from "../../../src/layerConfigMap.ts";
import { parsePolicyJson } from "../../../src/policyjson/parse.ts";
import type { PolicyRequirement } from "../../../src/policyjson/types.ts";

export type Snapshot = ReadonlyMap<string, string>;

export class MemoryFs implements NodeFs {
  readonly files = new Map<string, string>();
  readonly writes: string[] = [];
  failOn: ((path: string) => boolean) | undefined;
  private readonly onChange: (s: Snapshot, what: string) => void;
  constructor(onChange: (s: Snapshot, what: string) => void = () => undefined) {
    this.onChange = onChange;
  }

  writeIfChanged(p: string, text: string): Promise<boolean> {
    if (this.failOn?.(p) === true) return Promise.reject(new Error(`injected failure on ${p}`));
    if (this.files.get(p) === text) return Promise.resolve(false);
    this.files.set(p, text);
    this.writes.push(p);
    this.onChange(this.files, `write ${p}`);
    return Promise.resolve(true);
  }
  remove(p: string): Promise<boolean> {
    const had = this.files.delete(p);
    if (had) this.onChange(this.files, `remove ${p}`);
    return Promise.resolve(had);
  }
  readText(p: string): Promise<string | undefined> {
    return Promise.resolve(this.files.get(p));
  }
  mkdirp(): Promise<void> {
    return Promise.resolve();
  }
}

export const PATHS: NodePaths = nodePaths({
  root: "/r",
  policyPath: "/etc/crio/imagepolicy/cluster.json",
  policyDir: "/etc/crio/policies",
  registriesD: "/etc/containers/registries.d",
  systemRegistriesD: "/usr/share/containers/registries.d",
  registriesConf: "/etc/containers/registries.conf",
  crioSocket: "/var/run/crio/crio.sock",
});

export function namespaceOf(p: string): string | undefined {
  return path.dirname(p) === PATHS.policyDir && p.endsWith(".json")
    ? path.basename(p, ".json")
    : undefined;
}

// A fake "signature": an image carries the set of keys that signed it.
function requirementAllows(r: PolicyRequirement, signers: ReadonlySet<string>): boolean {
  switch (r.type) {
    case "reject":
      return false;
    case "insecureAcceptAnything":
      return true;
    case "sigstoreSigned": {
      const keys = r.keyDatas ?? (r.keyData === undefined ? [] : [r.keyData]);
      return keys.some((k) => signers.has(k));
    }
    case "signedBy":
      return r.keyData !== undefined && signers.has(r.keyData);
  }
}

/** Would `policyText` allow a pull of `image` signed by `signers`? The most specific docker scope
 * decides (containers/image's rule), else `default`. */
export function allowed(policyText: string, image: string, signers: ReadonlySet<string>): boolean {
  const policy = parsePolicyJson(policyText);
  const ref = parseImage(image);
  if (!ref.ok) throw new Error(ref.reason);
  const docker = policy.transports?.docker ?? {};
  for (const scope of fallbackChain(ref.reference)) {
    const reqs = docker[scope];
    if (reqs !== undefined) return reqs.every((r) => requirementAllows(r, signers));
  }
  return policy.default.every((r) => requirementAllows(r, signers));
}

export function layer(
  namespace: string | undefined,
  entries: readonly (readonly [scopes: readonly string[], requirement: Requirement])[],
): Layer {
  const policies: LayerPolicy[] = entries.map(([scopes, requirement], i) => ({
    name: `p${String(i).padStart(2, "0")}`,
    scopes: [...new Set(scopes)].sort(),
    requirement,
  }));
  return namespace === undefined ? { policies } : { namespace, policies };
}

export function input(l: Layer): LayerInput {
  const text = serializeLayer(l);
  return { text, revision: layerRevision(text), layer: parseLayer(text) };
}

export const keyReq = (...keys: string[]): Requirement => ({
  kind: "sigstoreKeys",
  keys: [...keys].sort(),
});
export const REJECT: Requirement = { kind: "reject" };
export const ACCEPT: Requirement = { kind: "accept" };

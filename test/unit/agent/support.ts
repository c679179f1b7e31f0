// Shared helpers of the agent's unit tests: an in-memory NodeFs that records every state the
// files pass through, a tiny policy.json evaluator on the compiler's scope semantics, and layer
// builders.

import { createHash } from "node:crypto";
import path from "node:path";
import { pino } from "pino";
import { NodeFiles, type FilesOutcome } from "../../../src/agent/files.ts";
import { inlineKeyPaths, keyFileName } from "../../../src/agent/keyFiles.ts";
import { registriesIndex } from "../../../src/agent/registriesDFile.ts";
import { LATEST_KNOWN, type CrioVersion } from "../../../src/compiler/crioVersion.ts";
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
import type { LayerInput, LayerText } from "../../../src/agent/layers.ts";
import { layerRevision } from "../../../src/layerConfigMap.ts";
import { parsePolicyJson } from "../../../src/policyjson/parse.ts";
import type { PolicyRequirement } from "../../../src/policyjson/types.ts";

export type Snapshot = ReadonlyMap<string, string>;

export class MemoryFs implements NodeFs {
  readonly files = new Map<string, string>();
  /** The bytes of every file, as written (key files are binary). */
  readonly raw = new Map<string, Buffer>();
  readonly writes: string[] = [];
  /** Makes writes (and removals) fail where it returns true. */
  failOn: ((path: string) => boolean) | undefined;
  private readonly onChange: (s: Snapshot, what: string) => void;
  constructor(onChange: (s: Snapshot, what: string) => void = () => undefined) {
    this.onChange = onChange;
  }

  write(p: string, data: string | readonly Uint8Array[]): Promise<void> {
    if (this.failOn?.(p) === true) return Promise.reject(new Error(`injected failure on ${p}`));
    const bytes = typeof data === "string" ? Buffer.from(data) : Buffer.concat(data);
    this.files.set(p, bytes.toString("utf8"));
    this.raw.set(p, bytes);
    this.writes.push(p);
    this.onChange(this.files, `write ${p}`);
    return Promise.resolve();
  }
  sync(): Promise<void> {
    return Promise.resolve();
  }
  remove(p: string): Promise<boolean> {
    if (this.failOn?.(p) === true) return Promise.reject(new Error(`injected failure on ${p}`));
    const had = this.files.delete(p);
    this.raw.delete(p);
    if (had) this.onChange(this.files, `remove ${p}`);
    return Promise.resolve(had);
  }
  readText(p: string): Promise<string | undefined> {
    return Promise.resolve(this.files.get(p));
  }
  readBytes(p: string): Promise<Buffer | undefined> {
    const text = this.files.get(p);
    return Promise.resolve(text === undefined ? undefined : (this.raw.get(p) ?? Buffer.from(text)));
  }
  /** The bytes' digest: changes with the bytes, however they were changed (tests tamper with
   * `raw` directly). */
  identity(p: string): Promise<string | undefined> {
    const bytes = this.raw.get(p);
    return Promise.resolve(
      bytes === undefined ? undefined : createHash("sha256").update(bytes).digest("hex"),
    );
  }
  exists(p: string): Promise<boolean> {
    return Promise.resolve(this.files.has(p));
  }
  list(dir: string): Promise<string[]> {
    return Promise.resolve(
      [...this.files.keys()].filter((p) => path.dirname(p) === dir).map((p) => path.basename(p)),
    );
  }
  mkdirp(): Promise<void> {
    return Promise.resolve();
  }
  /** A policy file with the key files it names inlined: the compiler's bytes. */
  policy(p: string): string | undefined {
    const text = this.files.get(p);
    if (text === undefined) return undefined;
    return inlineKeyPaths(text, PATHS.hostKeysDir, (hostPath) =>
      this.raw.get(path.join(PATHS.keysDir, path.basename(hostPath))),
    );
  }
}

/** The key file paths a policy file names. */
export function keyPathsIn(text: string): string[] {
  return [...text.matchAll(/"(\/[^"]*\/keys\/sha256-[0-9a-f]{64})"/g)].map((m) => m[1] ?? "");
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

// A fake "signature": an image carries the set of keys that signed it. A key file (keyFiles.ts)
// stands for the key whose bytes name it.
function requirementAllows(r: PolicyRequirement, signers: ReadonlySet<string>): boolean {
  const signedBy = (k: string): boolean =>
    signers.has(k) || [...signers].some((s) => k.endsWith(`/${keyFileName(s)}`));
  switch (r.type) {
    case "reject":
      return false;
    case "insecureAcceptAnything":
      return true;
    case "sigstoreSigned": {
      const keys =
        r.keyDatas ??
        r.keyPaths ??
        (r.keyData === undefined ? (r.keyPath === undefined ? [] : [r.keyPath]) : [r.keyData]);
      return keys.some(signedBy);
    }
    case "signedBy":
      return [r.keyData, r.keyPath].some((k) => k !== undefined && signedBy(k));
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

export function input(l: Layer): LayerText {
  const text = serializeLayer(l);
  parseLayer(text);
  return { text, revision: layerRevision(text) };
}

export const keyReq = (...keys: string[]): Requirement => ({
  kind: "sigstoreKeys",
  keys: [...keys].sort(),
});
export const REJECT: Requirement = { kind: "reject" };
export const ACCEPT: Requirement = { kind: "accept" };

function sameInput(a: LayerInput, b: LayerInput): boolean {
  if (a.ok && b.ok) return a.layer.revision === b.layer.revision;
  if (a.ok || b.ok) return false;
  return a.reason === b.reason && a.lastGood?.revision === b.lastGood?.revision;
}

/** A node's files in memory, moved by the real NodeFiles (plan + apply), as the agent does. */
export class TestNode {
  readonly fs: MemoryFs;
  files: NodeFiles;
  /** Every layer text seen, by revision (what the informer holds: current and last usable). */
  readonly texts = new Map<string, string>();
  /** The last input given for each namespace. */
  readonly #inputs = new Map<string, LayerInput>();

  constructor(onChange?: (s: Snapshot, what: string) => void) {
    this.fs = new MemoryFs(onChange);
    this.files = this.#newFiles();
  }

  #newFiles(): NodeFiles {
    return new NodeFiles(PATHS, "/etc/crio/policies", this.fs, pino({ level: "silent" }));
  }

  /** A new process: reads what the files hold from the manifest. */
  async restart(): Promise<void> {
    this.files = this.#newFiles();
    await this.files.load();
  }

  remember(l: Layer): LayerText {
    const t = input(l);
    this.texts.set(t.revision, t.text);
    return t;
  }

  async apply(
    cluster: Layer,
    namespaces: Readonly<
      Record<string, Layer | { readonly unusable: string; readonly lastGood?: Layer }>
    >,
    target: CrioVersion = LATEST_KNOWN,
  ): Promise<FilesOutcome> {
    const ns = new Map<string, LayerInput>();
    for (const [name, l] of Object.entries(namespaces)) {
      let want: LayerInput;
      if ("unusable" in l) {
        const lastGood = l.lastGood === undefined ? undefined : this.remember(l.lastGood);
        want = {
          ok: false,
          reason: l.unusable,
          ...(lastGood === undefined ? {} : { lastGood }),
        };
      } else want = { ok: true, layer: this.remember(l) };
      // The same object while nothing moved, as LayerSources gives it (NodeFiles then looks only
      // at the namespaces whose input moved).
      const before = this.#inputs.get(name);
      if (before !== undefined && sameInput(before, want)) want = before;
      this.#inputs.set(name, want);
      ns.set(name, want);
    }
    return this.files.reconcile({
      cluster: this.remember(cluster),
      namespaces: ns,
      needs: (rev) => {
        const t = this.texts.get(rev);
        return t === undefined ? undefined : registriesIndex(parseLayer(t));
      },
      inputs: { registries: [], otherKeys: new Map(), problems: [] },
      target,
      text: (rev) => this.texts.get(rev),
    });
  }
}

// Key material as content-addressed files on the node (docs/internals.md "Files on a node").
//
// Layers carry every key and certificate inline (base64, as policy.json's *Data fields). Written
// inline, every namespace file repeats the cluster layer's keys: with the large fixture 88 of a
// node's 125 MiB of policy files were key data. The agent instead writes each distinct key once,
// as `keys/sha256-<hex of its bytes>` beside cluster.json, and its policy files name it with the
// matching *Path field (keyData -> keyPath, keyDatas -> keyPaths, rekorPublicKeyData ->
// rekorPublicKeyPath, fulcio caData -> caPath, pki caRootsData -> caRootsPath, ...), which
// containers/image reads the same way (containers-policy.json(5)).
//
// Why this is safe:
// - A name is the SHA-256 of the content, so two keys never share a file, and a key a namespace
//   supplies can only ever land in its own file: it cannot replace a key the cluster layer uses.
// - A key file is written (and made durable) before any policy file that names it, and verified
//   (read back and compared) once per reconcile before it is relied on; a file changed by hand is
//   rewritten.
// - A key file is removed only after a reconcile that completed, when no file the manifest lists
//   can name it; when that is not known (a file kept without its layer), nothing is removed.
// - Should a key file go missing anyway, containers/image fails the requirement that names it:
//   pulls it governs are refused, never allowed.

import { createHash } from "node:crypto";
import path from "node:path";
import type { Layer } from "../compiler/layer.ts";
import type { Requirement } from "../compiler/requirements.ts";
import type { PolicyRequirement } from "../policyjson/types.ts";
import type { NodeFs } from "./nodeFs.ts";

/** The directory beside cluster.json that holds the key files. */
export const KEYS_DIR = "keys";

const KEY_FILE = /^sha256-[0-9a-f]{64}$/;

/** The file name of key material given as base64 (as layers and policy.json carry it). */
export function keyFileName(data: string): string {
  return keyFileNameOf(Buffer.from(data, "base64"));
}

/** The file name of key material given as its bytes (what a key file holds). */
export function keyFileNameOf(bytes: Uint8Array): string {
  return `sha256-${createHash("sha256").update(bytes).digest("hex")}`;
}

export function isKeyFileName(name: string): boolean {
  return KEY_FILE.test(name);
}

/** Every piece of key material (base64) a requirement carries. */
export function keyMaterial(r: Requirement): string[] {
  switch (r.kind) {
    case "reject":
    case "accept":
      return [];
    case "sigstoreKeys":
      return [...r.keys, ...(r.rekorKeys ?? [])];
    case "fulcio":
      return [r.caData, ...r.rekorKeys];
    case "pki":
      return r.caIntermediatesData === undefined
        ? [r.caRootsData]
        : [r.caRootsData, r.caIntermediatesData];
    case "gpg":
      return [r.keyring];
    default: {
      const _exhaustive: never = r;
      return _exhaustive;
    }
  }
}

/** The key file names a layer's policies need. */
export function layerKeyNames(layer: Layer): string[] {
  const names = new Set<string>();
  for (const p of layer.policies)
    for (const k of keyMaterial(p.requirement)) names.add(keyFileName(k));
  return [...names];
}

/** `r` with every *Data field replaced by the matching *Path field, `ref` giving the path of a
 * piece of key material. Field order does not matter: the canonical writer sorts keys, and each
 * *Path field sorts where its *Data field did among the others. */
export function withKeyPaths(
  r: PolicyRequirement,
  ref: (data: string) => string,
): PolicyRequirement {
  if (r.type === "signedBy") {
    if (r.keyData === undefined) return r;
    const { keyData, ...rest } = r;
    return { ...rest, keyPath: ref(keyData) };
  }
  if (r.type !== "sigstoreSigned") return r;
  const { keyData, keyDatas, rekorPublicKeyData, rekorPublicKeyDatas, fulcio, pki, ...rest } = r;
  const out: { -readonly [K in keyof typeof r]: (typeof r)[K] } = { ...rest };
  if (keyData !== undefined) out.keyPath = ref(keyData);
  if (keyDatas !== undefined) out.keyPaths = keyDatas.map(ref);
  if (rekorPublicKeyData !== undefined) out.rekorPublicKeyPath = ref(rekorPublicKeyData);
  if (rekorPublicKeyDatas !== undefined) out.rekorPublicKeyPaths = rekorPublicKeyDatas.map(ref);
  if (fulcio !== undefined) {
    const { caData, ...f } = fulcio;
    out.fulcio = caData === undefined ? fulcio : { ...f, caPath: ref(caData) };
  }
  if (pki !== undefined) {
    const { caRootsData, caIntermediatesData, ...p } = pki;
    out.pki = {
      ...p,
      ...(caRootsData === undefined ? {} : { caRootsPath: ref(caRootsData) }),
      ...(caIntermediatesData === undefined
        ? {}
        : { caIntermediatesPath: ref(caIntermediatesData) }),
    };
  }
  return out;
}

const PATH_FIELD =
  /"(keyPath|rekorPublicKeyPath|caPath|caRootsPath|caIntermediatesPath)": "([^"]*)"|"(keyPaths|rekorPublicKeyPaths)": \[([^\]]*)\]/g;
const DATA_FIELD: Readonly<Record<string, string>> = {
  keyPath: "keyData",
  keyPaths: "keyDatas",
  rekorPublicKeyPath: "rekorPublicKeyData",
  rekorPublicKeyPaths: "rekorPublicKeyDatas",
  caPath: "caData",
  caRootsPath: "caRootsData",
  caIntermediatesPath: "caIntermediatesData",
};

/** A policy file as the agent writes it, with the key files it names (under `hostKeysDir`)
 * inlined again: the bytes the compiler renders for the same layers. For comparisons (tests,
 * benchmarks, `explain`); `read` gives a key file's bytes by its host path. A path outside
 * `hostKeysDir` is left as it is. */
export function inlineKeyPaths(
  text: string,
  hostKeysDir: string,
  read: (hostPath: string) => Buffer | undefined,
): string {
  const inDir = (p: string): boolean =>
    path.dirname(p) === hostKeysDir && isKeyFileName(path.basename(p));
  const data = (p: string): string => {
    const bytes = read(p);
    if (bytes === undefined) throw new Error(`key file ${p} is missing`);
    return bytes.toString("base64");
  };
  return text.replace(
    PATH_FIELD,
    (all, one?: string, onePath?: string, many?: string, list?: string): string => {
      if (one !== undefined && onePath !== undefined) {
        const p = JSON.parse(`"${onePath}"`) as string;
        return inDir(p) ? `"${DATA_FIELD[one] ?? one}": ${JSON.stringify(data(p))}` : all;
      }
      if (many === undefined || list === undefined) return all;
      const paths = [...list.matchAll(/"([^"]*)"/g)].map(
        (m) => JSON.parse(`"${m[1] ?? ""}"`) as string,
      );
      if (!paths.every(inDir)) return all;
      let out = list;
      for (const p of paths) out = out.replace(JSON.stringify(p), JSON.stringify(data(p)));
      return `"${DATA_FIELD[many] ?? many}": [${out}]`;
    },
  );
}

/** The node's key files: names, writes, checks and removals. One per NodeFiles. */
export class KeyFiles {
  readonly #fs: NodeFs;
  /** The directory as the agent reaches it (under --root) and as the host (CRI-O) sees it. */
  readonly dir: string;
  readonly hostDir: string;
  readonly #names = new Map<string, string>();
  /** Key files checked (or written) since the last reset(): present with the right bytes. */
  readonly #verified = new Set<string>();
  /** The identity (NodeFs.identity) each key file had when its bytes were last checked or
   * written: while it has not moved, checking the file again is a stat, not a read (a namespace
   * file names the cluster layer's keys too; reading them all cost ~1.5 ms per change). */
  readonly #identities = new Map<string, string>();

  constructor(fs: NodeFs, dir: string, hostDir: string) {
    this.#fs = fs;
    this.dir = dir;
    this.hostDir = hostDir;
  }

  /** The file name of `data` (memoised: a node holds few distinct keys). */
  name(data: string): string {
    let n = this.#names.get(data);
    if (n === undefined) {
      if (this.#names.size >= 4096) this.#names.clear();
      n = keyFileName(data);
      this.#names.set(data, n);
    }
    return n;
  }

  /** The host path a policy file names for `data`. */
  readonly ref = (data: string): string => `${this.hostDir}/${this.name(data)}`;

  /** Checks again, from the next ensure() on, every key file before relying on it. */
  reset(): void {
    this.#verified.clear();
  }

  /** Makes sure a file with the right bytes exists for each piece of key material; returns the
   * paths written (the caller makes them durable before a policy file names them). */
  async ensure(
    datas: Iterable<string>,
    write: (path: string, data: readonly Uint8Array[]) => Promise<void>,
  ): Promise<string[]> {
    const written: string[] = [];
    for (const data of datas) {
      const name = this.name(data);
      if (this.#verified.has(name)) continue;
      const file = path.join(this.dir, name);
      const known = this.#identities.get(name);
      if (known !== undefined && known === (await this.#fs.identity(file))) {
        this.#verified.add(name);
        continue;
      }
      const bytes = Buffer.from(data, "base64");
      const onDisk = await this.#fs.readBytes(file);
      if (onDisk === undefined || !onDisk.equals(bytes)) {
        await write(file, [bytes]);
        written.push(file);
      }
      const id = await this.#fs.identity(file);
      if (id === undefined) this.#identities.delete(name);
      else this.#identities.set(name, id);
      this.#verified.add(name);
    }
    return written;
  }

  /** Removes the key files not in `keep` (names); returns the paths removed. */
  async prune(keep: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await this.#fs.list(this.dir)) {
      if (!isKeyFileName(name) || keep.has(name)) continue;
      const file = path.join(this.dir, name);
      if (await this.#fs.remove(file)) removed.push(file);
      this.#verified.delete(name);
      this.#identities.delete(name);
    }
    return removed;
  }
}

// What must hold of a node's files at every instant, whatever happened to the agent (bench/faults.ts
// and test/apiserver/agent.test.ts check it after every kill -9):
//
// - cluster.json exists and every policy file parses with the strict policy.json parser;
// - no namespace file allows what the cluster.json next to it refuses (docs/design.md rule 5);
// - every key file a policy file names exists and holds the bytes its name is the hash of
//   (src/agent/keyFiles.ts). Requirements naming key files compare as the paths do: a path is the
//   hash of the key, so equal paths are equal keys.
//
// The second is checked scope by scope: for every scope X of either file, the requirements that
// decide X in the namespace file must include those that decide X in cluster.json (or reject);
// an image is decided, in both files, as the first of those scopes in its fallback chain decides
// (src/compiler/combine.ts allowsNoMore makes the same argument on layers). Sufficient: a file
// that passes allows nothing cluster.json refuses.
//
// Files are parsed once per distinct content (a node holds 500 files of 250 KiB; a run checks
// after each of 1,000 kills), so the checker keeps what it learnt by content hash.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { keyFileNameOf } from "../src/agent/keyFiles.ts";
import { fallbackChain } from "../src/compiler/scopes.ts";
import { parsePolicyJson } from "../src/policyjson/parse.ts";

/** A parsed policy file: scope -> the ids of its requirements ("" is the docker default). */
interface Decisions {
  readonly scopes: ReadonlyMap<string, readonly number[]>;
  /** Key files it names (host paths). */
  readonly keyFiles: readonly string[];
  readonly reject: number;
  readonly accept: number;
}

export class NodeInvariants {
  readonly #requirementIds = new Map<string, number>();
  readonly #byHash = new Map<string, Decisions | string>();
  /** Pairs (namespace file hash, cluster.json hash) found tighter already. */
  readonly #tighter = new Set<string>();
  /** How many distinct files were parsed (the work this cache saved is the rest). */
  parsed = 0;

  #id(r: unknown): number {
    // The agent writes canonical JSON, so a requirement's text as parsed is its identity; should
    // it not, equal requirements would get two ids and the check would report a violation (never
    // hide one).
    const key = JSON.stringify(r);
    let id = this.#requirementIds.get(key);
    if (id === undefined) {
      id = this.#requirementIds.size;
      this.#requirementIds.set(key, id);
    }
    return id;
  }

  /** The file's decisions, or why it does not parse. */
  #decisions(bytes: Buffer, hash: string): Decisions | string {
    const known = this.#byHash.get(hash);
    if (known !== undefined) return known;
    let result: Decisions | string;
    const text = bytes.toString("utf8");
    try {
      const policy = parsePolicyJson(text);
      this.parsed += 1;
      const scopes = new Map<string, number[]>();
      for (const [scope, reqs] of Object.entries(policy.transports?.["docker"] ?? {})) {
        scopes.set(
          scope,
          reqs.map((r) => this.#id(r)),
        );
      }
      result = {
        scopes,
        keyFiles: [...text.matchAll(KEY_PATH)].map((m) => m[1] ?? ""),
        reject: this.#id({ type: "reject" }),
        accept: this.#id({ type: "insecureAcceptAnything" }),
      };
      // The default (no docker scope decides) must stay CRI-O's stock accept.
      if (policy.default.length !== 1 || policy.default[0].type !== "insecureAcceptAnything") {
        result = "its default is not insecureAcceptAnything";
      }
    } catch (err) {
      result = (err as Error).message;
    }
    // Bounded: a round of cluster changes makes ~1,500 new files, and a run of 1,000 kills with
    // every file ever seen kept ran out of heap (4 GiB) after 352 kills. Requirement ids stay
    // (the same requirements recur), so decisions made before and after a reset compare.
    if (this.#byHash.size >= MAX_FILES) {
      this.#byHash.clear();
      this.#tighter.clear();
    }
    this.#byHash.set(hash, result);
    return result;
  }

  /** Problems with the files under `root` now (empty: every invariant holds). */
  async check(root: string): Promise<string[]> {
    const problems: string[] = [];
    const clusterPath = path.join(root, "etc/crio/imagepolicy/cluster.json");
    // Read as bytes and hashed; decoded and parsed only when not seen before (a run checks 500
    // files after each of 1,000 kills, mostly the same ones).
    const clusterBytes = read(clusterPath);
    if (clusterBytes === undefined) return ["cluster.json is missing"];
    const clusterHash = hash(clusterBytes);
    const cluster = this.#decisions(clusterBytes, clusterHash);
    if (typeof cluster === "string") return [`cluster.json does not parse: ${cluster}`];
    const keyFiles = new Set(cluster.keyFiles);
    const dir = path.join(root, "etc/crio/policies");
    for (const name of (await readdir(dir).catch(() => [])).sort()) {
      if (!name.endsWith(".json")) continue;
      const bytes = read(path.join(dir, name));
      if (bytes === undefined) continue; // replaced meanwhile (the agent is dead: not expected)
      const h = hash(bytes);
      const ns = this.#decisions(bytes, h);
      if (typeof ns === "string") {
        problems.push(`${name} does not parse: ${ns}`);
        continue;
      }
      for (const k of ns.keyFiles) keyFiles.add(k);
      const pair = `${h} ${clusterHash}`;
      if (this.#tighter.has(pair)) continue;
      const looser = this.#looserAt(ns, cluster);
      if (looser === undefined) this.#tighter.add(pair);
      else
        problems.push(
          `${name} allows what cluster.json refuses at scope ${JSON.stringify(looser)}`,
        );
    }
    for (const k of [...keyFiles].sort()) {
      const bytes = read(path.join(root, k));
      if (bytes === undefined) problems.push(`key file ${k} is named but missing`);
      else if (keyFileNameOf(bytes) !== path.basename(k)) {
        problems.push(`key file ${k} does not hold the key its name is the hash of`);
      }
    }
    return problems;
  }

  /** A scope where `ns` may allow what `cluster` refuses, or undefined. */
  #looserAt(ns: Decisions, cluster: Decisions): string | undefined {
    const decide = (d: Decisions, chain: readonly string[]): readonly number[] => {
      for (const s of chain) {
        const r = d.scopes.get(s);
        if (r !== undefined) return r;
      }
      return [d.accept];
    };
    for (const scope of new Set([...ns.scopes.keys(), ...cluster.scopes.keys()])) {
      const chain = scope === "" ? [""] : fallbackChain(scope);
      const n = decide(ns, chain);
      if (n.includes(ns.reject)) continue;
      const have = new Set(n);
      for (const r of decide(cluster, chain)) {
        if (r !== cluster.accept && !have.has(r)) return scope;
      }
    }
    return undefined;
  }
}

/** Parsed files kept (each ~100-200 KiB of heap with the large fixture). */
const MAX_FILES = 2_000;

const KEY_PATH = /"(\/[^"]*\/sha256-[0-9a-f]{64})"/g;

function hash(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Synchronous: one small read per file, no FileHandle per call (a check reads 530 files). */
function read(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

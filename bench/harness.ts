// What the process benchmarks share (bench/agent.ts, bench/propagation.ts, bench/faults.ts): a
// real control plane with the operator's namespace, CRDs and RBAC, the layer ConfigMaps published
// as the controller publishes them, agent processes started as the DaemonSet starts them, and
// what /proc says about a process (RSS, peak RSS, CPU, bytes read and written).

import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parse as parseYaml } from "yaml";
import { inlineKeyPaths, keyFileNameOf } from "../src/agent/keyFiles.ts";
import { HOST_KEYS_DIR } from "../test/support/nodeFiles.ts";
import { toolBin } from "../test/support/tools.ts";
import { KubeClient, loadKubeConfig, Resources, type KubeObject } from "../src/kube/index.ts";
import { startControlPlane, type ControlPlane } from "../test/support/controlPlane.ts";
import { BenchError } from "./fixture.ts";
import { OPERATOR_NAMESPACE, type LayerChange } from "./world.ts";

export const repoRoot = path.resolve(import.meta.dirname, "..");
export const nodeBinary = path.join(repoRoot, "node_modules/.bin/node");
const CLK_TCK = 100;

// ---------------------------------------------------------------------------------------------
// /proc

export interface ProcStats {
  /** Resident set now and its peak (VmHWM), KiB. */
  readonly rssKiB: number;
  readonly hwmKiB: number;
  /** User + system CPU, seconds. */
  readonly cpuSeconds: number;
  /** The system part of cpuSeconds (stime): the kernel's work for the process's calls. */
  readonly sysSeconds: number;
  /** Bytes passed to read(2)/write(2)-like calls (files, sockets, pipes): /proc/PID/io. */
  readonly rchar: number;
  readonly wchar: number;
}

export async function procStats(pid: number): Promise<ProcStats> {
  const [status, stat, io] = await Promise.all([
    readFile(`/proc/${pid}/status`, "utf8"),
    readFile(`/proc/${pid}/stat`, "utf8"),
    readFile(`/proc/${pid}/io`, "utf8"),
  ]);
  const kib = (field: string): number =>
    Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1]);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[11]) + Number(rest[12]);
  const ioField = (f: string): number => Number(new RegExp(`${f}: (\\d+)`).exec(io)?.[1]);
  return {
    rssKiB: kib("VmRSS"),
    hwmKiB: kib("VmHWM"),
    cpuSeconds: ticks / CLK_TCK,
    sysSeconds: Number(rest[12]) / CLK_TCK,
    rchar: ioField("rchar"),
    wchar: ioField("wchar"),
  };
}

/** Waits until the process has used no CPU for `quietMs` (sampled every 250 ms). */
export async function waitQuiet(pid: number, quietMs = 1500, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = (await procStats(pid)).cpuSeconds;
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new BenchError(`process ${pid} never went quiet`);
    await delay(250);
    const now = (await procStats(pid)).cpuSeconds;
    // One clock tick of slack: timers, bookmarks.
    if (now - last > 0.011) since = Date.now();
    last = now;
  }
}

export function delta(a: ProcStats, b: ProcStats): ProcStats {
  return {
    rssKiB: b.rssKiB,
    hwmKiB: b.hwmKiB,
    cpuSeconds: b.cpuSeconds - a.cpuSeconds,
    sysSeconds: b.sysSeconds - a.sysSeconds,
    rchar: b.rchar - a.rchar,
    wchar: b.wchar - a.wchar,
  };
}

// ---------------------------------------------------------------------------------------------
// Files on a node

export interface FileStamp {
  readonly ino: number;
  readonly mtimeNs: bigint;
  readonly size: number;
}

/** Every regular file under `root` (relative path -> inode, mtime, size). */
export async function snapshot(root: string): Promise<Map<string, FileStamp>> {
  const out = new Map<string, FileStamp>();
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const s = await lstat(p, { bigint: true }).catch(() => undefined);
      if (s === undefined) continue;
      if (s.isDirectory()) await walk(p);
      else if (s.isFile()) {
        out.set(path.relative(root, p), {
          ino: Number(s.ino),
          mtimeNs: s.mtimeNs,
          size: Number(s.size),
        });
      }
    }
  };
  await walk(root);
  return out;
}

export interface TreeDiff {
  /** Files created or replaced (new inode or mtime), and their bytes now. */
  readonly changed: readonly string[];
  readonly changedBytes: number;
  readonly removed: readonly string[];
}

export function diffTrees(
  before: ReadonlyMap<string, FileStamp>,
  after: ReadonlyMap<string, FileStamp>,
): TreeDiff {
  const changed: string[] = [];
  let changedBytes = 0;
  for (const [p, s] of after) {
    const b = before.get(p);
    if (b === undefined || b.ino !== s.ino || b.mtimeNs !== s.mtimeNs) {
      changed.push(p);
      changedBytes += s.size;
    }
  }
  const removed = [...before.keys()].filter((p) => !after.has(p));
  return { changed: changed.sort(), changedBytes, removed: removed.sort() };
}

// ---------------------------------------------------------------------------------------------
// The control plane

export interface BenchCluster {
  readonly cp: ControlPlane;
  readonly dir: string;
  /** An admin client (the benchmark's own reads and waits). */
  readonly admin: KubeClient;
  kubectl(args: readonly string[], stdin?: string): Promise<string>;
  /** Registers a CRI-O Node and returns a kubeconfig for the agent's ServiceAccount with a token
   * bound to that Node (what the kubelet mounts in the agent's pod). */
  addNode(name: string, runtime?: string): Promise<string>;
  /** Applies (server-side, as the controller) and deletes layer ConfigMaps. */
  applyLayers(changes: readonly LayerChange[]): Promise<void>;
  stop(): Promise<void>;
}

/** Starts etcd, kube-apiserver and kube-controller-manager with the CRDs, the operator's
 * namespace and the RBAC of `tree`'s config/rbac (the tree whose agent runs). */
export async function startBenchCluster(dir: string, tree: string): Promise<BenchCluster> {
  await mkdir(dir, { recursive: true });
  const cp = await startControlPlane({ dir, crdDir: path.join(tree, "crds") });
  const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
    const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
    if (r.code !== 0) throw new BenchError(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  try {
    await kubectl(["create", "namespace", OPERATOR_NAMESPACE]);
    await kubectl(["apply", "--server-side", "-k", path.join(tree, "config/rbac")]);
  } catch (cause) {
    await cp.stop();
    throw new BenchError(`cannot prepare the control plane in ${dir}`, { cause });
  }
  const admin = new KubeClient(loadKubeConfig({ kind: "file", path: cp.kubeconfigPath }));
  return {
    cp,
    dir,
    admin,
    kubectl,
    async addNode(name, runtime = "cri-o://1.34.0") {
      await cp.registerNode(name, runtime);
      return cp.serviceAccountKubeconfig(OPERATOR_NAMESPACE, "imagepolicy-agent", {
        boundNode: name,
      });
    },
    async applyLayers(changes) {
      const applies = changes.flatMap((c) => (c.kind === "apply" ? [c.configMap] : []));
      // kubectl sends a List item by item; 100 per call keeps each request small.
      for (let i = 0; i < applies.length; i += 100) {
        const list = { apiVersion: "v1", kind: "List", items: applies.slice(i, i + 100) };
        await kubectl(
          ["apply", "--server-side", "--field-manager=imagepolicy-controller", "-f", "-"],
          JSON.stringify(list),
        );
      }
      for (const c of changes) {
        if (c.kind === "delete") {
          await kubectl(["delete", "configmap", c.name, "-n", OPERATOR_NAMESPACE]);
        }
      }
    },
    stop: () => cp.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// Agent processes

/** A container of the shipped manifests as it is declared: its literal environment
 * (NODE_OPTIONS, NODE_COMPILE_CACHE, ...) and its memory request and limit. */
export interface ShippedContainer {
  readonly env: Readonly<Record<string, string>>;
  readonly memoryLimitBytes: number | undefined;
  readonly memoryRequestBytes: number | undefined;
}

const QUANTITY = /^(\d+)(Ki|Mi|Gi)?$/;

function bytesOf(q: unknown): number | undefined {
  if (typeof q !== "string") return undefined;
  const m = QUANTITY.exec(q);
  if (m === null) throw new BenchError(`unsupported memory quantity ${q}`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? ""] ?? 1;
  return Number(m[1]) * unit;
}

/** The first container of the workload in `tree`'s `manifest` (a DaemonSet or Deployment). */
async function shippedContainer(tree: string, manifest: string): Promise<ShippedContainer> {
  const doc: unknown = parseYaml(await readFile(path.join(tree, manifest), "utf8"));
  const container = (
    doc as {
      spec?: {
        template?: {
          spec?: {
            containers?: {
              env?: { name: string; value?: string }[];
              resources?: { limits?: { memory?: unknown }; requests?: { memory?: unknown } };
            }[];
          };
        };
      };
    }
  ).spec?.template?.spec?.containers?.[0];
  if (container === undefined) throw new BenchError(`no container in ${manifest}`);
  // Every literal value (NODE_OPTIONS, NODE_COMPILE_CACHE, MALLOC_*); fieldRefs are the pod's.
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return {
    env,
    memoryLimitBytes: bytesOf(container.resources?.limits?.memory),
    memoryRequestBytes: bytesOf(container.resources?.requests?.memory),
  };
}

/** Reads `tree`'s DaemonSet: the benchmark runs the agent with the same environment and limit. */
export function shippedAgent(tree: string): Promise<ShippedContainer> {
  return shippedContainer(tree, "config/agent/daemonset.yaml");
}

/** Reads `tree`'s controller Deployment: its environment and memory limit. */
export function shippedController(tree: string): Promise<ShippedContainer> {
  return shippedContainer(tree, "config/manager/deployment.yaml");
}

/** A cgroup v1 memory cgroup a benchmark runs a process in, limited as the manifests limit it. */
export class MemoryCgroup {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** /sys/fs/cgroup/memory/<name>-<this process's pid>, limited to `limitBytes`. */
  static async create(name: string, limitBytes: number): Promise<MemoryCgroup> {
    const cg = new MemoryCgroup(`/sys/fs/cgroup/memory/${name}-${String(process.pid)}`);
    await mkdir(cg.dir);
    await writeFile(path.join(cg.dir, "memory.limit_in_bytes"), String(limitBytes));
    return cg;
  }

  /** A command prefix: a shell joins the cgroup, then execs the command after it (same PID), so
   * the process is charged from its first byte. */
  joinArgs(): string[] {
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.dir];
  }

  async #number(file: string): Promise<number> {
    return Number((await readFile(path.join(this.dir, file), "utf8")).trim());
  }

  /** The peak usage since creation or the last resetMaxUsage(), page cache included. */
  maxUsageBytes(): Promise<number> {
    return this.#number("memory.max_usage_in_bytes");
  }

  async resetMaxUsage(): Promise<void> {
    await writeFile(path.join(this.dir, "memory.max_usage_in_bytes"), "0");
  }

  /** How often usage hit the limit. */
  failcnt(): Promise<number> {
    return this.#number("memory.failcnt");
  }

  /** OOM kills in the cgroup so far (memory.oom_control's oom_kill). */
  async oomKills(): Promise<number> {
    const text = await readFile(path.join(this.dir, "memory.oom_control"), "utf8");
    return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
  }

  /** Removes the cgroup (once its processes are gone). */
  async remove(): Promise<void> {
    await rmdir(this.dir).catch(() => undefined);
  }
}

export interface AgentOptions {
  /** Source tree whose src/cli/main.ts runs (a checkout of another commit for "before"). */
  readonly tree: string;
  readonly node: string;
  readonly kubeconfig: string;
  /** The node's host root (every host path of the agent is under it). */
  readonly root: string;
  readonly logPath: string;
  readonly env?: Readonly<Record<string, string>>;
  /** A memory cgroup the process joins before it starts. */
  readonly cgroup?: MemoryCgroup;
  readonly extraArgs?: readonly string[];
}

export interface AgentProcess {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  readonly running: () => boolean;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  logTail(lines?: number): Promise<string>;
}

export function startAgent(o: AgentOptions): AgentProcess {
  return startProcess(
    o.tree,
    [
      "agent",
      `--kubeconfig=${o.kubeconfig}`,
      `--node-name=${o.node}`,
      `--root=${o.root}`,
      // The CRI-O probe is local and cheap; a long interval keeps it out of the CPU figures.
      "--probe-interval=3600",
      ...(o.extraArgs ?? []),
    ],
    o,
  );
}

/** bench/floorNode.ts on a node: the least any agent does to get a layer there. */
export function startFloorNode(o: AgentOptions): AgentProcess {
  return startProcess(
    repoRoot,
    [`--kubeconfig=${o.kubeconfig}`, `--root=${o.root}`, `--namespace=${OPERATOR_NAMESPACE}`],
    { ...o, script: "bench/floorNode.ts" },
  );
}

/** `imagepolicy controller` of `tree` (metrics and health on the given ports). */
export function startController(o: {
  readonly tree: string;
  readonly kubeconfig: string;
  readonly metricsPort: number;
  readonly healthPort: number;
  readonly logPath: string;
  readonly identity?: string;
  /** The image the controller protects as the pause image (lock-out refusals). */
  readonly pauseImage?: string;
}): AgentProcess {
  return startProcess(
    o.tree,
    [
      "controller",
      `--kubeconfig=${o.kubeconfig}`,
      `--namespace=${OPERATOR_NAMESPACE}`,
      `--metrics-addr=127.0.0.1:${o.metricsPort}`,
      `--health-addr=127.0.0.1:${o.healthPort}`,
      ...(o.identity === undefined ? [] : [`--identity=${o.identity}`]),
      ...(o.pauseImage === undefined ? [] : [`--pause-image=${o.pauseImage}`]),
    ],
    { logPath: o.logPath },
  );
}

function startProcess(
  tree: string,
  commandArgs: readonly string[],
  o: {
    readonly logPath: string;
    readonly env?: Readonly<Record<string, string>>;
    readonly cgroup?: MemoryCgroup;
    readonly node?: string;
    /** What runs instead of src/cli/main.ts (relative to tree). */
    readonly script?: string;
  },
): AgentProcess {
  const fd = openSync(o.logPath, "a");
  const main = path.join(tree, o.script ?? "src/cli/main.ts");
  const args = [main, ...commandArgs];
  const env = { ...process.env, ...o.env };
  delete env["NODE_OPTIONS"];
  if (o.env?.["NODE_OPTIONS"] !== undefined) env["NODE_OPTIONS"] = o.env["NODE_OPTIONS"];
  let child: ChildProcess;
  try {
    // setpriv --pdeathsig: the kernel kills the agent if the benchmark dies first.
    child = spawn(
      "setpriv",
      ["--pdeathsig", "SIGKILL", "--", ...(o.cgroup?.joinArgs() ?? []), nodeBinary, ...args],
      { cwd: tree, env, stdio: ["ignore", fd, fd] },
    );
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new BenchError(`cannot start ${commandArgs.join(" ")}`);
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve(code ?? (signal === null ? null : -1));
    });
  });
  return {
    pid,
    exited,
    running: () => !done,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (!done) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async logTail(lines = 20) {
      const text = await readFile(o.logPath, "utf8").catch(() => "");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    },
  };
}

/** The DaemonSet's environment for a process of this machine, with what the image carries: the
 * malloc_trim addon (at /app/native in the image; built here by hack/tools/malloc-trim.sh and
 * named by IMAGEPOLICY_MALLOC_TRIM), and a NODE_COMPILE_CACHE (a directory of the image, warmed
 * when it is built) that becomes `cacheDir`, warmed here the same way: the TypeScript sources
 * stripped once (`agent --help` loads every module of the agent), then served from the cache. */
export async function agentEnvironment(
  tree: string,
  shipped: Readonly<Record<string, string>>,
  cacheDir: string,
): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    ...shipped,
    IMAGEPOLICY_MALLOC_TRIM: await toolBin("malloc-trim.sh"),
  };
  if (env["NODE_COMPILE_CACHE"] === undefined) return env;
  env["NODE_COMPILE_CACHE"] = cacheDir;
  await rm(cacheDir, { recursive: true, force: true });
  await new Promise<void>((resolve, reject) => {
    const child = spawn(nodeBinary, [path.join(tree, "src/cli/main.ts"), "agent", "--help"], {
      cwd: tree,
      env: { ...process.env, ...env },
      stdio: "ignore",
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve();
      else reject(new BenchError(`warming the compile cache exited ${String(code)}`));
    });
  });
  return env;
}

/** A node's own registries.d file as Debian's containers-common ships it (comments and an empty
 * default-docker): the agent reads it on every node. */
export const DISTRIBUTION_REGISTRIES_D = `# This is a default registries.d configuration file.  You may
# add to this file or create additional files in registries.d/.
#
# lookaside: for reading/writing simple signing signatures
# lookaside-staging: for writing simple signing signatures, preferred over lookaside
default-docker:
#  lookaside: https://example.com/sigstore
#  lookaside-staging: file:///var/lib/containers/sigstore

# docker:
#   privateregistry.com:
#     lookaside: https://privateregistry.com/sigstore/
`;

/** Prepares a simulated node's root: the distribution's registries.d file. */
export async function prepareNodeRoot(root: string): Promise<void> {
  const dir = path.join(root, "etc/containers/registries.d");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "default.yaml"), DISTRIBUTION_REGISTRIES_D);
}

// ---------------------------------------------------------------------------------------------
// Node status

const revisionsOf = (o: KubeObject | undefined): Record<string, string> | undefined => {
  const s = (o as { status?: { appliedRevisions?: unknown } } | undefined)?.status;
  const r = s?.appliedRevisions;
  if (typeof r !== "object" || r === null) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === "string") out[k] = v;
  return out;
};

/** The node's reported appliedRevisions (undefined before its first report). */
export async function reportedRevisions(
  admin: KubeClient,
  node: string,
): Promise<Record<string, string> | undefined> {
  return revisionsOf(await admin.get(Resources.imagePolicyNodeStatuses, { name: node }));
}

export function sameRevisions(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>>,
): boolean {
  if (a === undefined) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Polls until `node` reports exactly `want`; returns the milliseconds it took. */
export async function waitReported(
  admin: KubeClient,
  node: string,
  want: Readonly<Record<string, string>>,
  timeoutMs = 600_000,
  context: () => Promise<string> = () => Promise.resolve(""),
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const got = await reportedRevisions(admin, node).catch(() => undefined);
    if (sameRevisions(got, want)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) {
      const missing = Object.keys(want).filter((k) => got?.[k] !== want[k]);
      throw new BenchError(
        `${node} did not report the revisions within ${timeoutMs} ms (${missing.length} differ, ` +
          `e.g. ${missing[0] ?? "?"}: ${got?.[missing[0] ?? ""] ?? "absent"} != ${want[missing[0] ?? ""] ?? "absent"})\n${await context()}`,
      );
    }
    await delay(200);
  }
}

export { HOST_KEYS_DIR, readPolicyInlined } from "../test/support/nodeFiles.ts";

/** Compares a node's policy files with `expected` ("cluster.json", "<ns>.json" -> text), the key
 * files they name inlined. Each key file is read once per call and must hold the bytes its name
 * is the hash of; a verdict is then a function of the two texts alone, so it is remembered by
 * their hashes (the kill loop of bench/faults.ts compares 500 files of 300 KiB after every kill,
 * mostly the same ones). */
export async function compareNodeFiles(
  root: string,
  expected: ReadonlyMap<string, string>,
): Promise<string[]> {
  const problems: string[] = [];
  const policyDir = path.join(root, "etc/crio/policies");
  const present = new Set(
    (await readdir(policyDir).catch(() => [])).filter((n) => n.endsWith(".json")),
  );
  const expectedHashes = expectedHashesOf(expected);
  const keys = new Map<string, Buffer | undefined>();
  const readKey = (hostPath: string): Buffer | undefined => {
    if (keys.has(hostPath)) return keys.get(hostPath);
    let bytes: Buffer | undefined;
    try {
      bytes = readFileSync(path.join(root, hostPath));
    } catch {
      bytes = undefined;
    }
    if (bytes !== undefined && keyFileNameOf(bytes) !== path.basename(hostPath)) {
      throw new Error(`key file ${hostPath} does not hold the key its name is the hash of`);
    }
    keys.set(hostPath, bytes);
    return bytes;
  };
  for (const [name, text] of expected) {
    present.delete(name);
    const file =
      name === "cluster.json"
        ? path.join(root, "etc/crio/imagepolicy/cluster.json")
        : path.join(policyDir, name);
    const written = await readFile(file, "utf8").catch(() => undefined);
    if (written === undefined) {
      problems.push(`${name}: missing`);
      continue;
    }
    const verdictKey = `${sha256(written)} ${expectedHashes.get(name) ?? sha256(text)}`;
    let verdict = verdicts.get(verdictKey);
    if (verdict === undefined) {
      try {
        // The agent names key files where the compiler inlines keys (src/agent/keyFiles.ts).
        const got = inlineKeyPaths(written, HOST_KEYS_DIR, readKey);
        verdict = got === text ? "" : "differs from the offline compiler's";
        if (verdicts.size >= 100_000) verdicts.clear();
        verdicts.set(verdictKey, verdict);
      } catch (err) {
        verdict = (err as Error).message; // a key file missing or wrong: not remembered
      }
    }
    if (verdict !== "") problems.push(`${name}: ${verdict}`);
  }
  for (const extra of present) problems.push(`${extra}: not expected`);
  return problems;
}

/** "" (equal) or the difference, by the hashes of the text written and the text expected. */
const verdicts = new Map<string, string>();
const expectedHashCache = new WeakMap<ReadonlyMap<string, string>, Map<string, string>>();

function expectedHashesOf(expected: ReadonlyMap<string, string>): Map<string, string> {
  let hashes = expectedHashCache.get(expected);
  if (hashes === undefined) {
    hashes = new Map([...expected].map(([name, text]) => [name, sha256(text)]));
    expectedHashCache.set(expected, hashes);
  }
  return hashes;
}

function sha256(data: string): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

export const MiB = 1024 * 1024;
export const fmtMiB = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;
export const fmtBytes = (b: number): string =>
  b >= MiB ? `${(b / MiB).toFixed(1)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`;

// The network of a local node (test/support/node.ts): a network namespace of its own, joined to
// the host by one veth pair, so that the node's CNI bridge, its pods and kube-proxy's iptables
// rules live inside that namespace and nothing on the host's network changes apart from one veth
// end with a /30 address (removed with the namespace).
//
//   host                                  node network namespace `imagepolicy-node-<i>`
//   ipn<i>h 10.250.<i>.1/30  <-- veth -->  eth0 10.250.<i>.2/30, default route via 10.250.<i>.1
//   kube-apiserver, registry listen on     kubelet, CRI-O, kube-proxy; cni0 10.244.0.1/24 and
//   10.250.<i>.1                           the pods (masqueraded to 10.250.<i>.2 when they leave)
//
// Several nodes may run at once (another clone's tests, a demo): each takes the first free index
// by creating /run/imagepolicy-operator/nodes/<i> (mkdir is atomic), which records the owner's
// pid. A slot whose owner is dead is cleaned (its processes killed through its cgroup, its
// namespace deleted) and reused; nobody else's node is ever touched.
import { execFile } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { killCgroupTree } from "./cgroups.ts";

export class NodeNetworkError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface NodeNetwork {
  /** Slot number: the third octet of the veth addresses. */
  readonly index: number;
  /** Network namespace name (`ip netns`), e.g. `imagepolicy-node-0`. */
  readonly netns: string;
  /** Its bind mount, what `nsenter --net=` takes. */
  readonly netnsPath: string;
  /** Host end of the veth: where kube-apiserver and the registry listen for the node. */
  readonly hostAddress: string;
  /** Node end of the veth: the Node's InternalIP and the kubelet's address. */
  readonly nodeAddress: string;
  /** The pods' subnet on the node's bridge (inside the namespace only). */
  readonly podCidr: string;
  /** cgroupfs parent of every pod and of the node's processes, e.g. `/imagepolicy-node-0`. */
  readonly cgroupRoot: string;
  /** Deletes the namespace (and with it the veth pair) and frees the slot. Safe twice. */
  release(): Promise<void>;
}

const slotsDir = "/run/imagepolicy-operator/nodes";
const maxSlots = 64;
const podCidr = "10.244.0.0/24";

interface Owner {
  readonly pid: number;
  readonly dir: string;
}

/** Allocates a slot and creates its namespace and veth pair; `dir` is recorded as the owner's. */
export async function createNodeNetwork(dir: string): Promise<NodeNetwork> {
  await mkdir(slotsDir, { recursive: true });
  for (let index = 0; index < maxSlots; index++) {
    const slot = path.join(slotsDir, String(index));
    try {
      await mkdir(slot);
    } catch (error) {
      if (!isErrno(error, "EEXIST")) {
        throw new NodeNetworkError(`cannot create ${slot}`, { cause: error });
      }
      if (ownerAlive(slot)) continue;
      // A dead owner: clean what it left, then take the slot if nobody else did meanwhile.
      await cleanSlot(index);
      try {
        await mkdir(slot);
      } catch (again) {
        if (isErrno(again, "EEXIST")) continue;
        throw new NodeNetworkError(`cannot create ${slot}`, { cause: again });
      }
    }
    const owner: Owner = { pid: process.pid, dir };
    await writeFile(path.join(slot, "owner.json"), `${JSON.stringify(owner)}\n`);
    const network = names(index);
    try {
      await setUp(network);
    } catch (error) {
      await tearDown(index);
      await rm(slot, { recursive: true, force: true });
      throw new NodeNetworkError(`cannot create the node network ${network.netns}`, {
        cause: error,
      });
    }
    let released = false;
    return {
      ...network,
      podCidr,
      release: async () => {
        if (released) return;
        released = true;
        await tearDown(index);
        await rm(slot, { recursive: true, force: true });
      },
    };
  }
  throw new NodeNetworkError(`no free node slot under ${slotsDir} (${String(maxSlots)} in use)`);
}

/**
 * Every node slot whose owner process is gone: cleaned and freed. Returns their indexes. Live
 * nodes (their owner runs) are left alone.
 */
export async function cleanStaleNodes(): Promise<number[]> {
  let entries: string[];
  try {
    entries = readdirSync(slotsDir);
  } catch {
    return [];
  }
  const cleaned: number[] = [];
  for (const entry of entries) {
    const index = Number(entry);
    if (!Number.isInteger(index) || ownerAlive(path.join(slotsDir, entry))) continue;
    await cleanSlot(index);
    cleaned.push(index);
  }
  return cleaned;
}

/** The owner recorded in a slot (for hack/node-down), or undefined. */
export async function slotOwner(index: number): Promise<Owner | undefined> {
  try {
    return parseOwner(await readFile(path.join(slotsDir, String(index), "owner.json"), "utf8"));
  } catch {
    return undefined;
  }
}

function names(index: number): Omit<NodeNetwork, "release" | "podCidr"> {
  const netns = `imagepolicy-node-${String(index)}`;
  return {
    index,
    netns,
    netnsPath: `/run/netns/${netns}`,
    hostAddress: `10.250.${String(index)}.1`,
    nodeAddress: `10.250.${String(index)}.2`,
    cgroupRoot: `/${netns}`,
  };
}

const hostVeth = (index: number): string => `ipn${String(index)}h`;
const nodeVeth = (index: number): string => `ipn${String(index)}n`;

async function setUp(n: Omit<NodeNetwork, "release" | "podCidr">): Promise<void> {
  const inNs = (...args: string[]): string[] => ["-n", n.netns, ...args];
  await ip("netns", "add", n.netns);
  await ip("link", "add", hostVeth(n.index), "type", "veth", "peer", "name", nodeVeth(n.index));
  await ip("link", "set", nodeVeth(n.index), "netns", n.netns);
  await ip("addr", "add", `${n.hostAddress}/30`, "dev", hostVeth(n.index));
  await ip("link", "set", hostVeth(n.index), "up");
  await ip(...inNs("link", "set", nodeVeth(n.index), "name", "eth0"));
  await ip(...inNs("addr", "add", `${n.nodeAddress}/30`, "dev", "eth0"));
  await ip(...inNs("link", "set", "eth0", "up"));
  await ip(...inNs("link", "set", "lo", "up"));
  await ip(...inNs("route", "add", "default", "via", n.hostAddress));
  // Forwarding between the pods' bridge and eth0 (a per-namespace setting).
  await run("nsenter", [`--net=${n.netnsPath}`, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
}

async function tearDown(index: number): Promise<void> {
  const n = names(index);
  killCgroupTree(n.cgroupRoot);
  // Deleting the namespace deletes its veth end, and with it the host's.
  await run("ip", ["netns", "delete", n.netns]).catch(() => undefined);
  await run("ip", ["link", "delete", hostVeth(index)]).catch(() => undefined);
}

async function cleanSlot(index: number): Promise<void> {
  await tearDown(index);
  await rm(path.join(slotsDir, String(index)), { recursive: true, force: true });
}

function ownerAlive(slot: string): boolean {
  let owner: Owner | undefined;
  try {
    owner = parseOwner(readFileSync(path.join(slot, "owner.json"), "utf8"));
  } catch {
    // Being written right now by its owner, or left half-written by a crash: a slot without an
    // owner file counts as alive unless it is older than a minute.
    return slotYoung(slot);
  }
  if (owner === undefined) return slotYoung(slot);
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return !isErrno(error, "ESRCH");
  }
}

function slotYoung(slot: string): boolean {
  try {
    return Date.now() - statSync(slot).mtimeMs < 60_000;
  } catch {
    return false;
  }
}

function parseOwner(text: string): Owner | undefined {
  const value: unknown = JSON.parse(text);
  if (typeof value !== "object" || value === null) return undefined;
  const pid: unknown = Reflect.get(value, "pid");
  const dir: unknown = Reflect.get(value, "dir");
  return typeof pid === "number" && typeof dir === "string" ? { pid, dir } : undefined;
}

function ip(...args: string[]): Promise<string> {
  return run("ip", args);
}

function run(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: "utf8", timeout: 30_000 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve(stdout);
        return;
      }
      reject(
        new NodeNetworkError(`${file} ${args.join(" ")} failed: ${stderr.trim()}`, {
          cause: error,
        }),
      );
    });
  });
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && "code" in error && error.code === code;
}

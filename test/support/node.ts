// A real single-node Kubernetes node on this machine: CRI-O as the kubelet's runtime, the kubelet,
// kube-proxy and the CNI bridge, joined to a control plane started with
// `startControlPlane({ address: network.hostAddress, scheduler })` (test/support/controlPlane.ts).
// docs/local-node.md explains every setting; in short:
//
// - Network: the node's own network namespace (test/support/nodeNetwork.ts). The bridge, the pods
//   and kube-proxy's iptables rules live there; the host keeps one veth end.
// - Files: CRI-O and the kubelet share ONE private mount namespace (the kubelet prepares volume
//   mounts that runc then bind-mounts). There, /etc/crio, /etc/containers,
//   /usr/share/containers, /run/crio (= /var/run/crio), /var/log and /var/lib/cni are bind mounts
//   of directories under `<dir>/root`, so the shipped DaemonSet's hostPaths land in this node's
//   private files and the machine's own are never written. A mountpoint the host lacks is created
//   as an empty directory (the only trace on the host).
// - CRI-O runs with its default paths for the parts the operator touches (configuration
//   /etc/crio/crio.conf + /etc/crio/crio.conf.d, socket /var/run/crio/crio.sock, the stock
//   /etc/containers/policy.json until the imagepolicy drop-in is installed), so
//   config/crio/10-imagepolicy.conf installs as on any node.
// - cgroup v1 with the cgroupfs driver for both; the kubelet's cgroup root is the network slot's
//   (`/imagepolicy-node-<i>`), so every pod process can be found and killed.
// - This machine's root lacks CAP_SYS_RESOURCE: no process may lower its oom_score_adj. runc runs
//   behind a wrapper that raises a container's oomScoreAdj to the value the wrapper itself runs
//   with when the spec asks for less (system-node-critical and Guaranteed pods ask for -997), and
//   logs each change. Nothing else differs from a real node.
//
// Nothing is skipped: a binary that cannot be built, or a node that does not become Ready, throws
// with the last lines of the kubelet's and CRI-O's logs.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ControlPlane } from "./controlPlane.ts";
import { crioConfig, registriesConf, type RegistryEntry } from "./crio.ts";
import { killCgroupTree } from "./cgroups.ts";
import { execTool, type CommandResult } from "./execTool.ts";
import { ManagedProcess, ProcessStartError } from "./managedProcess.ts";
import type { NodeNetwork } from "./nodeNetwork.ts";

export class NodeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A hack/tools script failed. */
export class NodeBuildError extends NodeError {}

/** A node process exited, or the Node did not become Ready in time. */
export class NodeStartError extends NodeError {}

export type { CommandResult };

export interface NodeOptions {
  /** Working directory: the node's private files, CRI-O's storage, configuration, logs. */
  readonly dir: string;
  /** The Node's name (default `imagepolicy-node`). */
  readonly name?: string;
  readonly network: NodeNetwork;
  /** Started with `address: network.hostAddress`. */
  readonly controlPlane: ControlPlane;
  /** registries.conf entries (all plain HTTP): the local registry, prefix rewrites. */
  readonly registries: readonly (string | RegistryEntry)[];
  /** CRI-O's pause_image (a name the registries above can serve). */
  readonly pauseImage: string;
  /** How long the Node may take to become Ready (default 180 s). */
  readonly readyTimeoutMs?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface Node {
  readonly name: string;
  /** Host directory holding what the node sees under /etc/crio, /etc/containers, ... */
  readonly root: string;
  readonly kubeletVersion: string;
  readonly crioVersion: string;
  /** The host path of a path as the node (CRI-O, the kubelet, hostPath volumes) sees it. */
  hostPath(nodePath: string): string;
  /** crictl against this node's CRI-O; never throws on a non-zero exit. */
  crictl(args: readonly string[]): Promise<CommandResult>;
  /** Process ids of CRI-O and the kubelet (to show that neither restarted). */
  pids(): { readonly crio: number; readonly kubelet: number };
  /** Stops CRI-O (SIGTERM: running containers stay) and starts it again; waits for its socket. */
  restartCrio(): Promise<void>;
  /** The last lines of the kubelet's, CRI-O's and kube-proxy's logs. */
  logTail(lines?: number): Promise<string>;
  /** Stops everything and kills every pod process. Safe twice. */
  stop(): Promise<void>;
}

const repoRoot = path.resolve(import.meta.dirname, "../..");
const logTailLines = 40;

/** Paths the node sees privately: node path -> directory under `<dir>/root`. */
const privateMounts = [
  "/etc/crio",
  "/etc/containers",
  "/usr/share/containers",
  "/run/crio",
  "/var/log",
  "/var/lib/cni",
] as const;

/** Runs a hack/tools script that prints one directory (or reference) as its last line. */
export async function toolOutput(script: string): Promise<string> {
  const file = path.join(repoRoot, "hack/tools", script);
  const r = await execTool(file, [], { timeoutMs: 3_600_000 });
  const out = r.stdout.trim().split("\n").at(-1) ?? "";
  if (r.code !== 0 || out === "") {
    throw new NodeBuildError(
      `hack/tools/${script} failed (exit ${String(r.code)}):\n${lastLines(r.stderr, 40)}`,
    );
  }
  return out;
}

export async function startNode(opts: NodeOptions): Promise<Node> {
  const name = opts.name ?? "imagepolicy-node";
  const log = opts.log ?? ((): void => undefined);
  const dir = path.resolve(opts.dir);
  const root = path.join(dir, "root");
  const net = opts.network;
  const cp = opts.controlPlane;
  const d = (...parts: string[]): string => path.join(dir, ...parts);
  const hostPath = (nodePath: string): string => {
    const p = nodePath.replace(/^\/var\/run\//, "/run/");
    const mount = privateMounts.find((m) => p === m || p.startsWith(`${m}/`));
    if (mount === undefined) throw new NodeError(`${nodePath} is not private to the node`);
    return path.join(root, p);
  };

  const [crioBin, nodeBin, cniBin] = await Promise.all([
    toolOutput("crio.sh"),
    toolOutput("kubelet.sh"),
    toolOutput("cni.sh"),
  ]);
  const kubernetesVersion = cp.kubernetesVersion;

  for (const m of privateMounts) await mkdir(path.join(root, m), { recursive: true });
  for (const sub of [
    "logs",
    "bin",
    "crio/tmp",
    "kubelet",
    "etc/cni/net.d",
    "root/etc/crio/crio.conf.d",
    "root/etc/containers/registries.d",
    "root/etc/containers/registries.conf.d",
    "root/usr/share/containers/registries.d",
    "root/var/log/pods",
    "root/var/log/containers",
    "root/var/lib/cni/networks",
  ]) {
    await mkdir(d(sub), { recursive: true });
  }

  // --- configuration files -------------------------------------------------------------------
  const socket = "/var/run/crio/crio.sock";
  const runcWrapper = d("bin", "runc");
  await writeFile(runcWrapper, runcOomFloorWrapper(path.join(crioBin, "runc"), d("logs")), {
    mode: 0o755,
  });
  await writeFile(
    hostPath("/etc/crio/crio.conf"),
    crioConfig({
      dir: d("crio"),
      socket,
      binDir: crioBin,
      runcPath: runcWrapper,
      storageDriver: "overlay",
      pauseImage: opts.pauseImage,
      streamAddress: net.nodeAddress,
      logDir: "/var/log/crio/pods",
      cni: { networkDir: d("etc/cni/net.d"), pluginDirs: [cniBin] },
      hostPortMapping: true,
    }),
  );
  await writeFile(hostPath("/etc/containers/registries.conf"), registriesConf(opts.registries));
  // The stock policy of a node without the operator's drop-in: accept anything.
  await writeFile(
    hostPath("/etc/containers/policy.json"),
    `${JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }, null, 2)}\n`,
  );
  await writeFile(
    d("etc/cni/net.d/10-imagepolicy-node.conflist"),
    `${JSON.stringify(cniConfig(net.podCidr, hostPath("/var/lib/cni/networks")), null, 2)}\n`,
  );
  const resolvConf = d("kubelet", "resolv.conf");
  await writeFile(resolvConf, "# no DNS on the local node: pods use the kubernetes Service IP\n");

  const kubeletKubeconfig = await cp.clientKubeconfig(d("kubelet", "kubeconfig"), {
    user: `system:node:${name}`,
    groups: ["system:nodes"],
  });
  const proxyKubeconfig = await cp.clientKubeconfig(d("kube-proxy.kubeconfig"), {
    user: "system:kube-proxy",
  });
  const kubeletConfigFile = d("kubelet", "config.json");
  await writeFile(
    kubeletConfigFile,
    `${JSON.stringify(kubeletConfig({ cgroupRoot: net.cgroupRoot, address: net.nodeAddress, clientCaFile: cp.caCertPath, resolvConf, socket, podCidr: net.podCidr }), null, 2)}\n`,
  );
  const proxyConfigFile = d("kube-proxy.json");
  await writeFile(
    proxyConfigFile,
    `${JSON.stringify(kubeProxyConfig({ kubeconfig: proxyKubeconfig, name, podCidr: net.podCidr }), null, 2)}\n`,
  );
  createCgroupRoot(net.cgroupRoot);

  // --- processes ------------------------------------------------------------------------------
  const processes: ManagedProcess[] = [];
  const killAllNow = (): void => {
    for (const p of processes) p.killNow();
    killCgroupTree(net.cgroupRoot);
  };
  process.once("exit", killAllNow);

  const holderScript = d("mount-namespace.sh");
  await writeFile(holderScript, holderScriptText, { mode: 0o755 });
  const holderReady = d("mount-namespace.ready");
  const holder = ManagedProcess.spawn(
    "mount-namespace",
    "nsenter",
    [
      `--net=${net.netnsPath}`,
      "--",
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
      "/bin/sh",
      holderScript,
      holderReady,
      ...privateMounts.flatMap((m) => [path.join(root, m), m]),
    ],
    d("logs", "mount-namespace.log"),
  );
  processes.push(holder);

  const env: NodeJS.ProcessEnv = {
    PATH: `${crioBin}:${cniBin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: d("crio"),
    TMPDIR: d("crio"),
  };
  const inNode = (
    label: string,
    file: string,
    args: readonly string[],
    logName: string,
  ): ManagedProcess =>
    ManagedProcess.spawn(
      label,
      "nsenter",
      [`--net=${net.netnsPath}`, `--mount=/proc/${String(holder.pid)}/ns/mnt`, "--", file, ...args],
      d("logs", logName),
      { env, stopGraceMs: 10_000 },
    );

  /** The running CRI-O and kubelet. */
  const current: { crio?: ManagedProcess; kubelet?: ManagedProcess } = {};
  const crictlConfig = d("crictl.yaml");
  const hostSocket = hostPath(socket);
  await writeFile(
    crictlConfig,
    `runtime-endpoint: unix://${hostSocket}\nimage-endpoint: unix://${hostSocket}\ntimeout: 60\n`,
  );
  const crictl = (args: readonly string[]): Promise<CommandResult> =>
    execTool(path.join(crioBin, "crictl"), ["--config", crictlConfig, ...args], {
      timeoutMs: 120_000,
    });

  const startCrio = async (): Promise<void> => {
    const p = inNode("crio", path.join(crioBin, "crio"), ["--log-level", "info"], "crio.log");
    processes.push(p);
    current.crio = p;
    await p.waitReady(120_000, async () => (await crictl(["version"])).code === 0, logTail);
  };

  const logTail = async (lines = logTailLines): Promise<string> => {
    const files = ["kubelet.log", "crio.log", "kube-proxy.log", "mount-namespace.log"];
    const parts = await Promise.all(
      files.map(async (f) => {
        const text = await readFile(d("logs", f), "utf8").catch(() => undefined);
        return text === undefined
          ? ""
          : `--- last ${String(lines)} lines of ${d("logs", f)} ---\n${lastLines(text, lines)}`;
      }),
    );
    return parts.filter((p) => p !== "").join("\n");
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // The kubelet first (it would restart what is killed), then the pods, then the rest.
    for (const p of [...processes].reverse()) {
      if (p.name === "kubelet" || p.name === "kube-proxy") await p.stop();
    }
    if (current.crio !== undefined && !current.crio.exited) {
      await crictl(["rmp", "--all", "--force"]).catch(() => undefined);
    }
    for (const p of [...processes].reverse()) await p.stop();
    killCgroupTree(net.cgroupRoot);
    process.removeListener("exit", killAllNow);
  };

  try {
    log("starting the node's mount namespace");
    await holder.waitReady(
      30_000,
      () =>
        stat(holderReady).then(
          () => true,
          () => false,
        ),
      logTail,
    );
    log("starting CRI-O");
    await startCrio();
    log("starting the kubelet and kube-proxy");
    const kubelet = inNode(
      "kubelet",
      path.join(nodeBin, "kubelet"),
      [
        `--config=${kubeletConfigFile}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--hostname-override=${name}`,
        `--node-ip=${net.nodeAddress}`,
        `--root-dir=${d("kubelet", "root")}`,
        `--cert-dir=${d("kubelet", "pki")}`,
        "--v=2",
      ],
      "kubelet.log",
    );
    processes.push(kubelet);
    current.kubelet = kubelet;
    processes.push(
      inNode(
        "kube-proxy",
        path.join(nodeBin, "kube-proxy"),
        [`--config=${proxyConfigFile}`, "--v=2"],
        "kube-proxy.log",
      ),
    );
    log(`waiting for Node ${name} to be Ready (kubelet ${kubernetesVersion})`);
    const readyTimeoutMs = opts.readyTimeoutMs ?? 180_000;
    await kubelet.waitReady(
      readyTimeoutMs,
      async () => {
        const r = await cp.kubectl([
          "get",
          "node",
          name,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return r.code === 0 && r.stdout.trim() === "True";
      },
      async () => {
        const conditions = await cp.kubectl(["get", "node", name, "-o", "jsonpath={.status}"]);
        return `Node ${name} status: ${conditions.stdout.slice(0, 2_000)} ${conditions.stderr}\n${await logTail()}`;
      },
    );
  } catch (error) {
    const tailText = await logTail();
    await stop();
    // A readiness failure already carries the logs; anything else gets them here.
    const detail =
      error instanceof ProcessStartError
        ? error.message
        : `${error instanceof Error ? error.message : String(error)}\n${tailText}`;
    throw new NodeStartError(`the node ${name} did not start: ${detail}`, { cause: error });
  }

  const crioVersion =
    /RuntimeVersion:\s*(\S+)/.exec((await crictl(["version"])).stdout)?.[1] ?? "unknown";

  return {
    name,
    root,
    kubeletVersion: kubernetesVersion,
    crioVersion,
    hostPath,
    crictl,
    pids: () => ({ crio: current.crio?.pid ?? -1, kubelet: current.kubelet?.pid ?? -1 }),
    restartCrio: async () => {
      if (current.crio !== undefined) await current.crio.stop();
      await startCrio();
    },
    logTail,
    stop,
  };
}

/** Installs config/crio/10-imagepolicy.conf into the node's /etc/crio/crio.conf.d. */
export async function installCrioDropIn(node: Node): Promise<string> {
  const target = node.hostPath("/etc/crio/crio.conf.d/10-imagepolicy.conf");
  await copyFile(path.join(repoRoot, "config/crio/10-imagepolicy.conf"), target);
  return target;
}

// ---------------------------------------------------------------------------------------------
// Configuration

function cniConfig(podCidr: string, dataDir: string): object {
  return {
    cniVersion: "1.0.0",
    name: "imagepolicy-node",
    plugins: [
      {
        type: "bridge",
        bridge: "cni0",
        isGateway: true,
        // Pod traffic that leaves the node (to the API server, the registry) is masqueraded to
        // the node's address: the host needs no route to the pod subnet.
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: podCidr }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir,
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
}

function kubeletConfig(c: {
  cgroupRoot: string;
  address: string;
  clientCaFile: string;
  resolvConf: string;
  socket: string;
  podCidr: string;
}): object {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // cgroup v1 on these machines: kubelet 1.35+ refuses it unless told otherwise.
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    cgroupRoot: c.cgroupRoot,
    failSwapOn: false,
    // The kubelet's own oom_score_adj (default -999): lowering it needs CAP_SYS_RESOURCE.
    oomScoreAdj: 0,
    containerRuntimeEndpoint: `unix://${c.socket}`,
    address: c.address,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: 10248,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: c.clientCaFile },
    },
    authorization: { mode: "Webhook" },
    clusterDomain: "cluster.local",
    resolvConf: c.resolvConf,
    podCIDR: c.podCidr,
    // Shared machine and temporary directories: never evict or taint for disk or memory here.
    evictionHard: {
      "memory.available": "1Mi",
      "nodefs.available": "0%",
      "nodefs.inodesFree": "0%",
      "imagefs.available": "0%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    registerNode: true,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    shutdownGracePeriod: "0s",
    // Faster feedback than the defaults; nothing else depends on them.
    nodeStatusUpdateFrequency: "5s",
    syncFrequency: "10s",
  };
}

function kubeProxyConfig(c: { kubeconfig: string; name: string; podCidr: string }): object {
  return {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig: c.kubeconfig },
    mode: "iptables",
    hostnameOverride: c.name,
    clusterCIDR: c.podCidr,
    bindAddress: "0.0.0.0",
    metricsBindAddress: "127.0.0.1:10249",
    healthzBindAddress: "127.0.0.1:10256",
    // 0 leaves the host-wide conntrack table size and timeouts alone.
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: "0s",
      tcpCloseWaitTimeout: "0s",
    },
  };
}

/** The kubelet checks that its cgroup root exists in every hierarchy. */
function createCgroupRoot(cgroupRoot: string): void {
  let hierarchies: string[];
  try {
    hierarchies = readdirSync("/sys/fs/cgroup", { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => path.join("/sys/fs/cgroup", e.name));
  } catch (error) {
    throw new NodeStartError("cannot read /sys/fs/cgroup", { cause: error });
  }
  for (const h of hierarchies) {
    const p = path.join(h, cgroupRoot);
    mkdirSync(p, { recursive: true });
    // A new cpuset is empty; its processes could run nowhere.
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      try {
        if (readFileSync(path.join(p, f), "utf8").trim() === "") {
          writeFileSync(path.join(p, f), readFileSync(path.join(h, f), "utf8"));
        }
      } catch {
        // not the cpuset hierarchy
      }
    }
  }
}

// Runs inside `unshare --mount --propagation private` in the node's network namespace: binds the
// node's private directories, signals readiness, then holds the namespace open.
// $1: ready marker; then pairs of (source, mountpoint).
const holderScriptText = `#!/bin/sh
# Generated by test/support/node.ts: the node's private mount namespace.
set -eu
ready=$1
shift
while [ $# -ge 2 ]; do
  # The mountpoint must exist: an empty directory is created on the host when it has none.
  [ -d "$2" ] || mkdir -p "$2"
  mount --bind "$1" "$2"
  shift 2
done
# This machine's hugetlb controller is on the cgroup2 hierarchy (hybrid mode); runc, in cgroup v1
# mode, finds no hugetlb hierarchy and fails every container to which the kubelet gives the
# default zero hugepage limits (one per size listed here). Hidden from the node, the kubelet
# lists no page size and sends no limit.
if [ -d /sys/kernel/mm/hugepages ]; then
  mount -t tmpfs -o ro,size=4k,mode=0555 imagepolicy-node-no-hugepages /sys/kernel/mm/hugepages
fi
touch "$ready"
exec sleep infinity
`;

/**
 * A runc in front of the real one. This machine's root lacks CAP_SYS_RESOURCE, so runc cannot
 * give a container an oom_score_adj lower than its own (`write /proc/self/oom_score_adj:
 * permission denied`); the kubelet asks -997 for Guaranteed and system-node-critical pods. The
 * wrapper raises such a value in the bundle's config.json (or an exec's process.json) to the one
 * it runs with itself, which runc can always set, and logs it. Nothing else is changed.
 */
function runcOomFloorWrapper(runc: string, logDir: string): string {
  return `#!/bin/sh
# Generated by test/support/node.ts; see docs/local-node.md ("oom_score_adj").
floor=$(cat /proc/self/oom_score_adj)
spec=
prev=
for arg in "$@"; do
  case "$prev" in
    --bundle|-b) spec="$arg/config.json" ;;
    --process|-p) spec="$arg" ;;
  esac
  case "$arg" in
    --bundle=*) spec="\${arg#--bundle=}/config.json" ;;
    --process=*) spec="\${arg#--process=}" ;;
  esac
  prev=$arg
done
if [ -n "$spec" ] && [ -f "$spec" ]; then
  want=$(sed -n 's/.*"oomScoreAdj": *\\(-\\{0,1\\}[0-9][0-9]*\\).*/\\1/p' "$spec")
  if [ -n "$want" ] && [ "$want" -lt "$floor" ]; then
    sed -i "s/\\"oomScoreAdj\\": *-\\{0,1\\}[0-9][0-9]*/\\"oomScoreAdj\\":$floor/" "$spec"
    echo "$(date -u +%FT%TZ) oomScoreAdj $want -> $floor in $spec" >>${JSON.stringify(path.join(logDir, "runc-oom-floor.log"))}
  fi
fi
exec ${JSON.stringify(runc)} "$@"
`;
}

function lastLines(text: string, n: number): string {
  return text
    .trimEnd()
    .split("\n")
    .slice(-n)
    .map((l) => (l.length > 600 ? `${l.slice(0, 600)}...` : l))
    .join("\n");
}

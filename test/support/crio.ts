// A real CRI-O for end-to-end pull tests, built by hack/tools/crio.sh and run as a plain child
// process (no systemd, no kubelet): cgroupfs cgroup manager, vfs storage, its own socket, state
// directories and logs, all under `dir`. crictl talks to it through a generated crictl.yaml.
//
// CRI-O has no option for the registries.d directory: containers-image reads
// /etc/containers/registries.d. So CRI-O runs in its own mount namespace (`unshare --mount
// --propagation private`) where a small wrapper bind-mounts a private directory over
// /etc/containers (holding the generated registries.conf) and `registriesDDir` over its
// registries.d. The machine's own files are never written; the only host-visible trace is an
// empty /etc/containers mountpoint, created only when the host has none.
//
// Nothing here is skipped: a binary that cannot be built or a CRI-O that does not become ready
// throws with the tail of its log.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { killCgroupTree } from "./cgroups.ts";
import { execTool, type CommandResult } from "./execTool.ts";

export type { CommandResult };
import { setTimeout as delay } from "node:timers/promises";

export interface PullResult {
  readonly ok: boolean;
  /** crictl's stderr and stdout; on refusal it carries CRI-O's error message. */
  readonly output: string;
}

export interface CrioOptions {
  /** Working directory for configuration, storage, state, sockets and logs. */
  readonly dir: string;
  /** CRI-O `signature_policy`: the global (cluster) policy.json. */
  readonly signaturePolicy: string;
  /** CRI-O `signature_policy_dir`: `<namespace>.json` files. */
  readonly signaturePolicyDir: string;
  /** Bind-mounted onto /etc/containers/registries.d inside CRI-O's mount namespace. */
  readonly registriesDDir: string;
  /** `host[:port]` locations marked `insecure = true` (plain HTTP allowed) in registries.conf. */
  readonly insecureRegistries: readonly string[];
  /** CRI-O `pause_image`, needed only for `crictl runp`; must be pullable from a local registry. */
  readonly pauseImage?: string;
  /** CRI-O `pause_command` (default: the pause image's own entrypoint). */
  readonly pauseCommand?: string;
  /** How long CRI-O may take to answer on its socket (default 120 s). */
  readonly readyTimeoutMs?: number;
}

export interface Crio {
  /** CRI-O version, e.g. `1.36.3`. */
  readonly version: string;
  /** Directory holding crio, crictl, pinns, runc (default runtime), crun, conmon. */
  readonly binDir: string;
  /** CRI-O's unix socket path. */
  readonly socket: string;
  /** CRI-O's own log file. */
  readonly logFile: string;
  /**
   * cgroupfs parent that pod configs from `podConfig` use; every process of such a pod (conmon
   * included) is in it, so `stop` can kill them all.
   */
  readonly cgroupParent: string;
  /** Runs crictl against this CRI-O; never throws on a non-zero exit code. */
  crictl(
    args: readonly string[],
    options?: { readonly timeoutMs?: number },
  ): Promise<CommandResult>;
  /**
   * Pulls an image, with a pod sandbox config carrying `namespace` when given (so CRI-O uses
   * `<signature_policy_dir>/<namespace>.json`), else a plain pull; then removes the image so the
   * next pull really pulls and is checked again.
   */
  pull(image: string, options?: { readonly namespace?: string }): Promise<PullResult>;
  /** Writes a pod sandbox config (JSON for crictl) under dir and returns its path. */
  podConfig(name: string, namespace: string): Promise<string>;
  /** CRI-O's effective configuration as TOML (`crio status config` over the socket). */
  configInfo(): Promise<string>;
  /** The last `lines` lines of CRI-O's log. */
  logTail(lines?: number): Promise<string>;
  /** Removes every pod, stops CRI-O and kills every process it left. Safe to call twice. */
  stop(): Promise<void>;
}

export class CrioError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** hack/tools/crio.sh failed. */
export class CrioBuildError extends CrioError {}

/** CRI-O exited or did not become ready in time. */
export class CrioStartError extends CrioError {}

/** A command could not be run at all. */
export class CrioCommandError extends CrioError {}

const repoRoot = path.resolve(import.meta.dirname, "../..");
const buildScript = path.join(repoRoot, "hack/tools/crio.sh");
const logTailLines = 60;
const stopGraceMs = 15_000;

export async function startCrio(opts: CrioOptions): Promise<Crio> {
  const dir = path.resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const binDir = await buildBinaries();
  const bin = (name: string): string => path.join(binDir, name);

  const d = (...parts: string[]): string => path.join(dir, ...parts);
  const socket = d("crio.sock");
  const logFile = d("logs", "crio.log");
  const configFile = d("crio.conf");
  const configDir = d("crio.conf.d");
  const privateEtc = d("etc-containers");
  const crictlConfig = d("crictl.yaml");
  const cgroupParent = `/imagepolicy-e2e-${String(process.pid)}-${path.basename(dir)}`;
  for (const sub of [
    "logs",
    "crio.conf.d",
    "etc-containers/registries.d",
    "pod-logs",
    "exits",
    "attach",
    "ns",
    "crun",
    "runc",
    "cni/net.d",
    "cni/bin",
    "hooks.d",
    "cdi",
    "keys",
    "tmp",
    "home",
    "pods",
  ]) {
    await mkdir(d(sub), { recursive: true });
  }

  await writeFile(
    configFile,
    crioConfig({
      dir,
      socket,
      binDir,
      storageDriver: "vfs",
      signaturePolicy: path.resolve(opts.signaturePolicy),
      signaturePolicyDir: path.resolve(opts.signaturePolicyDir),
      ...(opts.pauseImage === undefined ? {} : { pauseImage: opts.pauseImage }),
      pauseCommand: opts.pauseCommand ?? "",
      streamAddress: "127.0.0.1",
      logDir: d("pod-logs"),
      cni: { networkDir: d("cni", "net.d"), pluginDirs: [d("cni", "bin")] },
    }),
  );
  await writeFile(
    path.join(privateEtc, "registries.conf"),
    registriesConf(opts.insecureRegistries),
  );
  await writeFile(
    crictlConfig,
    [
      `runtime-endpoint: unix://${socket}`,
      `image-endpoint: unix://${socket}`,
      "timeout: 120",
      "debug: false",
      "pull-image-on-create: false",
      "",
    ].join("\n"),
  );
  const wrapper = d("crio-in-mount-namespace.sh");
  await writeFile(wrapper, wrapperScript, { mode: 0o755 });

  const env: NodeJS.ProcessEnv = {
    PATH: `${binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    // containers-image prefers $HOME/.config/containers/registries.d over /etc: keep it empty.
    HOME: d("home"),
    XDG_CONFIG_HOME: d("home", ".config"),
    TMPDIR: d("tmp"),
    // Never reach the Internet: only the local registry (loopback) is allowed.
    HTTP_PROXY: "http://127.0.0.1:9",
    HTTPS_PROXY: "http://127.0.0.1:9",
    NO_PROXY: "127.0.0.1,localhost",
  };

  const logFd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        wrapper,
        privateEtc,
        path.resolve(opts.registriesDDir),
        bin("crio"),
        "--config",
        configFile,
        "--config-dir",
        configDir,
        "--log-level",
        "info",
      ],
      { detached: true, stdio: ["ignore", logFd, logFd], env },
    );
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new CrioStartError(`cannot spawn unshare for crio\n${await tail(logFile)}`);
  }
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  child.once("error", () => {
    exited ??= { code: null, signal: null };
  });

  let stopped = false;
  const killNow = (): void => {
    killGroup(pid, "SIGKILL");
    killCgroupTree(cgroupParent);
  };
  process.once("exit", killNow);

  const crictl = (
    args: readonly string[],
    options: { readonly timeoutMs?: number } = {},
  ): Promise<CommandResult> =>
    execTool(bin("crictl"), ["--config", crictlConfig, ...args], {
      env,
      timeoutMs: options.timeoutMs ?? 180_000,
    });

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (exited === undefined) {
      // Stop and remove every pod, so conmon and the containers go away through CRI-O.
      await crictl(["rmp", "--all", "--force"], { timeoutMs: 60_000 }).catch(() => undefined);
      killGroup(pid, "SIGTERM");
      const timedOut = await Promise.race([
        exitPromise.then(() => false),
        delay(stopGraceMs).then(() => true),
      ]);
      if (timedOut) killGroup(pid, "SIGKILL");
      await Promise.race([exitPromise, delay(5_000)]);
    }
    killCgroupTree(cgroupParent);
    process.removeListener("exit", killNow);
  };

  // Wait for the socket to answer.
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const deadline = Date.now() + readyTimeoutMs;
  let lastError = "";
  for (;;) {
    if (exited !== undefined) {
      await stop();
      throw new CrioStartError(
        `crio exited during startup (code ${String(exited.code)}, signal ${String(exited.signal)})\n${await tail(logFile)}`,
      );
    }
    const r = await crictl(["version"], { timeoutMs: 10_000 }).catch((err: unknown) => {
      lastError = err instanceof Error ? err.message : String(err);
      return undefined;
    });
    if (r?.code === 0) break;
    if (r !== undefined) lastError = `${r.stderr}${r.stdout}`.trim();
    if (Date.now() > deadline) {
      await stop();
      throw new CrioStartError(
        `crio did not answer on ${socket} within ${String(readyTimeoutMs)} ms: ${lastError}\n${await tail(logFile)}`,
      );
    }
    await delay(250);
  }

  const versionOut = await crictl(["version"]);
  const version = /RuntimeVersion:\s*(\S+)/.exec(versionOut.stdout)?.[1] ?? "unknown";

  const podConfig = async (name: string, namespace: string): Promise<string> => {
    const file = d("pods", `${namespace}-${name}.json`);
    const config = {
      metadata: { name, namespace, uid: `${namespace}-${name}-uid`, attempt: 0 },
      log_directory: d("pod-logs", `${namespace}-${name}`),
      linux: {
        cgroup_parent: cgroupParent,
        // network NODE: host network, no CNI plugin is needed. pid CONTAINER: with
        // drop_infra_ctr (default) CRI-O then runs no infra (pause) container, whose
        // oom_score_adj -998 needs CAP_SYS_RESOURCE, which these machines' root lacks.
        security_context: { namespace_options: { network: 2, pid: 1 } },
      },
    };
    await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
    return file;
  };

  const pull = async (
    image: string,
    options: { readonly namespace?: string } = {},
  ): Promise<PullResult> => {
    const args = ["pull"];
    if (options.namespace !== undefined) {
      args.push("--pod-config", await podConfig("imagepolicy-pull", options.namespace));
    }
    args.push(image);
    const r = await crictl(args);
    if (r.code === 0) {
      const rmi = await crictl(["rmi", image]);
      if (rmi.code !== 0) {
        throw new CrioCommandError(
          `crictl rmi ${image} after a successful pull failed: ${rmi.stderr}${rmi.stdout}`,
        );
      }
    }
    return { ok: r.code === 0, output: `${r.stderr.trim()}\n${r.stdout.trim()}`.trim() };
  };

  const configInfo = async (): Promise<string> => {
    const r = await execTool(
      bin("crio"),
      ["--config", configFile, "--config-dir", configDir, "status", "--socket", socket, "config"],
      { env, timeoutMs: 30_000 },
    );
    if (r.code !== 0) {
      throw new CrioCommandError(`crio status config failed (${String(r.code)}): ${r.stderr}`);
    }
    return r.stdout;
  };

  return {
    version,
    binDir,
    socket,
    logFile,
    cgroupParent,
    crictl,
    pull,
    podConfig,
    configInfo,
    logTail: (lines?: number) => tail(logFile, lines),
    stop,
  };
}

async function buildBinaries(): Promise<string> {
  const r = await execTool(buildScript, [], { env: process.env, timeoutMs: 3_600_000 });
  const binDir = r.stdout.trim().split("\n").at(-1) ?? "";
  if (r.code !== 0 || binDir === "") {
    throw new CrioBuildError(
      `${buildScript} failed (${String(r.code)}):\n${lastLines(r.stderr, logTailLines)}`,
    );
  }
  return binDir;
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** What differs between the CRI-O configurations generated here (e2e and the local node). */
export interface CrioConfig {
  /** State directory: storage, runtime state, exits, namespaces. */
  readonly dir: string;
  readonly socket: string;
  /** Directory of crio, pinns, runc, crun and conmon (hack/tools/crio.sh). */
  readonly binDir: string;
  /** The `runc` runtime's binary (default `<binDir>/runc`). */
  readonly runcPath?: string;
  /** vfs works everywhere; overlay shares the image's layers between containers. */
  readonly storageDriver: "vfs" | "overlay";
  /** `signature_policy`; omitted, CRI-O's default (/etc/containers/policy.json) applies. */
  readonly signaturePolicy?: string;
  readonly signaturePolicyDir?: string;
  readonly pauseImage?: string;
  readonly pauseCommand?: string;
  /** Address of the streaming server (exec, attach, port-forward). */
  readonly streamAddress: string;
  /** Default directory of the containers' logs (the kubelet passes its own per pod). */
  readonly logDir: string;
  readonly cni: { readonly networkDir: string; readonly pluginDirs: readonly string[] };
  /** Needs iptables; off unless asked for. */
  readonly hostPortMapping?: boolean;
}

/** A complete CRI-O configuration file (TOML). */
export function crioConfig(c: CrioConfig): string {
  const d = (...parts: string[]): string => tomlString(path.join(c.dir, ...parts));
  const b = (name: string): string => tomlString(path.join(c.binDir, name));
  const optional = (key: string, value: string | undefined): string =>
    value === undefined ? "" : `${key} = ${tomlString(value)}\n`;
  return `# Generated by test/support/crio.ts
[crio]
root = ${d("storage")}
runroot = ${d("run", "storage")}
storage_driver = ${tomlString(c.storageDriver)}
log_dir = ${tomlString(c.logDir)}
version_file = ${d("run", "version")}
version_file_persist = ${d("version-persist")}
clean_shutdown_file = ${d("clean.shutdown")}
internal_wipe = true
internal_repair = false

[crio.api]
listen = ${tomlString(c.socket)}
stream_address = ${tomlString(c.streamAddress)}
stream_port = "0"

[crio.runtime]
# Debian 12's crun 1.8.1 cannot read the runtime-spec 1.3.0 CRI-O 1.36 writes; runc 1.4 can.
default_runtime = "runc"
cgroup_manager = "cgroupfs"
selinux = false
log_to_journald = false
container_exits_dir = ${d("exits")}
container_attach_socket_dir = ${d("attach")}
namespaces_dir = ${d("ns")}
pinns_path = ${b("pinns")}
hooks_dir = [${d("hooks.d")}]
cdi_spec_dirs = [${d("cdi")}]
decryption_keys_path = ${d("keys")}
irqbalance_config_file = ${d("irqbalance")}
irqbalance_config_restore_file = ""
default_sysctls = []
# No infra (pause) container for pods that do not share their PID namespace: CRI-O then creates
# the pod's namespaces with pinns alone. The infra container asks for oom_score_adj -998.
drop_infra_ctr = true
disable_hostport_mapping = ${c.hostPortMapping === true ? "false" : "true"}

[crio.runtime.runtimes.runc]
runtime_path = ${c.runcPath === undefined ? b("runc") : tomlString(c.runcPath)}
runtime_type = "oci"
runtime_root = ${d("runc")}
monitor_path = ${b("conmon")}
monitor_cgroup = "pod"

[crio.runtime.runtimes.crun]
runtime_path = ${b("crun")}
runtime_type = "oci"
runtime_root = ${d("crun")}
monitor_path = ${b("conmon")}
monitor_cgroup = "pod"

[crio.image]
${optional("signature_policy", c.signaturePolicy)}${optional("signature_policy_dir", c.signaturePolicyDir)}big_files_temporary_dir = ${d("tmp")}
${optional("pause_image", c.pauseImage)}${optional("pause_command", c.pauseCommand)}
[crio.network]
network_dir = ${tomlString(c.cni.networkDir)}
plugin_dirs = [${c.cni.pluginDirs.map(tomlString).join(", ")}]

[crio.metrics]
enable_metrics = false

[crio.tracing]
enable_tracing = false

[crio.nri]
enable_nri = false
`;
}

/** A registry of registries.conf: plain HTTP allowed; `prefix` pulls go to `location`. */
export interface RegistryEntry {
  readonly location: string;
  readonly prefix?: string;
}

/** registries.conf: no short-name search; every entry insecure (plain HTTP). */
export function registriesConf(entries: readonly (string | RegistryEntry)[]): string {
  const lines = ["# Generated by test/support/crio.ts", "unqualified-search-registries = []", ""];
  for (const entry of entries) {
    const e = typeof entry === "string" ? { location: entry } : entry;
    lines.push("[[registry]]");
    if (e.prefix !== undefined) lines.push(`prefix = ${tomlString(e.prefix)}`);
    lines.push(`location = ${tomlString(e.location)}`, "insecure = true", "");
  }
  return lines.join("\n");
}

// Runs inside `unshare --mount --propagation private`: nothing mounted here is seen outside.
// $1 private /etc/containers, $2 registries.d, then the command to exec.
const wrapperScript = `#!/bin/sh
# Generated by test/support/crio.ts; runs in CRI-O's private mount namespace.
set -eu
private_etc=$1
registries_d=$2
shift 2
# The mountpoint must exist; create it on the host only when the host has none (empty dir).
[ -d /etc/containers ] || mkdir /etc/containers
mount --bind "$private_etc" /etc/containers
mkdir -p /etc/containers/registries.d
mount --bind "$registries_d" /etc/containers/registries.d
if [ -d /usr/share/containers/registries.d ]; then
  mount --bind "$registries_d" /usr/share/containers/registries.d
fi
exec "$@"
`;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

async function tail(file: string, lines = logTailLines): Promise<string> {
  try {
    return `--- last ${String(lines)} lines of ${file} ---\n${lastLines(await readFile(file, "utf8"), lines)}`;
  } catch (err) {
    return `(cannot read ${file}: ${err instanceof Error ? err.message : String(err)})`;
  }
}

function lastLines(text: string, n: number): string {
  // CRI-O logs its whole configuration on one line: keep each line short.
  return text
    .trimEnd()
    .split("\n")
    .slice(-n)
    .map((l) => (l.length > 1_000 ? `${l.slice(0, 1_000)}...` : l))
    .join("\n");
}

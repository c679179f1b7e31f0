// `imagepolicy agent` flags -> a typed configuration. The environment is read here once
// (NODE_NAME), never elsewhere.

import { parseArgs } from "node:util";
import type { KubeConfigSource } from "../kube/index.ts";
import type { HostLocations } from "./hostPaths.ts";
import { parseLevel, type LevelName } from "./log.ts";

export interface AgentConfig {
  readonly kubeconfig: KubeConfigSource;
  readonly namespace: string;
  readonly nodeName: string;
  readonly host: HostLocations;
  /** Overrides the Node's containerRuntimeVersion (implies CRI-O). */
  readonly crioVersion?: string;
  /** The paths CRI-O's configuration must name (as CRI-O sees them). */
  readonly expectedPolicyPath: string;
  readonly expectedPolicyDir: string;
  readonly metricsAddr?: string;
  readonly healthAddr?: string;
  readonly probeIntervalMs: number;
  readonly statusDelayMs: number;
  readonly logLevel: LevelName;
}

export const AGENT_USAGE = `usage: imagepolicy agent [flags]
  --kubeconfig PATH            kubeconfig (default: in-cluster configuration)
  --namespace NS               namespace of the layer ConfigMaps (default imagepolicy-system)
  --node-name NAME             this node (default: $NODE_NAME)
  --root DIR                   prefix of every host path below (default /)
  --policy-path PATH           cluster policy, CRI-O signature_policy (default /etc/crio/imagepolicy/cluster.json)
  --policy-dir DIR             namespace policies, CRI-O signature_policy_dir (default /etc/crio/policies)
  --registries-d DIR           where imagepolicy.yaml goes (default /etc/containers/registries.d)
  --system-registries-d DIR    read only (default /usr/share/containers/registries.d)
  --registries-conf PATH       read only, mirrors; its .d directory too (default /etc/containers/registries.conf)
  --crio-socket PATH           CRI-O's socket (default /var/run/crio/crio.sock)
  --crio-version X.Y.Z         CRI-O version (default: the Node's status.nodeInfo.containerRuntimeVersion)
  --crio-expected-policy-path  signature_policy CRI-O must use (default: --policy-path)
  --crio-expected-policy-dir   signature_policy_dir CRI-O must use (default: --policy-dir)
  --probe-interval SECONDS     how often to ask CRI-O whether it reads the files (default 60)
  --status-delay SECONDS       a status report waits half to all of this after the files (default 1)
  --metrics-addr HOST:PORT     serve /metrics (default: off)
  --health-addr HOST:PORT      serve /healthz and /readyz (default: off)
  --log-level LEVEL            pino level (default info)`;

export class AgentUsageError extends Error {
  override readonly name = "AgentUsageError";
}

export type ParsedArgs =
  { readonly help: true } | { readonly help: false; readonly config: AgentConfig };

export function parseAgentArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ParsedArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        kubeconfig: { type: "string" },
        namespace: { type: "string" },
        "node-name": { type: "string" },
        root: { type: "string" },
        "policy-path": { type: "string" },
        "policy-dir": { type: "string" },
        "registries-d": { type: "string" },
        "system-registries-d": { type: "string" },
        "registries-conf": { type: "string" },
        "crio-socket": { type: "string" },
        "crio-version": { type: "string" },
        "crio-expected-policy-path": { type: "string" },
        "crio-expected-policy-dir": { type: "string" },
        "probe-interval": { type: "string" },
        "status-delay": { type: "string" },
        "metrics-addr": { type: "string" },
        "health-addr": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new AgentUsageError((cause as Error).message, { cause });
  }
  if (values.help === true) return { help: true };
  const nodeName = values["node-name"] ?? env["NODE_NAME"];
  if (nodeName === undefined || nodeName === "") {
    throw new AgentUsageError("--node-name (or NODE_NAME) is required");
  }
  const policyPath = values["policy-path"] ?? "/etc/crio/imagepolicy/cluster.json";
  const policyDir = values["policy-dir"] ?? "/etc/crio/policies";
  const probe = Number(values["probe-interval"] ?? "60");
  if (!Number.isFinite(probe) || probe <= 0) {
    throw new AgentUsageError("--probe-interval must be a positive number of seconds");
  }
  const statusDelay = Number(values["status-delay"] ?? "1");
  if (!Number.isFinite(statusDelay) || statusDelay < 0 || statusDelay > 60) {
    throw new AgentUsageError("--status-delay must be a number of seconds from 0 to 60");
  }
  const metricsAddr = values["metrics-addr"];
  const healthAddr = values["health-addr"];
  return {
    help: false,
    config: {
      kubeconfig:
        values.kubeconfig === undefined
          ? { kind: "in-cluster" }
          : { kind: "file", path: values.kubeconfig },
      namespace: values.namespace ?? "imagepolicy-system",
      nodeName,
      host: {
        root: values.root ?? "/",
        policyPath,
        policyDir,
        registriesD: values["registries-d"] ?? "/etc/containers/registries.d",
        systemRegistriesD: values["system-registries-d"] ?? "/usr/share/containers/registries.d",
        registriesConf: values["registries-conf"] ?? "/etc/containers/registries.conf",
        crioSocket: values["crio-socket"] ?? "/var/run/crio/crio.sock",
      },
      ...(values["crio-version"] === undefined ? {} : { crioVersion: values["crio-version"] }),
      expectedPolicyPath: values["crio-expected-policy-path"] ?? policyPath,
      expectedPolicyDir: values["crio-expected-policy-dir"] ?? policyDir,
      ...(metricsAddr === undefined ? {} : { metricsAddr }),
      ...(healthAddr === undefined ? {} : { healthAddr }),
      probeIntervalMs: probe * 1000,
      statusDelayMs: statusDelay * 1000,
      logLevel: level(values["log-level"] ?? "info"),
    },
  };
}

function level(s: string): LevelName {
  try {
    return parseLevel(s);
  } catch (cause) {
    throw new AgentUsageError(`--log-level: ${(cause as Error).message}`, { cause });
  }
}

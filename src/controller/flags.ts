// Flags of `imagepolicy controller`, parsed once into a typed configuration.

import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parseCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import { parseImage } from "../compiler/scopes.ts";
import { parseAddress } from "../httpServer.ts";

export const USAGE = `usage: imagepolicy controller [flags]
  --kubeconfig PATH            kubeconfig file (default: in-cluster configuration)
  --namespace NS               operator namespace for the layer ConfigMaps and the Lease
                               (default imagepolicy-system)
  --crio-version X.Y[.Z]       compile for this CRI-O version instead of the oldest CRI-O node
  --operator-image REF         the operator's own image: policies that would reject it are refused
  --pause-image REF            the pause image, protected likewise (default registry.k8s.io/pause:3.10)
  --leader-election-id NAME    name of the Lease (default imagepolicy-controller)
  --identity ID                leader election identity (default <hostname>_<pid>)
  --lease-duration D           (default 15s)
  --renew-deadline D           (default 10s)
  --retry-period D             (default 2s)
  --metrics-addr HOST:PORT     (default :8080)
  --health-addr HOST:PORT      (default :8081)
  --log-level LEVEL            trace, debug, info, warn, error (default info)`;

export interface ControllerConfig {
  readonly kubeconfig: string | undefined;
  readonly namespace: string;
  readonly crioVersion: CrioVersion | undefined;
  readonly operatorImage: string | undefined;
  readonly pauseImage: string;
  readonly leaderElectionId: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly metricsAddr: string;
  readonly healthAddr: string;
  readonly logLevel: string;
}

export class FlagError extends Error {
  override readonly name = "FlagError";
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

/** "15s", "500ms", "1m" -> milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (m === null) throw new FlagError(`not a duration (e.g. 15s, 500ms): ${JSON.stringify(text)}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

/** `null` means --help. */
export function parseFlags(argv: readonly string[], pid: number): ControllerConfig | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        kubeconfig: { type: "string" },
        namespace: { type: "string", default: "imagepolicy-system" },
        "crio-version": { type: "string" },
        "operator-image": { type: "string" },
        "pause-image": { type: "string", default: "registry.k8s.io/pause:3.10" },
        "leader-election-id": { type: "string", default: "imagepolicy-controller" },
        identity: { type: "string" },
        "lease-duration": { type: "string", default: "15s" },
        "renew-deadline": { type: "string", default: "10s" },
        "retry-period": { type: "string", default: "2s" },
        "metrics-addr": { type: "string", default: ":8080" },
        "health-addr": { type: "string", default: ":8081" },
        "log-level": { type: "string", default: "info" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new FlagError((cause as Error).message, { cause });
  }
  if (values.help === true) return null;
  for (const image of [values["operator-image"], values["pause-image"]]) {
    if (image === undefined) continue;
    const p = parseImage(image);
    if (!p.ok) throw new FlagError(`not an image reference: ${image}: ${p.reason}`);
  }
  if (!LEVELS.has(values["log-level"])) {
    throw new FlagError(`unknown log level ${values["log-level"]}`);
  }
  parseAddress(values["metrics-addr"]);
  parseAddress(values["health-addr"]);
  let crioVersion: CrioVersion | undefined;
  if (values["crio-version"] !== undefined) {
    try {
      crioVersion = parseCrioVersion(values["crio-version"]);
    } catch (cause) {
      throw new FlagError((cause as Error).message, { cause });
    }
  }
  return {
    kubeconfig: values.kubeconfig,
    namespace: values.namespace,
    crioVersion,
    operatorImage: values["operator-image"],
    pauseImage: values["pause-image"],
    leaderElectionId: values["leader-election-id"],
    identity: values.identity ?? `${hostname()}_${pid}`,
    leaseDurationMs: parseDuration(values["lease-duration"]),
    renewDeadlineMs: parseDuration(values["renew-deadline"]),
    retryPeriodMs: parseDuration(values["retry-period"]),
    metricsAddr: values["metrics-addr"],
    healthAddr: values["health-addr"],
    logLevel: values["log-level"],
  };
}

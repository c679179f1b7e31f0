// Flags of `imagepolicy controller`, parsed once into a typed configuration.

import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parseCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import { parseImage } from "../compiler/scopes.ts";
import { isLoopback, parseAddress } from "../httpServer.ts";

export const USAGE = `usage: imagepolicy controller [flags]
  --kubeconfig PATH            kubeconfig file (default: in-cluster configuration)
  --namespace NS               operator namespace for the layer ConfigMaps and the Lease
                               (default imagepolicy-system)
  --crio-version X.Y[.Z]       compile for this CRI-O version instead of the oldest CRI-O node
  --operator-image REF         the operator's own image: policies that would reject it are refused
  --pause-image REF            the pause image, protected likewise in every namespace
                               (default registry.k8s.io/pause:3.10)
  --protected-image [NS=]REF   another image the cluster must keep pulling, in namespace NS or,
                               without NS=, in every namespace (repeatable)
  --protected-namespace NS     the images of every pod running in NS are protected there
                               (repeatable; default kube-system; --protected-namespace= for none)
  --namespace-max-policies N   ImagePolicies one namespace's layer may hold (default 256)
  --namespace-max-scopes N     scopes one namespace's layer may hold (default 1024)
  --namespace-max-bytes N      bytes one namespace's layer may hold (default 262144)
  --namespace-lookaside-prefix URL
                               an ImagePolicy's GPG lookaside must start with one of these
                               (repeatable; default none: namespaces set no lookaside; never file:)
  --leader-election-id NAME    name of the Lease (default imagepolicy-controller)
  --identity ID                leader election identity (default <hostname>_<pid>)
  --lease-duration D           (default 15s)
  --renew-deadline D           (default 10s)
  --retry-period D             (default 2s)
  --metrics-addr HOST:PORT     loopback only (default 127.0.0.1:8080)
  --health-addr HOST:PORT      (default :8081)
  --log-level LEVEL            trace, debug, info, warn, error (default info)`;

export interface ControllerConfig {
  readonly kubeconfig: string | undefined;
  readonly namespace: string;
  readonly crioVersion: CrioVersion | undefined;
  readonly operatorImage: string | undefined;
  readonly pauseImage: string;
  /** --protected-image: the namespace (undefined: every namespace) and the reference. */
  readonly protectedImages: readonly {
    readonly namespace: string | undefined;
    readonly image: string;
  }[];
  readonly protectedNamespaces: readonly string[];
  readonly quota: {
    readonly maxPolicies: number;
    readonly maxScopes: number;
    readonly maxBytes: number;
  };
  readonly namespaceLookasidePrefixes: readonly string[];
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

function positiveInteger(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new FlagError(`--${flag} takes a positive integer, not ${JSON.stringify(text)}`);
  }
  return n;
}

const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

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
        "protected-image": { type: "string", multiple: true, default: [] },
        "protected-namespace": { type: "string", multiple: true, default: ["kube-system"] },
        "namespace-max-policies": { type: "string", default: "256" },
        "namespace-max-scopes": { type: "string", default: "1024" },
        "namespace-max-bytes": { type: "string", default: "262144" },
        "namespace-lookaside-prefix": { type: "string", multiple: true, default: [] },
        "leader-election-id": { type: "string", default: "imagepolicy-controller" },
        identity: { type: "string" },
        "lease-duration": { type: "string", default: "15s" },
        "renew-deadline": { type: "string", default: "10s" },
        "retry-period": { type: "string", default: "2s" },
        "metrics-addr": { type: "string", default: "127.0.0.1:8080" },
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
  if (!isLoopback(parseAddress(values["metrics-addr"]).host)) {
    throw new FlagError(
      `--metrics-addr must be a loopback address (127.0.0.1:PORT or [::1]:PORT), not ${values["metrics-addr"]}`,
    );
  }
  const protectedImages = values["protected-image"].map((entry) => {
    const eq = entry.indexOf("=");
    const namespace = eq === -1 ? undefined : entry.slice(0, eq);
    const image = eq === -1 ? entry : entry.slice(eq + 1);
    if (namespace !== undefined && !NAMESPACE_NAME.test(namespace)) {
      throw new FlagError(`--protected-image: not a namespace name: ${JSON.stringify(namespace)}`);
    }
    const p = parseImage(image);
    if (!p.ok)
      throw new FlagError(`--protected-image: not an image reference: ${image}: ${p.reason}`);
    return { namespace, image };
  });
  const protectedNamespaces = values["protected-namespace"].filter((n) => n !== "");
  for (const n of protectedNamespaces) {
    if (!NAMESPACE_NAME.test(n)) {
      throw new FlagError(`--protected-namespace: not a namespace name: ${JSON.stringify(n)}`);
    }
  }
  for (const prefix of values["namespace-lookaside-prefix"]) {
    if (!/^https?:\/\/[^/\s]+\/\S*$/.test(prefix)) {
      throw new FlagError(
        `--namespace-lookaside-prefix takes an http:// or https:// URL prefix ending in a path (host/...), not ${JSON.stringify(prefix)}`,
      );
    }
  }
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
    protectedImages,
    protectedNamespaces: [...new Set(protectedNamespaces)].sort(),
    quota: {
      maxPolicies: positiveInteger("namespace-max-policies", values["namespace-max-policies"]),
      maxScopes: positiveInteger("namespace-max-scopes", values["namespace-max-scopes"]),
      maxBytes: positiveInteger("namespace-max-bytes", values["namespace-max-bytes"]),
    },
    namespaceLookasidePrefixes: values["namespace-lookaside-prefix"],
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

// Does CRI-O really read the files the agent writes? CRI-O serves its effective configuration as
// TOML at GET /config on its socket (what `crio status config` prints). Keys equal to CRI-O's
// defaults are printed commented out, so a missing key means the default.
//
// fetchCrioConfig is the I/O; enforcement() is pure and decides `enforcing` and its reason.

import { http } from "../nodeHttp.ts";
import {
  FEATURES,
  formatCrioVersion,
  supports,
  type CrioVersion,
} from "../compiler/crioVersion.ts";
import { parseToml, tomlGet, TomlError } from "./toml.ts";

/** CRI-O's defaults for the two keys (crio.conf(5)); "" means containers' system policy. */
export const CRIO_DEFAULT_SIGNATURE_POLICY = "";
export const CRIO_DEFAULT_SIGNATURE_POLICY_DIR = "/etc/crio/policies";
const SYSTEM_POLICY = "/etc/containers/policy.json";

export type ConfigFetch = { ok: true; text: string } | { ok: false; reason: string };

export function fetchCrioConfig(socketPath: string, timeoutMs: number): Promise<ConfigFetch> {
  return new Promise((resolve) => {
    const req = http.request(
      { socketPath, path: "/config", method: "GET", timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => {
          resolve({ ok: false, reason: `reading /config from ${socketPath}: ${e.message}` });
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) {
            resolve({
              ok: false,
              reason: `GET /config on ${socketPath} answered ${String(res.statusCode)}`,
            });
          } else resolve({ ok: true, text });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (e: NodeJS.ErrnoException) => {
      const what = e.code === "ENOENT" ? "socket missing" : e.message;
      resolve({ ok: false, reason: `cannot ask CRI-O at ${socketPath}: ${what}` });
    });
    req.end();
  });
}

export interface CrioImageConfig {
  readonly signaturePolicy: string;
  readonly signaturePolicyDir: string;
}

export class CrioConfigError extends Error {
  override readonly name = "CrioConfigError";
}

/** The two keys of `[crio.image]`, defaults filled in. Throws when the text is not CRI-O's. */
export function parseCrioConfig(text: string): CrioImageConfig {
  let doc;
  try {
    doc = parseToml(text);
  } catch (cause) {
    const detail = cause instanceof TomlError ? cause.message : String(cause);
    throw new CrioConfigError(`not a CRI-O configuration: ${detail}`, { cause });
  }
  const crio = tomlGet(doc, "crio");
  if (crio === undefined || typeof crio !== "object" || Array.isArray(crio)) {
    throw new CrioConfigError("not a CRI-O configuration: no [crio] table");
  }
  const str = (key: string, dflt: string): string => {
    const v = tomlGet(doc, "crio", "image", key);
    if (v === undefined) return dflt;
    if (typeof v !== "string") throw new CrioConfigError(`crio.image.${key} is not a string`);
    return v;
  };
  return {
    signaturePolicy: str("signature_policy", CRIO_DEFAULT_SIGNATURE_POLICY),
    signaturePolicyDir: str("signature_policy_dir", CRIO_DEFAULT_SIGNATURE_POLICY_DIR),
  };
}

export interface Runtime {
  readonly name: string;
  readonly version: string;
}

/** `cri-o://1.34.0` -> { name: "cri-o", version: "1.34.0" }. */
export function parseRuntimeVersion(containerRuntimeVersion: string): Runtime {
  const m = /^([^:/]+):\/\/(.*)$/.exec(containerRuntimeVersion);
  return m?.[1] !== undefined && m[2] !== undefined
    ? { name: m[1], version: m[2] }
    : { name: "unknown", version: containerRuntimeVersion };
}

export interface EnforcementInput {
  readonly runtime: Runtime;
  /** Parsed CRI-O version, undefined when the runtime is not CRI-O or its version unreadable. */
  readonly crioVersion: CrioVersion | undefined;
  readonly config: ConfigFetch;
  /** The host paths CRI-O must name (as CRI-O sees them, without --root). */
  readonly expectedPolicyPath: string;
  readonly expectedPolicyDir: string;
}

export interface Enforcement {
  readonly enforcing: boolean;
  readonly reason: string;
}

export function enforcement(input: EnforcementInput): Enforcement {
  const { runtime, crioVersion: v } = input;
  if (runtime.name !== "cri-o") {
    return { enforcing: false, reason: `the node runs ${runtime.name}, not CRI-O` };
  }
  if (v === undefined) {
    return {
      enforcing: false,
      reason: `cannot read CRI-O version ${JSON.stringify(runtime.version)}`,
    };
  }
  if (!input.config.ok) return { enforcing: false, reason: input.config.reason };
  let cfg: CrioImageConfig;
  try {
    cfg = parseCrioConfig(input.config.text);
  } catch (e) {
    // parseCrioConfig throws only CrioConfigError.
    return { enforcing: false, reason: (e as Error).message };
  }
  if (cfg.signaturePolicy !== input.expectedPolicyPath) {
    const actual = cfg.signaturePolicy === "" ? `${SYSTEM_POLICY} (default)` : cfg.signaturePolicy;
    return {
      enforcing: false,
      reason: `CRI-O's signature_policy is ${actual}, not ${input.expectedPolicyPath}`,
    };
  }
  const version = formatCrioVersion(v);
  if (!supports(v, "namespaceFiles")) {
    return {
      enforcing: false,
      reason:
        `CRI-O ${version} reads only ${input.expectedPolicyPath}: ` +
        `${FEATURES.namespaceFiles.what} needs ${formatCrioVersion(FEATURES.namespaceFiles.since)}`,
    };
  }
  if (cfg.signaturePolicyDir !== input.expectedPolicyDir) {
    return {
      enforcing: false,
      reason: `CRI-O's signature_policy_dir is ${cfg.signaturePolicyDir}, not ${input.expectedPolicyDir}`,
    };
  }
  const recheck = supports(v, "recheckAtCreate")
    ? "images are re-checked at container creation"
    : `images already on the node are not re-checked at container creation (needs CRI-O ${formatCrioVersion(FEATURES.recheckAtCreate.since)})`;
  return {
    enforcing: true,
    reason: `CRI-O ${version} reads ${input.expectedPolicyPath} and ${input.expectedPolicyDir}/<namespace>.json; ${recheck}`,
  };
}

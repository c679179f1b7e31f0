// Runs the pull cases of test/e2e/cases.ts against one environment: the local e2e suite
// (test/e2e/pulls.test.ts, crictl on a CRI-O of its own) or a kind node (hack/kind-e2e.ts, crictl
// through `docker exec`). The environment says how to pull, where images live and which keys
// exist; the steps are the same everywhere.
import type { ImageName } from "../evaluator/environment.ts";
import type { KeyName, PolicyData, PullCase, Reason, Step } from "../e2e/cases.ts";
import {
  acceptAnything,
  crioReason,
  policy,
  POLICY_PARSE_ERROR,
  publicKey,
  reject,
  type PolicyHarness,
  type RootOfTrust,
  type SignedIdentity,
} from "./policyHarness.ts";

export class PullCaseError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface PullResult {
  readonly ok: boolean;
  /** crictl's output; on refusal it carries CRI-O's error. */
  readonly output: string;
}

export interface PullEnvironment {
  readonly harness: PolicyHarness;
  /** Pulls `image` (with a pod sandbox config carrying `namespace` when given), then removes it. */
  pull(image: string, namespace: string | undefined): Promise<PullResult>;
  /** The reference of a fixture image as the node pulls it. */
  image(name: ImageName): string;
  /** `{R}`: the registry's host:port as the node names it. */
  readonly registry: string;
  /** `{SYSTEM}`: scopes of what the cluster must keep pulling (pause, operator, ...). */
  readonly systemScopes: readonly string[];
  /** Public keys, base64 of the PEM. */
  readonly keys: Readonly<Record<KeyName, string>>;
  /** Whether the node holds `<namespace>.json` in its policy directory. */
  namespaceFileExists(namespace: string): Promise<boolean>;
}

export interface CaseRecord {
  /** Label -> CRI-O's refusal text. */
  readonly refusals: Map<string, string>;
  /** kubectl apply -> verdict changed, per applyUntilPull step (ms). */
  readonly latencies: number[];
}

export function newCaseRecord(): CaseRecord {
  return { refusals: new Map(), latencies: [] };
}

/** Runs one case's steps in order; throws at the first step whose outcome is not the expected. */
export async function runPullCase(
  env: PullEnvironment,
  c: PullCase,
  record: CaseRecord,
): Promise<void> {
  for (const [i, step] of c.steps.entries()) {
    try {
      await runStep(env, step, record);
    } catch (error) {
      throw new PullCaseError(
        `${c.name}: step ${String(i + 1)} (${describe(step)}) failed: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }
}

async function runStep(env: PullEnvironment, step: Step, record: CaseRecord): Promise<void> {
  switch (step.step) {
    case "apply":
      await env.harness.applyAndWait(...step.policies.map((p) => policyYaml(env, p)));
      return;
    case "delete":
      await env.harness.deleteAndWait(...step.policies);
      return;
    case "noNamespaceFile":
      if (await env.namespaceFileExists(step.namespace)) {
        throw new PullCaseError(`${step.namespace}.json is still on the node`);
      }
      return;
    case "pull": {
      const r = await pull(env, env.image(step.image), step.namespace);
      if (step.expect === "allowed") {
        if (!r.ok) throw new PullCaseError(`refused: ${r.output}`);
        return;
      }
      if (r.ok) throw new PullCaseError("allowed; a refusal was expected");
      const reason = crioReason(r.output);
      if (step.reason !== undefined && !reasonMatches(env, step.reason, reason)) {
        throw new PullCaseError(`refused for another reason: ${reason}`);
      }
      record.refusals.set(step.label, reason);
      return;
    }
    case "applyUntilPull": {
      const start = Date.now();
      await env.harness.kubectl(
        ["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
        policyYaml(env, step.policy),
      );
      for (;;) {
        const r = await pull(env, env.image(step.image), undefined);
        if (r.ok === (step.until === "allowed")) {
          record.latencies.push(Date.now() - start);
          return;
        }
        if (Date.now() - start > 90_000) {
          throw new PullCaseError(`still ${r.ok ? "allowed" : "refused"} 90 s after kubectl apply`);
        }
      }
    }
    default: {
      const _exhaustive: never = step;
      throw new PullCaseError(`unknown step ${JSON.stringify(_exhaustive)}`);
    }
  }
}

async function pull(
  env: PullEnvironment,
  ref: string,
  namespace: string | undefined,
): Promise<PullResult> {
  const r = await env.pull(ref, namespace);
  // Whatever the verdict, CRI-O must never have failed to read a policy file.
  if (POLICY_PARSE_ERROR.test(r.output)) {
    throw new PullCaseError(`CRI-O could not parse a policy file: ${r.output}`);
  }
  return r;
}

function fill(env: PullEnvironment, text: string): string {
  return text.replaceAll("{R}", env.registry);
}

function reasonMatches(env: PullEnvironment, want: Reason, got: string): boolean {
  return "contains" in want
    ? got.includes(fill(env, want.contains))
    : new RegExp(fill(env, want.matches)).test(got);
}

function policyYaml(env: PullEnvironment, p: PolicyData): string {
  const scopes = p.scopes.flatMap((s) => (s === "{SYSTEM}" ? env.systemScopes : [fill(env, s)]));
  const trust: RootOfTrust =
    p.trust === "reject"
      ? reject
      : p.trust === "accept"
        ? acceptAnything
        : publicKey(env.keys[p.trust]);
  let identity: SignedIdentity | undefined;
  if (p.identity?.matchPolicy === "MatchRepository") identity = { matchPolicy: "MatchRepository" };
  else if (p.identity?.matchPolicy === "RemapIdentity") {
    identity = {
      matchPolicy: "RemapIdentity",
      remapIdentity: {
        prefix: fill(env, p.identity.prefix),
        signedPrefix: p.identity.signedPrefix,
      },
    };
  }
  const ref =
    p.namespace === undefined
      ? { kind: p.kind, name: p.name }
      : { kind: p.kind, name: p.name, namespace: p.namespace };
  return policy(ref, scopes, trust, identity);
}

function describe(step: Step): string {
  switch (step.step) {
    case "apply":
      return `apply ${step.policies.map((p) => p.name).join(", ")}`;
    case "delete":
      return `delete ${step.policies.map((p) => p.name).join(", ")}`;
    case "pull":
      return `pull ${step.image}${step.namespace === undefined ? "" : ` in ${step.namespace}`}, ${step.expect}`;
    case "noNamespaceFile":
      return `no ${step.namespace}.json`;
    case "applyUntilPull":
      return `apply ${step.policy.name} until ${step.image} is ${step.until}`;
    default: {
      const _exhaustive: never = step;
      return JSON.stringify(_exhaustive);
    }
  }
}

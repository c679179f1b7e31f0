// The reference evaluator: would containers-image (skopeo 1.18) pull this image under this
// policy.json and registries.d? `skopeo copy` checks the policy exactly as CRI-O's pull does
// (`skopeo inspect` ignores it).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { inject } from "vitest";

import { offlineEnv, outputOf, runCommand } from "./command.ts";

export interface EvaluateOptions {
  readonly policyPath: string;
  readonly registriesDDir: string;
  /** Reference without transport, e.g. `127.0.0.1:5000/signed/app:v1`. */
  readonly image: string;
  /** Default: the skopeo provided by globalSetup. */
  readonly skopeo?: string;
  /** registries.conf to use. Default: the empty one provided by globalSetup. */
  readonly registriesConf?: string;
}

export interface Evaluation {
  readonly allowed: boolean;
  /** skopeo's stderr and stdout, for assertion messages. */
  readonly output: string;
}

/**
 * The evaluation did not reach a verdict: the registry is down, the image does not exist, the
 * policy file is not valid, a key in it cannot be read... A test must never read one of these
 * as a denial.
 */
export class EvaluationError extends Error {
  override readonly name = "EvaluationError";
  readonly output: string;
  constructor(message: string, output: string, options?: ErrorOptions) {
    super(message, options);
    this.output = output;
  }
}

/** Prefix containers-image's copy puts before every error of the policy check. */
const refusal = /Source image rejected: /;

/**
 * Errors that surface under "Source image rejected" but are not a policy verdict: the policy
 * check itself fetches signatures (network) and reads keys (files, key data). A key that cannot
 * be read denies every pull on a node too, but in a test it means the test or the compiler is
 * wrong, so it is reported as an error, not as DENY.
 */
const notAVerdict = new RegExp(
  [
    "dial tcp",
    "connection refused",
    "connection reset",
    "no such host",
    "i/o timeout",
    "context deadline exceeded",
    "unexpected EOF",
    "server gave HTTP response",
    "pinging container registry",
    "no such file or directory",
    "permission denied",
    "PEM decoding failed",
    "parsing public key",
    "No public keys imported",
  ]
    .map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"))
    .join("|"),
);

/** Run skopeo copy under the policy; allowed on exit 0, denied on a policy refusal, else throws. */
export async function evaluate(options: EvaluateOptions): Promise<Evaluation> {
  const environment =
    options.skopeo === undefined || options.registriesConf === undefined
      ? inject("evaluator")
      : undefined;
  const skopeo = options.skopeo ?? environment?.skopeo;
  const registriesConf = options.registriesConf ?? environment?.registriesConf;
  if (skopeo === undefined || registriesConf === undefined) {
    throw new EvaluationError("no evaluator environment: is globalSetup.ts configured?", "");
  }
  const scratch = await mkdtemp(path.join(tmpdir(), "imagepolicy-evaluate-"));
  try {
    const result = await runCommand(
      skopeo,
      [
        "copy",
        "--quiet",
        "--policy",
        options.policyPath,
        "--registries.d",
        options.registriesDDir,
        "--src-tls-verify=false",
        `docker://${options.image}`,
        `dir:${path.join(scratch, "image")}`,
      ],
      {
        env: offlineEnv({ HOME: scratch, CONTAINERS_REGISTRIES_CONF: registriesConf }),
        timeout: 60_000,
      },
    );
    const output = outputOf(result);
    if (result.code === 0) return { allowed: true, output };
    if (refusal.test(output) && !notAVerdict.test(output)) return { allowed: false, output };
    throw new EvaluationError(
      `evaluating ${options.image} failed without a policy verdict (exit ${String(result.code)}): ${output}`,
      output,
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Evaluate many cases, `concurrency` at a time (skopeo takes about 100 ms each); results are in
 * the order of `cases`. Rejects with the first error once all running evaluations finished.
 */
export async function evaluateAll(
  cases: readonly EvaluateOptions[],
  concurrency = 4,
): Promise<Evaluation[]> {
  const results = new Array<Evaluation>(cases.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const index = next++;
      const item = cases[index];
      if (item === undefined) return;
      results[index] = await evaluate(item);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, cases.length)) }, worker);
  const settled = await Promise.allSettled(workers);
  const failures = settled.flatMap((outcome): unknown[] =>
    outcome.status === "rejected" ? [outcome.reason] : [],
  );
  if (failures.length > 0) {
    throw new EvaluationError(
      `${String(failures.length)} evaluation worker(s) failed; first: ${String(failures[0])}`,
      "",
      { cause: failures.length === 1 ? failures[0] : new AggregateError(failures) },
    );
  }
  return results;
}

// The pull cases of test/e2e/cases.ts on a kind node, for hack/kind-e2e.sh (which creates the
// cluster, the registry and the images, installs the operator and the CRI-O drop-in, then runs
// this). The same data and runner (test/support/pullRunner.ts) as the local e2e suite; only the
// environment differs: kubectl with a context, crictl through `docker exec` on the node.
//
// NEVER RUN ON THE DEVELOPMENT MACHINES: they have no Docker engine (docs/local-node.md has the
// local equivalent). Reviewed by type checking and by eye.
//
//   node hack/kind-e2e.ts --context kind-imagepolicy-e2e --node imagepolicy-e2e-control-plane \
//     --registry kind-registry:5000 --registry-alias kind-registry-alias:5000 --keys DIR \
//     --system-scope kind-registry:5000/base/pause --system-scope ...
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import type { ImageName } from "../test/evaluator/environment.ts";
import { pullCases, type KeyName } from "../test/e2e/cases.ts";
import { createPolicyHarness } from "../test/support/policyHarness.ts";
import { newCaseRecord, runPullCase, type PullEnvironment } from "../test/support/pullRunner.ts";

class KindE2eError extends Error {
  override readonly name = "KindE2eError";
}

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], stdin?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          reject(new KindE2eError(`cannot run ${file}`, { cause: error }));
          return;
        }
        resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
      },
    );
    child.stdin?.end(stdin ?? "");
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      context: { type: "string" },
      node: { type: "string" },
      registry: { type: "string" },
      "registry-alias": { type: "string" },
      keys: { type: "string" },
      "system-scope": { type: "string", multiple: true },
    },
  });
  const need = (name: string, v: string | undefined): string => {
    if (v === undefined) throw new KindE2eError(`--${name} is required`);
    return v;
  };
  const context = need("context", values.context);
  const node = need("node", values.node);
  const registry = need("registry", values.registry);
  const alias = need("registry-alias", values["registry-alias"]);
  const keysDir = need("keys", values.keys);

  const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
    const r = await run("kubectl", ["--context", context, ...args], stdin);
    if (r.code !== 0) throw new KindE2eError(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const onNode = (args: readonly string[], stdin?: string): Promise<Result> =>
    run("docker", ["exec", "-i", node, ...args], stdin);
  const harness = createPolicyHarness({
    kubectl,
    node,
    diagnostics: async () =>
      (await onNode(["journalctl", "-u", "crio", "--no-pager", "-n", "30"])).stdout,
    timeoutMs: 180_000,
  });

  const keyNames: readonly KeyName[] = ["a", "b", "c", "cosign"];
  const keys: Record<KeyName, string> = { a: "", b: "", c: "", cosign: "" };
  for (const k of keyNames) {
    keys[k] = (await readFile(path.join(keysDir, `${k}.pub`))).toString("base64");
  }
  const podConfig = async (namespace: string): Promise<string> => {
    const file = `/tmp/imagepolicy-pod-${namespace}.json`;
    const config = {
      metadata: { name: "pull", namespace, uid: `${namespace}-pull`, attempt: 0 },
      log_directory: `/tmp/${namespace}`,
      linux: {},
    };
    await onNode(["sh", "-c", `cat > ${file}`], JSON.stringify(config));
    return file;
  };
  const image = (name: ImageName): string =>
    name.startsWith("localhost/")
      ? `${alias}/${name.slice("localhost/".length)}`
      : `${registry}/${name}`;
  const environment: PullEnvironment = {
    harness,
    image,
    registry,
    systemScopes: values["system-scope"] ?? [],
    keys,
    pull: async (ref, namespace) => {
      const args = ["crictl", "pull"];
      if (namespace !== undefined) args.push("--pod-config", await podConfig(namespace));
      const r = await onNode([...args, ref]);
      if (r.code === 0) await onNode(["crictl", "rmi", ref]);
      return { ok: r.code === 0, output: `${r.stderr.trim()}\n${r.stdout.trim()}`.trim() };
    },
    namespaceFileExists: async (namespace) =>
      (await onNode(["test", "-e", `/etc/crio/policies/${namespace}.json`])).code === 0,
  };

  const record = newCaseRecord();
  for (const c of pullCases) {
    process.stdout.write(`== ${c.name}\n`);
    await runPullCase(environment, c, record);
    process.stdout.write("ok\n");
  }
  process.stdout.write(
    [
      "CRI-O refusal texts:",
      ...[...record.refusals].map(([label, text]) => `  ${label}: ${text}`),
      `kubectl apply -> pull result changed: ${record.latencies.map((l) => `${String(l)} ms`).join(", ")}`,
      "",
    ].join("\n"),
  );
}

try {
  await main();
} catch (error) {
  process.stderr.write(
    `hack/kind-e2e.ts: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exitCode = 1;
}

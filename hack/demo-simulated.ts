// `hack/demo --simulated`: the demo without a kubelet or CRI-O (no network namespace, no node
// build; the control plane only). The operator installed from config/default, the controller and
// two agents as local processes (two simulated nodes under one directory, each agent with its own
// root) running with exactly the RBAC the manifests give them, the samples applied with kubectl,
// and then the node files of both nodes and the policies' status. The simulated nodes run no
// CRI-O, so every policy stays Ready=False (NotEnforcing) with Rollout 0/2; hack/demo without the
// flag shows the real thing on a real node. `--keep` leaves everything running until Ctrl-C.

import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startControlPlane, type ControlPlane } from "../test/support/controlPlane.ts";
import { startOperatorProcess, type OperatorProcess } from "../test/support/operatorProcess.ts";
import { waitFor } from "../test/support/waitFor.ts";

const repo = path.resolve(import.meta.dirname, "..");
const NAMESPACE = "imagepolicy-system";
const NODES = ["node-a", "node-b"] as const;
const CRIO_VERSION = "cri-o://1.34.0";

class DemoError extends Error {
  override readonly name = "DemoError";
}

function say(line: string): void {
  process.stdout.write(`\n\x1b[1m==> ${line}\x1b[0m\n`);
}

async function must(cp: ControlPlane, args: string[], stdin?: string): Promise<string> {
  const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new DemoError(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Replaces base64 key and CA data by the SHA-256 fingerprint of the decoded PEM. */
function fingerprintKeys(text: string): string {
  return text.replace(/"([A-Za-z0-9+/]{40,}={0,2})"/g, (_m, b64: string) => {
    const digest = createHash("sha256").update(Buffer.from(b64, "base64")).digest("hex");
    return `"<PEM sha256:${digest.slice(0, 16)}>"`;
  });
}

async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(root);
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { keep: { type: "boolean" }, simulated: { type: "boolean" } },
  });
  const work = await mkdtemp(path.join(tmpdir(), "imagepolicy-demo-"));
  const logs = path.join(work, "logs");
  await mkdir(logs, { recursive: true });
  const children: OperatorProcess[] = [];

  say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)");
  const cp = await startControlPlane({ dir: path.join(work, "control-plane") });
  const stopAll = async (): Promise<void> => {
    await Promise.all(children.map((c) => c.stop()));
    await cp.stop();
  };
  try {
    process.stdout.write(`API server ${cp.server}, Kubernetes ${cp.kubernetesVersion}\n`);

    say("installing the operator from config/default (CRDs, namespace, RBAC, workloads)");
    await must(cp, ["apply", "--server-side", "-k", path.join(repo, "config/default")]);
    await must(cp, ["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);

    say("registering two simulated CRI-O nodes");
    for (const node of NODES) await cp.registerNode(node, CRIO_VERSION);

    say("starting the controller and one agent per node, with their ServiceAccounts' RBAC");
    const controllerKubeconfig = await cp.serviceAccountKubeconfig(
      NAMESPACE,
      "imagepolicy-controller",
    );
    children.push(
      startOperatorProcess(
        "controller",
        "controller",
        [
          `--kubeconfig=${controllerKubeconfig}`,
          `--namespace=${NAMESPACE}`,
          "--metrics-addr=127.0.0.1:0",
          "--health-addr=127.0.0.1:0",
        ],
        path.join(logs, "controller.log"),
      ),
    );
    const roots = new Map<string, string>();
    for (const node of NODES) {
      const root = path.join(work, "nodes", node);
      await mkdir(root, { recursive: true });
      roots.set(node, root);
      const kubeconfig = await cp.serviceAccountKubeconfig(NAMESPACE, "imagepolicy-agent", {
        boundNode: node,
      });
      children.push(
        startOperatorProcess(
          `agent-${node}`,
          "agent",
          [
            `--kubeconfig=${kubeconfig}`,
            `--namespace=${NAMESPACE}`,
            `--node-name=${node}`,
            `--root=${root}`,
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0",
          ],
          path.join(logs, `agent-${node}.log`),
        ),
      );
    }

    say("applying config/samples with kubectl");
    process.stdout.write(await must(cp, ["apply", "-k", path.join(repo, "config/samples")]));

    say("waiting until every node has applied every policy");
    await waitFor(
      "Applied policies",
      async () => {
        const r = await cp.kubectl([
          "get",
          "clusterimagepolicies,imagepolicies",
          "-A",
          "-o",
          'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Applied")].status}{"\\n"}{end}',
        ]);
        const lines = r.stdout.split("\n").filter((l) => l !== "");
        return r.code === 0 && lines.length > 0 && lines.every((l) => l === "True")
          ? true
          : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );

    say("node files (key data shown as the SHA-256 fingerprint of the PEM)");
    const [first, ...others] = [...roots];
    if (first === undefined) throw new DemoError("no nodes");
    const [firstNode, firstRoot] = first;
    const firstFiles = await listTree(firstRoot);
    for (const file of firstFiles) {
      const rel = path.relative(firstRoot, file);
      process.stdout.write(`\n--- ${firstNode}: /${rel} (${(await stat(file)).size} bytes)\n`);
      process.stdout.write(fingerprintKeys(await readFile(file, "utf8")));
    }
    for (const [node, root] of others) {
      const files = await listTree(root);
      const same =
        files.length === firstFiles.length &&
        (
          await Promise.all(
            firstFiles.map(async (f) => {
              const twin = path.join(root, path.relative(firstRoot, f));
              return (await readFile(f, "utf8")) === (await readFile(twin, "utf8").catch(() => ""));
            }),
          )
        ).every(Boolean);
      process.stdout.write(
        `\n--- ${node}: ${files.length} files, ${same ? "identical to" : "DIFFERENT from"} ${firstNode}'s\n`,
      );
    }

    say("kubectl get clusterimagepolicies,imagepolicies -A");
    process.stdout.write(await must(cp, ["get", "clusterimagepolicies,imagepolicies", "-A"]));
    process.stdout.write(
      "\nReady stays False (NotEnforcing) and Rollout reads 0/2: the files are applied on both\n" +
        "nodes, but no CRI-O reads them on these simulated nodes. Coverage is never rounded up.\n",
    );
    process.stdout.write(
      await must(cp, [
        "get",
        "clusterimagepolicies",
        "-o",
        'custom-columns=NAME:.metadata.name,APPLIED:.status.conditions[?(@.type=="Applied")].message,READY:.status.conditions[?(@.type=="Ready")].reason',
      ]),
    );
    say("kubectl get imagepolicynodestatuses (these simulated nodes run no CRI-O: not enforcing)");
    process.stdout.write(
      await must(cp, [
        "get",
        "imagepolicynodestatuses",
        "-o",
        "custom-columns=NODE:.metadata.name,RUNTIME:.status.runtime.version,ENFORCING:.status.enforcing,REASON:.status.enforcingReason",
      ]),
    );

    if (values.keep === true) {
      say(`running; KUBECONFIG=${cp.kubeconfigPath}; logs in ${logs}; Ctrl-C to stop`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => {
          resolve();
        });
      });
    } else {
      process.stdout.write(`\nlogs and node roots in ${work}\n`);
    }
  } finally {
    await stopAll();
  }
}

try {
  await main();
} catch (err) {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}

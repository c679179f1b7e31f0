// The process behind hack/node-up and hack/node-down.
//
//   node hack/node.ts serve --dir DIR [--operator]
//     Starts the local cluster (test/support/localCluster.ts: node network, registry with the
//     operator and test images, control plane, kubelet + CRI-O node), with --operator installs
//     the operator as docs/install.md says, writes DIR/ready (JSON: kubeconfig, node, registry,
//     images), and keeps everything running until SIGTERM or SIGINT; then stops it all. hack/node-up
//     runs it in the background and waits for DIR/ready (or DIR/failed).
//
//   node hack/node.ts clean
//     Cleans every node slot whose owner died without stopping it (processes, cgroups, network
//     namespace); live nodes are left alone.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { installOperator, startLocalCluster } from "../test/support/localCluster.ts";
import { cleanStaleNodes } from "../test/support/nodeNetwork.ts";

class NodeCommandError extends Error {
  override readonly name = "NodeCommandError";
}

function say(line: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function serve(dir: string, operator: boolean): Promise<void> {
  const cluster = await startLocalCluster({ dir, log: say }).catch(async (error: unknown) => {
    await writeFile(path.join(dir, "failed"), errorText(error));
    throw new NodeCommandError("the local cluster did not start", { cause: error });
  });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say("stopping the local cluster");
    await cluster.stop();
    say("stopped");
  };
  const stopped = new Promise<void>((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.once(signal, () => {
        void stop().then(resolve);
      });
    }
  });
  try {
    if (operator) await installOperator(cluster, say);
  } catch (error) {
    await writeFile(path.join(dir, "failed"), errorText(error));
    await stop();
    throw new NodeCommandError("installing the operator failed", { cause: error });
  }
  const ready = {
    kubeconfig: cluster.cp.kubeconfigPath,
    kubectl: path.join(cluster.cp.binDir, "kubectl"),
    server: cluster.cp.server,
    node: cluster.node.name,
    kubeletVersion: cluster.node.kubeletVersion,
    crioVersion: cluster.node.crioVersion,
    netns: cluster.network.netns,
    registry: cluster.images.registry.host,
    operatorImage: cluster.images.operator,
    apps: cluster.images.apps,
    nodeRoot: cluster.node.root,
    operatorInstalled: operator,
  };
  await writeFile(path.join(dir, "ready"), `${JSON.stringify(ready, null, 2)}\n`);
  say(`ready: KUBECONFIG=${ready.kubeconfig}`);
  await stopped;
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return `${String(error)}\n`;
  // A cause whose text the message already carries is not repeated.
  const cause =
    error.cause instanceof Error && error.message.includes(error.cause.message)
      ? ""
      : error.cause === undefined
        ? ""
        : errorText(error.cause);
  return `${error.message}\n${cause}`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { dir: { type: "string" }, operator: { type: "boolean" } },
  });
  const [command] = positionals;
  if (command === "serve") {
    if (values.dir === undefined) throw new NodeCommandError("serve needs --dir");
    await serve(path.resolve(values.dir), values.operator === true);
  } else if (command === "clean") {
    const cleaned = await cleanStaleNodes();
    say(
      cleaned.length === 0
        ? "no stale node"
        : `cleaned stale node slots ${cleaned.map(String).join(", ")}`,
    );
  } else {
    throw new NodeCommandError("usage: node hack/node.ts serve --dir DIR [--operator] | clean");
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`hack/node.ts: ${errorText(error)}`);
  process.exitCode = 1;
}

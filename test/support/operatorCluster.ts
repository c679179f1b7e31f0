// The operator as a cluster runs it, for tests on a real API server: the controller and one agent
// per node as child processes (test/support/operatorProcess.ts) with the tokens of the
// ServiceAccounts an install created (the agents' bound to their Node, as a kubelet's are), each
// serving /metrics on a loopback port of its own. The install itself (kustomize or Helm) and the
// Nodes are the caller's.

import path from "node:path";
import type { ControlPlane } from "./controlPlane.ts";
import { freePort, startOperatorProcess, type OperatorProcess } from "./operatorProcess.ts";

export interface OperatorCluster {
  /** The loopback host:port of the controller's /metrics. */
  readonly controllerMetrics: string;
  /** node -> its agent's /metrics host:port and the directory standing for its root. */
  readonly agents: ReadonlyMap<string, { readonly metrics: string; readonly root: string }>;
  /** Stops the controller ("controller") or a node's agent (the node name). */
  stop(name: string): Promise<void>;
  /** Starts it again with the same flags, its log appended to the same file. */
  start(name: string): void;
  /** Every process's last log lines, for failure messages. */
  logs(): Promise<string>;
  stopAll(): Promise<void>;
}

export interface OperatorClusterOptions {
  readonly cp: ControlPlane;
  /** Logs and the agents' node roots go here. */
  readonly dir: string;
  /** The operator namespace the install used. */
  readonly namespace: string;
  readonly nodes: readonly string[];
  readonly controllerArgs?: readonly string[];
  /** Extra flags of one node's agent (e.g. its CRI-O socket). */
  readonly agentArgs?: (node: string, root: string) => readonly string[];
}

export async function startOperatorCluster(o: OperatorClusterOptions): Promise<OperatorCluster> {
  const specs = new Map<string, { command: "controller" | "agent"; args: string[] }>();
  const running = new Map<string, OperatorProcess>();
  const loopback = async (): Promise<string> => `127.0.0.1:${String(await freePort())}`;
  const controllerMetrics = await loopback();
  specs.set("controller", {
    command: "controller",
    args: [
      `--kubeconfig=${await o.cp.serviceAccountKubeconfig(o.namespace, "imagepolicy-controller")}`,
      `--namespace=${o.namespace}`,
      `--metrics-addr=${controllerMetrics}`,
      `--health-addr=${await loopback()}`,
      ...(o.controllerArgs ?? []),
    ],
  });
  const agents = new Map<string, { metrics: string; root: string }>();
  for (const node of o.nodes) {
    const root = path.join(o.dir, "nodes", node);
    const metrics = await loopback();
    const kubeconfig = await o.cp.serviceAccountKubeconfig(o.namespace, "imagepolicy-agent", {
      boundNode: node,
    });
    specs.set(node, {
      command: "agent",
      args: [
        `--kubeconfig=${kubeconfig}`,
        `--namespace=${o.namespace}`,
        `--node-name=${node}`,
        `--root=${root}`,
        `--metrics-addr=${metrics}`,
        `--health-addr=${await loopback()}`,
        ...(o.agentArgs?.(node, root) ?? []),
      ],
    });
    agents.set(node, { metrics, root });
  }
  const start = (name: string): void => {
    const spec = specs.get(name);
    if (spec === undefined) throw new Error(`no process ${name}`);
    const logName = spec.command === "controller" ? "controller" : `agent-${name}`;
    running.set(
      name,
      startOperatorProcess(
        spec.command === "controller" ? "controller" : `agent ${name}`,
        spec.command,
        spec.args,
        path.join(o.dir, `${logName}.log`),
      ),
    );
  };
  for (const name of specs.keys()) start(name);
  return {
    controllerMetrics,
    agents,
    stop: async (name) => {
      await running.get(name)?.stop();
      running.delete(name);
    },
    start,
    logs: async () =>
      (await Promise.all([...running.values()].map((p) => p.logTail(20)))).join("\n"),
    stopAll: async () => {
      await Promise.all([...running.values()].map((p) => p.stop()));
      running.clear();
    },
  };
}

/** The /metrics text a process serves on `address` (host:port). */
export async function scrape(address: string): Promise<string> {
  const res = await fetch(`http://${address}/metrics`);
  if (!res.ok) throw new Error(`GET http://${address}/metrics: ${String(res.status)}`);
  return res.text();
}

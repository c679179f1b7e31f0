// Entry point of `imagepolicy agent` (called by src/cli/main.ts): flags, logger, Kubernetes
// client, informers, work queue, HTTP endpoints; runs until SIGTERM or SIGINT, then shuts down
// gracefully.

import type { Io } from "../cli/io.ts";
import {
  apiVersionOf,
  Informer,
  KubeClient,
  loadKubeConfig,
  Resources,
  WorkQueue,
  type Logger,
} from "../kube/index.ts";
import { jsonLogger } from "./log.ts";
import { Agent, trimNode } from "./agent.ts";
import { AGENT_USAGE, AgentUsageError, parseAgentArgs, type AgentConfig } from "./config.ts";
import { fetchCrioConfig } from "./crioProbe.ts";
import { nodePaths } from "./hostPaths.ts";
import { LAYER_SELECTOR } from "../layerConfigMap.ts";
import { trimLayerConfigMap } from "./layers.ts";
import { AgentMetrics } from "./metrics.ts";
import { realNodeFs } from "./nodeFs.ts";
import { readNodeInputs } from "./nodeInputs.ts";
import { serve, type Listening } from "../httpServer.ts";

export const FIELD_MANAGER = "imagepolicy-agent";

export async function main(argv: readonly string[], io: Io): Promise<number> {
  let config: AgentConfig;
  try {
    const parsed = parseAgentArgs(argv, process.env);
    if (parsed.help) {
      io.out(AGENT_USAGE);
      return 0;
    }
    config = parsed.config;
  } catch (err) {
    io.err(`error: ${(err as Error).message}\n${AGENT_USAGE}`);
    return err instanceof AgentUsageError ? 2 : 1;
  }
  const logger = jsonLogger({
    level: config.logLevel,
    base: { component: "agent", node: config.nodeName },
    write: (line) => process.stdout.write(line),
    now: () => Date.now(),
  });
  try {
    return await run(config, logger);
  } catch (err) {
    logger.fatal({ err }, "agent failed");
    return 1;
  }
}

async function run(config: AgentConfig, logger: Logger): Promise<number> {
  const paths = nodePaths(config.host);
  const client = new KubeClient(loadKubeConfig(config.kubeconfig, process.env));
  const metrics = new AgentMetrics();
  const layers = new Informer({
    name: `configmaps ${config.namespace}`,
    source: client.listWatcher(Resources.configMaps, {
      namespace: config.namespace,
      labelSelector: LAYER_SELECTOR,
      // A layer can be large (up to the 1 MiB object limit): a page at a time stays small.
      pageSize: 20,
    }),
    logger,
    transform: trimLayerConfigMap,
  });
  const node = new Informer({
    name: `node ${config.nodeName}`,
    source: client.listWatcher(Resources.nodes, {
      fieldSelector: `metadata.name=${config.nodeName}`,
    }),
    logger,
    transform: trimNode,
  });
  const R = Resources.imagePolicyNodeStatuses;
  const agent = new Agent(
    {
      nodeName: config.nodeName,
      paths,
      hostPolicyDir: config.host.policyDir,
      expectedPolicyPath: config.expectedPolicyPath,
      expectedPolicyDir: config.expectedPolicyDir,
      ...(config.crioVersion === undefined ? {} : { crioVersionOverride: config.crioVersion }),
      probeIntervalMs: config.probeIntervalMs,
    },
    {
      fs: realNodeFs(),
      logger,
      metrics,
      layers,
      node,
      status: {
        async read(name) {
          // A list with a field selector: a missing object is an empty list, not an error.
          const r = await client.list(R, { fieldSelector: `metadata.name=${name}` });
          return r.items[0];
        },
        async ensure(name, owner) {
          await client.apply(
            {
              apiVersion: apiVersionOf(R),
              kind: R.kind,
              metadata: {
                name,
                ownerReferences: [
                  { apiVersion: "v1", kind: "Node", name: owner.name, uid: owner.uid },
                ],
              },
              spec: { nodeName: name },
            },
            FIELD_MANAGER,
          );
        },
        async patchStatus(name, patch) {
          await client.patchStatus(R, { name }, patch);
        },
      },
      probe: () => fetchCrioConfig(paths.crioSocket, 5000),
      readNodeInputs: () => readNodeInputs(paths),
      now: () => new Date(),
      queue: new WorkQueue({ baseDelayMs: 1000, maxDelayMs: 60_000 }),
    },
  );

  await agent.start();
  const servers: Listening[] = [];
  let stopping = false;
  if (config.metricsAddr !== undefined) {
    const s = await serve(config.metricsAddr, { registry: metrics.registry });
    servers.push(s);
    logger.info({ url: s.url }, "serving /metrics");
  }
  if (config.healthAddr !== undefined) {
    const s = await serve(config.healthAddr, {
      healthy: () => !stopping,
      ready: () => agent.ready,
    });
    servers.push(s);
    logger.info({ url: s.url }, "serving /healthz and /readyz");
  }
  logger.info({ paths }, "agent started");

  await new Promise<void>((resolve) => {
    const done = (signal: string): void => {
      logger.info({ signal }, "shutting down");
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
      resolve();
    };
    const onTerm = (): void => {
      done("SIGTERM");
    };
    const onInt = (): void => {
      done("SIGINT");
    };
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
  });
  stopping = true;
  await agent.stop();
  await Promise.all(servers.map((s) => s.close()));
  client.close();
  logger.info("stopped");
  return 0;
}

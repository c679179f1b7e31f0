// Entry point of `imagepolicy agent` (called by src/cli/main.ts): flags, logger, Kubernetes
// client, informers, work queue, HTTP endpoints; runs until SIGTERM or SIGINT, then shuts down
// gracefully.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
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
import { loadMallocTrim } from "./mallocTrim.ts";
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

/** Resident growth past which a reconcile's leftovers are given back once the agent is idle (a
 * reconcile that writes every file grows the process by 15-20 MiB, one namespace's change by
 * ~7 MiB). */
const RELEASE_GROWTH_BYTES = 4 * 1024 * 1024;
/** Growth past which they are given back at once, after the reconcile: a cluster change. Left
 * for later, the next reconciles ran on the larger heap and a cluster change cost its agents
 * ~0.2 s more CPU in the propagation benchmark (docs/scale.md). */
const RELEASE_NOW_BYTES = 12 * 1024 * 1024;

/** After a reconcile that grew the process, a full collection that also returns V8's free pages
 * to the system: V8 keeps them after its own collections and its memory reducer did not run in
 * 60 s idle, so an idle agent stayed at its peak (docs/scale.md, "The agent"). ~0.1 s CPU each.
 * gc() exists only with --expose-gc, and that flag in NODE_OPTIONS changes V8's flag hash, which
 * names the compile cache's directory: the image's cache, filled without it, would be missed and
 * every start would strip the types again (~17 MiB). So the flag is on for one new context.
 * Then malloc_trim (src/agent/mallocTrim.ts) returns the free pages left inside malloc's heap. */
function memoryReleaser(logger: Logger): (idle: boolean) => void {
  const malloc = loadMallocTrim();
  if (malloc.ok) logger.info({ addon: malloc.path }, "malloc_trim available");
  else {
    logger.warn(
      { addon: malloc.path, reason: malloc.reason },
      "malloc_trim unavailable: free malloc memory stays resident after a peak",
    );
  }
  const trim = malloc.ok ? malloc.trim : () => false;
  let gc = globalThis.gc;
  if (gc === undefined) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as NodeJS.GCFunction;
    setFlagsFromString("--no-expose-gc");
  }
  const collect = gc;
  let after = process.memoryUsage.rss();
  return (idle) => {
    const grown = process.memoryUsage.rss() - after;
    if (grown < (idle ? RELEASE_GROWTH_BYTES : RELEASE_NOW_BYTES)) return;
    collect({ type: "major", execution: "sync", flavor: "last-resort" });
    trim();
    after = process.memoryUsage.rss();
  };
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
      statusDelayMs: config.statusDelayMs,
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
      readNodeInputs: () => Promise.resolve().then(() => readNodeInputs(paths)),
      now: () => new Date(),
      queue: new WorkQueue({ baseDelayMs: 1000, maxDelayMs: 60_000 }),
      releaseMemory: memoryReleaser(logger),
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

// Entry point of `imagepolicy controller`: flags, wiring, leader election, graceful shutdown.
// Every dependency is built here and passed down; nothing else reads the process.

import pino from "pino";
import type { Io } from "../cli/io.ts";
import { parseImage } from "../compiler/scopes.ts";
import {
  EventRecorder,
  Informer,
  KubeClient,
  kubeLeaseStore,
  type KubeObject,
  LeaderElector,
  loadKubeConfig,
  type Resource,
  Resources,
  type Selector,
  systemClock,
  systemDelay,
  WorkQueue,
} from "../kube/index.ts";
import {
  compactNode,
  compactNodeStatus,
  compactPod,
  compactPolicy,
  compactSource,
  RevisionsInterner,
} from "./cache.ts";
import { Controller, type ControllerInformers } from "./controller.ts";
import { USAGE, parseFlags, type ControllerConfig } from "./flags.ts";
import { serve, type Listening } from "../httpServer.ts";
import { LAYER_SELECTOR } from "../layerConfigMap.ts";
import { ControllerMetrics } from "./metrics.ts";
import { reportDecoder } from "./reportJson.ts";
import type { ProtectedImage } from "./plan.ts";
import { observedStatus } from "./status.ts";
import { controllerRefusalExplainer } from "../refusals/wiring.ts";

/** Pods of the protected namespaces: only their images are read. */
const PODS: Resource = { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true };

/** Pause and the operator's own image (cluster.json and the operator namespace's file), and
 * --protected-image. CRI-O pulls the sandbox (pause) image itself when it creates a pod sandbox,
 * not through an image pull request carrying the pod's namespace, so cluster.json is the policy
 * that decides it; `--protected-image=REF` (no namespace) protects an image in every namespace
 * for whoever wants that too. */
export function staticProtectedImages(config: ControllerConfig): ProtectedImage[] {
  const out: ProtectedImage[] = [];
  const add = (
    image: string | undefined,
    reason: ProtectedImage["reason"],
    namespaces: ProtectedImage["namespaces"],
    what: string,
  ): void => {
    if (image === undefined) return;
    const p = parseImage(image);
    if (p.ok) out.push({ reference: p.reference, reason, namespaces, what });
  };
  add(config.pauseImage, "WouldRejectPause", [config.namespace], "the pause image (--pause-image)");
  add(config.operatorImage, "WouldRejectOperator", [config.namespace], "the operator's own image");
  for (const { namespace, image } of config.protectedImages) {
    add(
      image,
      "WouldRejectProtectedImage",
      namespace === undefined ? "all" : [namespace],
      "a protected image (--protected-image)",
    );
  }
  return out;
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  let config: ControllerConfig | null;
  try {
    config = parseFlags(argv, process.pid);
  } catch (err) {
    io.err(`error: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (config === null) {
    io.out(USAGE);
    return 0;
  }
  const logger = pino(
    { level: config.logLevel, base: { component: "controller", replica: config.identity } },
    {
      write: (line: string) => {
        io.out(line.trimEnd());
      },
    },
  );
  try {
    return await run(config, logger);
  } catch (err) {
    logger.fatal({ err }, "controller failed");
    return 1;
  }
}

async function run(config: ControllerConfig, logger: pino.Logger): Promise<number> {
  const client = new KubeClient(
    loadKubeConfig(
      config.kubeconfig === undefined
        ? { kind: "in-cluster" }
        : { kind: "file", path: config.kubeconfig },
    ),
  );
  const metrics = new ControllerMetrics();
  // One recorder for the controller's Events and the refusal explainer's.
  const events = new EventRecorder({
    client,
    controller: "imagepolicy.dev/controller",
    instance: config.identity,
    clock: systemClock,
    logger,
  });
  // Each informer keeps only what the controller reads of its objects (cache.ts): at 5,000 nodes
  // the node reports would otherwise hold most of its memory.
  const revisions = new RevisionsInterner();
  const informer = (
    name: string,
    resource: Resource,
    selector: Selector = {},
    reduce?: (o: KubeObject) => KubeObject,
  ): Informer => {
    const source = client.listWatcher(resource, selector);
    return new Informer({
      name,
      source: reduce === undefined ? source : compactSource(source, reduce),
      logger,
      delay: systemDelay,
    });
  };
  const informers: ControllerInformers = {
    clusterImagePolicies: informer(
      "clusterimagepolicies",
      Resources.clusterImagePolicies,
      {},
      compactPolicy,
    ),
    imagePolicies: informer("imagepolicies", Resources.imagePolicies, {}, compactPolicy),
    nodes: informer("nodes", Resources.nodes, {}, compactNode),
    layers: informer("layer-configmaps", Resources.configMaps, {
      namespace: config.namespace,
      labelSelector: LAYER_SELECTOR,
    }),
    nodeStatuses: informer(
      "imagepolicynodestatuses",
      Resources.imagePolicyNodeStatuses,
      { decode: reportDecoder(revisions) },
      (o) => compactNodeStatus(o, revisions),
    ),
    protectedPods: config.protectedNamespaces.map((namespace) =>
      informer(`pods ${namespace}`, PODS, { namespace }, compactPod),
    ),
  };
  // imagepolicy_controller_policies, counted from the caches when Prometheus scrapes.
  metrics.countPolicies(function* () {
    const kinds = [
      ["ClusterImagePolicy", informers.clusterImagePolicies],
      ["ImagePolicy", informers.imagePolicies],
    ] as const;
    for (const [kind, cache] of kinds) {
      for (const o of cache.list()) {
        const ready = observedStatus(o)?.conditions?.find((c) => c.type === "Ready");
        yield { kind, ready: ready?.status ?? "", reason: ready?.reason ?? "" };
      }
    }
  });
  const protectedImages = staticProtectedImages(config);
  const queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 60_000 });
  const controller = new Controller(
    {
      namespace: config.namespace,
      crioVersionOverride: config.crioVersion,
      protectedImages,
      quota: config.quota,
      namespaceLookasidePrefixes: config.namespaceLookasidePrefixes,
    },
    {
      api: client,
      informers,
      queue,
      events,
      metrics,
      clock: systemClock,
      logger,
      revisions,
      // One list+watch per referenced Secret, by name: what RBAC resourceNames can grant.
      secretInformer: ({ namespace, name }) =>
        informer(`secret ${namespace}/${name}`, Resources.secrets, {
          namespace,
          fieldSelector: `metadata.name=${name}`,
        }),
    },
  );
  // Why a pod's image was refused: an Event on the pod and an ImagePullRefusal (src/refusals).
  const refusals = controllerRefusalExplainer({
    client,
    namespace: config.namespace,
    layers: informers.layers,
    nodeStatuses: informers.nodeStatuses,
    events,
    clock: systemClock,
    delay: systemDelay,
    logger,
    registry: metrics.registry,
  });
  const elector = new LeaderElector({
    identity: config.identity,
    store: kubeLeaseStore(client, config.namespace, config.leaderElectionId),
    clock: systemClock,
    delay: systemDelay,
    logger,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.renewDeadlineMs,
    retryPeriodMs: config.retryPeriodMs,
  });

  const shutdown = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, "shutting down");
    shutdown.abort();
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);

  const servers: Listening[] = [];
  try {
    servers.push(await serve(config.metricsAddr, { registry: metrics.registry }));
    servers.push(
      await serve(config.healthAddr, {
        healthy: () => true,
        ready: () => controller.synced,
      }),
    );
    logger.info({ urls: servers.map((s) => s.url) }, "serving metrics and health");
    controller.start();
    await Promise.race([
      controller.waitForSync(),
      new Promise<void>((resolve) => {
        shutdown.signal.addEventListener("abort", () => {
          resolve();
        });
      }),
    ]);
    if (!shutdown.signal.aborted) {
      logger.info("caches synced; campaigning for leadership");
      const workers: Promise<void>[] = [];
      await elector.run(shutdown.signal, {
        onStartedLeading: (leading) => {
          metrics.isLeader.set(1);
          workers.push(controller.runWorker(leading), refusals.run(leading));
        },
        onStoppedLeading: () => {
          metrics.isLeader.set(0);
        },
        onNewLeader: (identity) => {
          logger.info({ leader: identity }, "observed leader");
        },
      });
      queue.shutDown();
      await Promise.all(workers);
    }
  } finally {
    queue.shutDown();
    await controller.stop();
    await Promise.all(servers.map((s) => s.close()));
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("SIGINT", onSignal);
  }
  logger.info("stopped");
  return 0;
}

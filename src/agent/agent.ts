// The agent's imperative shell, shaped like the controller's (docs/style.md habit 10): informer
// events only enqueue the key of this node's files on the same WorkQueue the controller uses,
// which owns retries (capped per-key backoff) and the periodic resync (the key comes back after
// --probe-interval). A reconcile recomputes from the informer caches: it tracks the layer
// ConfigMaps (parsing only what changed) and moves the files through plan/apply (files.ts). It
// then queues the second key, the status report, a while later (--status-delay): that step asks
// CRI-O whether it reads the files and patches the node's status when it changed.

import type { Logger } from "../kube/index.ts";
import type { ScopeIndex } from "../compiler/combine.ts";
import { LATEST_KNOWN, parseCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import type { Layer } from "../compiler/layer.ts";
import type { Informer, InformerEvent, KubeObject, WorkQueue } from "../kube/index.ts";
import type { Runtime } from "../nodeStatus.ts";
import {
  enforcement,
  parseRuntimeVersion,
  type ConfigFetch,
  type Enforcement,
} from "./crioProbe.ts";
import { EMPTY_LAYER, NodeFiles, NodeFilesError, type FilesOutcome } from "./files.ts";
import { REGISTRIES_D_FILE, type NodePaths } from "./hostPaths.ts";
import { layerKeyNames } from "./keyFiles.ts";
import { LayerSources, own } from "./layers.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { NodeFs } from "./nodeFs.ts";
import type { NodeInputs } from "./nodeInputs.ts";
import { registriesIndex } from "./registriesDFile.ts";
import { StatusReporter, type StatusApi } from "./status.ts";

export type { StatusApi } from "./status.ts";

/** The first key: this node's files. */
export const NODE_KEY = "node";
/** The second key: this node's ImagePolicyNodeStatus, written after the files it reports. */
export const STATUS_KEY = "status";

export interface AgentOptions {
  readonly nodeName: string;
  readonly paths: NodePaths;
  /** The policy directory as the host sees it (recorded in the manifest). */
  readonly hostPolicyDir: string;
  readonly expectedPolicyPath: string;
  readonly expectedPolicyDir: string;
  readonly crioVersionOverride?: string;
  readonly probeIntervalMs: number;
  /** A status report waits between half of this and all of it after the reconcile that queued
   * it (0: at once). One report then covers a burst of changes, and a fleet's reports of one
   * change reach the API server spread over that time (docs/scale.md, "The status report a
   * while after the files"). */
  readonly statusDelayMs: number;
}

export interface AgentDeps {
  readonly fs: NodeFs;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  readonly layers: Informer;
  readonly node: Informer;
  readonly status: StatusApi;
  readonly probe: () => Promise<ConfigFetch>;
  readonly readNodeInputs: () => Promise<NodeInputs>;
  readonly now: () => Date;
  readonly queue: WorkQueue;
  /** Gives back what the heap grew, if it grew much (main.ts; docs/scale.md, "The agent"):
   * called after a reconcile when nothing else is queued (idle false: only a large growth), and
   * again once nothing was queued for RELEASE_IDLE_MS (idle true). */
  readonly releaseMemory?: (idle: boolean) => void;
  /** Where the status delay's jitter comes from (default Math.random). */
  readonly random?: () => number;
}

/** How long the queue stays empty after a reconcile before a small growth is given back. The
 * full collection that takes (30-40 ms with the large fixture) then runs after a burst of
 * namespace changes rather than between them, and not while the agents of other nodes sharing
 * the cores (the propagation benchmark) still work on the same change. */
export const RELEASE_IDLE_MS = 1_000;

/** What a reconcile found that its status report says. */
interface Found {
  readonly nodeUid: string;
  readonly runtime: Runtime;
  readonly crioVersion: CrioVersion | undefined;
  readonly readyReason: string;
  readonly errors: readonly string[];
}

export class AgentStartError extends Error {
  override readonly name = "AgentStartError";
}

/** What the agent reads of its Node. */
function nodeFacts(node: KubeObject): { uid: string; runtimeVersion: string } | undefined {
  const uid = node.metadata.uid;
  if (uid === undefined) return undefined;
  const status: unknown = node["status"];
  const info: unknown =
    typeof status === "object" && status !== null ? Reflect.get(status, "nodeInfo") : undefined;
  const v: unknown =
    typeof info === "object" && info !== null
      ? Reflect.get(info, "containerRuntimeVersion")
      : undefined;
  return { uid, runtimeVersion: typeof v === "string" ? v : "" };
}

/** The node informer's transform: only what nodeFacts reads (a Node is large and changes often). */
export function trimNode(node: KubeObject): KubeObject {
  const m = node.metadata;
  const facts = nodeFacts(node);
  return {
    apiVersion: own(node.apiVersion),
    kind: own(node.kind),
    metadata: {
      name: own(m.name),
      ...(m.uid === undefined ? {} : { uid: own(m.uid) }),
      ...(m.resourceVersion === undefined ? {} : { resourceVersion: own(m.resourceVersion) }),
    },
    status: { nodeInfo: { containerRuntimeVersion: own(facts?.runtimeVersion ?? "") } },
  };
}

function tryCrioVersion(text: string): CrioVersion | undefined {
  try {
    return parseCrioVersion(text);
  } catch {
    return undefined; // CrioVersionError: reported as "cannot read CRI-O version"
  }
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #d: AgentDeps;
  readonly #files: NodeFiles;
  readonly #sources = new LayerSources();
  /** What registries.d needs of each layer this process parsed, by revision. */
  readonly #needs = new Map<string, ScopeIndex>();
  /** The key file names each layer's policies need, by revision (keyFiles.ts). */
  readonly #keyNames = new Map<string, readonly string[]>();
  readonly #reporter: StatusReporter;
  readonly #unsubscribe: (() => void)[] = [];
  #ready = false;
  #omitted = "";
  /** What the last reconcile found, for the next report (undefined: nothing to report yet). */
  #found: Found | undefined;
  /** A reconcile queued a report that has not run yet: memory is given back after it. */
  #reportQueued = false;
  #worker: Promise<void> | undefined;
  #release: NodeJS.Timeout | undefined;
  readonly #stopping = new AbortController();

  constructor(options: AgentOptions, deps: AgentDeps) {
    this.#o = options;
    this.#d = deps;
    this.#files = new NodeFiles(options.paths, options.hostPolicyDir, deps.fs, deps.logger);
    this.#reporter = new StatusReporter(options.nodeName, deps.status, deps.logger);
  }

  /** Files ready: this process brought them to the layers at least once. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Status writes so far. */
  get statusWrites(): number {
    return this.#reporter.writes;
  }

  /** Loads what the node's files hold, starts the watches and the worker. The first reconcile
   * runs at once: without the API it still makes sure cluster.json exists. Throws only when the
   * node's directories cannot be read or written. */
  async start(): Promise<void> {
    try {
      await this.#files.load();
    } catch (cause) {
      throw new AgentStartError(`cannot prepare the node's files: ${(cause as Error).message}`, {
        cause,
      });
    }
    const { layers, node, queue } = this.#d;
    const kick = (): void => {
      queue.add(NODE_KEY);
    };
    // A Node changes often (conditions, heartbeats); only its runtime or identity matter here.
    const nodeChanged = (e: InformerEvent): void => {
      if (
        e.type !== "updated" ||
        JSON.stringify(nodeFacts(e.old)) !== JSON.stringify(nodeFacts(e.object))
      ) {
        kick();
      }
    };
    this.#unsubscribe.push(layers.onEvent(kick), node.onEvent(nodeChanged));
    layers.start();
    node.start();
    void Promise.all([layers.waitForSync(), node.waitForSync()]).then(kick);
    queue.add(NODE_KEY);
    this.#worker = this.#run();
  }

  /** Finishes the step in progress (the files are consistent after every step), then stops. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    for (const u of this.#unsubscribe) u();
    this.#d.queue.shutDown();
    await Promise.all([this.#d.layers.stop(), this.#d.node.stop()]);
    await this.#worker;
  }

  async #run(): Promise<void> {
    const { queue, logger } = this.#d;
    for (;;) {
      const key = await queue.get();
      clearTimeout(this.#release);
      if (key === undefined) return;
      if (key === STATUS_KEY) this.#reportQueued = false;
      try {
        if (await (key === STATUS_KEY ? this.#report() : this.#reconcile())) queue.forget(key);
        else queue.addRateLimited(key);
      } catch (err) {
        logger.error({ err }, "reconcile failed");
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
      // After the report a reconcile queued, so that what the report allocates is given back
      // with the reconcile's own (the report comes within --status-delay).
      const release = this.#d.releaseMemory;
      if (queue.length === 0 && !this.#reportQueued && release !== undefined) {
        release(false);
        this.#release = setTimeout(() => {
          release(true);
        }, RELEASE_IDLE_MS);
        this.#release.unref();
      }
      // The resync and CRI-O probe: the key comes back (the earliest pending delay wins).
      if (key === NODE_KEY) queue.addAfter(key, this.#o.probeIntervalMs);
    }
  }

  /** Returns false when it should be retried (an error on the way). */
  async #reconcile(): Promise<boolean> {
    const { logger, metrics } = this.#d;
    const o = this.#o;
    const synced = this.#d.layers.synced && this.#d.node.synced;
    const nodeObj = synced ? this.#d.node.get(o.nodeName) : undefined;
    const facts = nodeObj === undefined ? undefined : nodeFacts(nodeObj);
    const runtime: Runtime =
      o.crioVersionOverride === undefined
        ? parseRuntimeVersion(facts?.runtimeVersion ?? "")
        : { name: "cri-o", version: o.crioVersionOverride };
    const crioVersion = runtime.name === "cri-o" ? tryCrioVersion(runtime.version) : undefined;
    const target = crioVersion ?? LATEST_KNOWN;
    if (!synced) {
      // The sync kick comes back; meanwhile CRI-O must find a cluster.json.
      const r = await this.#files.ensureClusterFile(target);
      if (r !== undefined) this.#count(r.written, r.removed, r.bytesWritten);
      return r?.error === undefined;
    }
    if (facts === undefined) {
      logger.warn({ node: o.nodeName }, "own Node not found: files unchanged");
      return true;
    }

    const errors: string[] = [];
    let readyReason = "Applied";
    let failed = false;
    // The layers parsed now are rendered next: handed over rather than parsed again, unless
    // there are many (a start parses every layer; keeping them all would raise the peak).
    let parsedNow: Map<string, Layer> | undefined = new Map();
    this.#sources.update(this.#d.layers.list(), (_ns, layer, parsed) => {
      this.#needs.set(layer.revision, registriesIndex(parsed));
      this.#keyNames.set(layer.revision, layerKeyNames(parsed));
      if (parsedNow !== undefined && parsedNow.size < HANDED_OVER)
        parsedNow.set(layer.revision, parsed);
      else parsedNow = undefined;
    });
    const state = this.#sources.state();
    errors.push(...state.problems);
    this.#pruneNeeds(state);
    const c = state.cluster;
    const cluster = c === undefined ? undefined : c.ok ? c.layer : c.lastGood;
    if (c !== undefined && !c.ok) errors.push(c.reason);
    if (cluster === undefined) {
      readyReason = "NoClusterLayer";
      errors.push(
        c === undefined
          ? "no cluster layer ConfigMap: files unchanged"
          : "cluster layer unusable; files unchanged",
      );
      const r = await this.#files.ensureClusterFile(target);
      if (r?.error !== undefined) {
        failed = true;
        errors.push(r.error.message);
      }
    } else {
      try {
        const inputs = await this.#d.readNodeInputs();
        errors.push(...inputs.problems);
        const out = await this.#files.reconcile(
          {
            cluster,
            namespaces: state.namespaces,
            needs: (rev) =>
              this.#needs.get(rev) ?? (rev === EMPTY_LAYER.revision ? EMPTY_NEEDS : undefined),
            inputs,
            target,
            text: (rev) => this.#sources.text(rev),
            parsed: (rev) => parsedNow?.get(rev),
            keyNames: (rev) => this.#keyNames.get(rev),
          },
          this.#stopping.signal,
        );
        errors.push(...out.problems);
        this.#omitted = out.omittedKeys
          .map((k) => `${k.key} (defined in ${k.definedIn})`)
          .join(", ");
        this.#observe(out);
        if (out.result.error !== undefined) {
          failed = true;
          readyReason = "WriteFailed";
          errors.push(out.result.error.message);
          metrics.writeErrors.inc();
        } else {
          if (out.result.written.length > 0 || out.result.removed.length > 0 || !this.#ready) {
            metrics.lastApplied.set(this.#d.now().getTime() / 1000);
          }
          this.#ready = true;
          if (out.problems.length > 0) readyReason = "AppliedWithProblems";
        }
      } catch (err) {
        if (err instanceof NodeFilesError) readyReason = "CannotRender";
        else {
          failed = true;
          readyReason = "WriteFailed";
          metrics.writeErrors.inc();
        }
        errors.push((err as Error).message);
      }
    }
    if (errors.length > 0) logger.warn({ problems: errors.slice(0, 20) }, "reconcile problems");

    this.#found = { nodeUid: facts.uid, runtime, crioVersion, readyReason, errors };
    // Of several pending delays the earliest wins: a burst of changes is reported once.
    this.#d.queue.addAfter(STATUS_KEY, this.#statusDelay());
    this.#reportQueued = true;
    return !failed;
  }

  #statusDelay(): number {
    const d = this.#o.statusDelayMs;
    return d <= 0 ? 0 : d / 2 + (this.#d.random ?? Math.random)() * (d / 2);
  }

  /** Asks CRI-O whether it reads the files and reports what the last reconcile found, with the
   * files' revisions as they are now. Returns false when the API refused it (retried alone). */
  async #report(): Promise<boolean> {
    const found = this.#found;
    if (found === undefined) return true;
    const { metrics } = this.#d;
    const o = this.#o;
    const enf: Enforcement = enforcement({
      runtime: found.runtime,
      crioVersion: found.crioVersion,
      config: await this.#d.probe(),
      expectedPolicyPath: o.expectedPolicyPath,
      expectedPolicyDir: o.expectedPolicyDir,
    });
    metrics.enforcing.set(enf.enforcing ? 1 : 0);
    const ready = found.readyReason === "Applied";
    const lastError = found.errors.join("; ");
    const reported = await this.#reporter.report(
      found.nodeUid,
      {
        runtime: found.runtime,
        enforcing: enf.enforcing,
        enforcingReason: enf.reason,
        appliedRevisions: this.#files.applied(),
        ready: {
          ok: ready,
          reason: found.readyReason,
          message: ready ? "every file holds the current layer revisions" : lastError,
        },
        registriesD: {
          complete: this.#omitted === "",
          message:
            this.#omitted === ""
              ? `${REGISTRIES_D_FILE} holds every key the policies need`
              : `left out of ${REGISTRIES_D_FILE} because another file defines them: ${this.#omitted}`,
        },
        lastError,
      },
      this.#d.now().toISOString(),
    );
    if (reported) metrics.statusWrites.set(this.#reporter.writes);
    return reported;
  }

  #observe(out: FilesOutcome): void {
    const r = out.result;
    this.#count(r.written, r.removed, r.bytesWritten);
    if (r.written.length > 0 || r.removed.length > 0) {
      this.#d.logger.info(
        {
          written: r.written.length,
          removed: r.removed.length,
          bytes: r.bytesWritten,
          files: r.written.length <= 5 ? r.written : [...r.written.slice(0, 5), "..."],
        },
        "node files updated",
      );
    }
  }

  #count(written: readonly string[], removed: readonly string[], bytes: number): void {
    const m = this.#d.metrics;
    const p = this.#o.paths;
    for (const w of written) {
      m.filesWritten.inc({
        kind:
          w === p.clusterJson
            ? "cluster"
            : w === p.manifest
              ? "manifest"
              : w === p.registriesDFile
                ? "registries.d"
                : w.startsWith(p.policyDir)
                  ? "namespace"
                  : "layer",
      });
    }
    m.filesRemoved.inc(removed.length);
    m.bytesWritten.inc(bytes);
  }

  /** Keeps what registries.d needs only of the layers still in use. Each layer change adds an
   * entry; they are pruned once PRUNE_SLACK have piled up, rather than on every change (a loop
   * over every namespace's layer before the namespace file is written, ~1 ms with 500). */
  #pruneNeeds(state: ReturnType<LayerSources["state"]>): void {
    const inUse = state.namespaces.size + 1;
    if (this.#needs.size <= inUse + PRUNE_SLACK && this.#keyNames.size <= inUse + PRUNE_SLACK)
      return;
    const keep = new Set<string>();
    for (const input of [state.cluster, ...state.namespaces.values()]) {
      if (input === undefined) continue;
      if (input.ok) keep.add(input.layer.revision);
      else if (input.lastGood !== undefined) keep.add(input.lastGood.revision);
    }
    for (const rev of [...this.#needs.keys()]) if (!keep.has(rev)) this.#needs.delete(rev);
    for (const rev of [...this.#keyNames.keys()]) if (!keep.has(rev)) this.#keyNames.delete(rev);
  }
}

const EMPTY_NEEDS: ScopeIndex = { scopes: new Map() };

/** Entries kept for layers no longer in use, at most, before they are pruned. */
const PRUNE_SLACK = 32;

/** At most this many layers parsed by one reconcile's update are handed to the renderer. */
const HANDED_OVER = 16;

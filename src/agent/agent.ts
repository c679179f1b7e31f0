// The agent's imperative shell: one watch of the layer ConfigMaps and one of its own Node; on
// every change it recomputes the node's files from the informer caches (level-triggered), writes
// only what changed in the tighten-only order of plan.ts, asks CRI-O whether it reads them, and
// patches its ImagePolicyNodeStatus when the observation changed. Nothing runs periodically
// against the API server; the CRI-O probe is local and patches status only on a change.

import type { Logger } from "pino";
import { z } from "zod";
import { combine, indexLayer } from "../compiler/combine.ts";
import { LATEST_KNOWN, parseCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import { EMPTY_CLUSTER_LAYER, parseLayer, serializeLayer } from "../compiler/layer.ts";
import type { Informer } from "../kube/informer.ts";
import type { KubeObject } from "../kube/objects.ts";
import { applyPlan } from "./apply.ts";
import {
  enforcement,
  parseRuntimeVersion,
  type ConfigFetch,
  type Enforcement,
  type Runtime,
} from "./crioProbe.ts";
import { REGISTRIES_D_FILE, type NodePaths } from "./hostPaths.ts";
import { desiredFrom, readLayers, type LastGood } from "./layers.ts";
import { emptyManifest, parseManifest, serializeManifest, type Manifest } from "./manifest.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { NodeFs } from "./nodeFs.ts";
import type { NodeInputs } from "./nodeInputs.ts";
import { plan } from "./plan.ts";
import { parseOwnRegistriesD } from "./registriesDFile.ts";
import { layerRevision } from "../layerConfigMap.ts";
import { nodeStatus, sameStatus, statusPatch, type NodeStatus } from "./status.ts";

/** The agent's writes to the API server: its own ImagePolicyNodeStatus only. */
export interface StatusApi {
  /** The object, or undefined when it does not exist. */
  read(name: string): Promise<KubeObject | undefined>;
  /** Creates it (or sets spec and owner) by server-side apply. */
  ensure(name: string, owner: { readonly name: string; readonly uid: string }): Promise<void>;
  /** JSON merge patch of the status subresource. */
  patchStatus(name: string, status: Record<string, unknown>): Promise<void>;
}

export interface AgentOptions {
  readonly nodeName: string;
  readonly paths: NodePaths;
  /** The policy directory as the host sees it (recorded in the manifest). */
  readonly hostPolicyDir: string;
  readonly expectedPolicyPath: string;
  readonly expectedPolicyDir: string;
  readonly crioVersionOverride?: string;
  readonly probeIntervalMs: number;
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
  readonly schedule: (fn: () => void, ms: number) => () => void;
}

export class AgentStartError extends Error {
  override readonly name = "AgentStartError";
}

const nodeSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), uid: z.string().optional() }),
  status: z
    .looseObject({
      nodeInfo: z.looseObject({ containerRuntimeVersion: z.string().optional() }).optional(),
    })
    .optional(),
});

const reportedSchema = z.looseObject({
  metadata: z.looseObject({
    generation: z.number().optional(),
    ownerReferences: z.array(z.looseObject({ uid: z.string() })).optional(),
  }),
  status: z
    .looseObject({
      runtime: z.object({ name: z.string(), version: z.string() }).optional(),
      enforcing: z.boolean().optional(),
      enforcingReason: z.string().optional(),
      appliedRevisions: z.record(z.string(), z.string()).optional(),
      lastError: z.string().optional(),
      lastTransitionTime: z.string().optional(),
      lastUpdateTime: z.string().optional(),
      conditions: z
        .array(
          z.looseObject({
            type: z.string(),
            status: z.enum(["True", "False", "Unknown"]),
            reason: z.string(),
            message: z.string(),
            lastTransitionTime: z.string(),
            observedGeneration: z.number().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
});

const MAX_BACKOFF_MS = 60_000;

export class Agent {
  readonly #o: AgentOptions;
  readonly #d: AgentDeps;
  #manifest: Manifest;
  #lastGood: LastGood = new Map();
  #applied: Record<string, string> | undefined;
  #omitted = "";
  #ready = false;
  #reported: NodeStatus | undefined;
  #statusChecked = false;
  #generation: number | undefined;
  #running: Promise<void> | undefined;
  #dirty = false;
  #failures = 0;
  #cancelRetry: (() => void) | undefined;
  #cancelProbe: (() => void) | undefined;
  #stopped = false;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(options: AgentOptions, deps: AgentDeps) {
    this.#o = options;
    this.#d = deps;
    this.#manifest = emptyManifest(options.hostPolicyDir);
  }

  /** Files ready: the layers were applied at least once by this process. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Writes cluster.json if there is none (accept-all, CRI-O's stock behaviour), then starts
   * watching. Throws only when the node's directories cannot be written. */
  async start(): Promise<void> {
    const { fs, logger } = this.#d;
    const p = this.#o.paths;
    try {
      for (const dir of [
        p.clusterJson.slice(0, p.clusterJson.lastIndexOf("/")),
        p.policyDir,
        p.registriesD,
      ]) {
        await fs.mkdirp(dir);
      }
      this.#manifest = await this.#loadManifest();
      if ((await fs.readText(p.clusterJson)) === undefined) {
        const empty = combine([indexLayer(EMPTY_CLUSTER_LAYER)], LATEST_KNOWN);
        if (!empty.ok) throw new AgentStartError("cannot render the empty cluster layer");
        await fs.writeIfChanged(p.clusterJson, empty.text);
        this.#d.metrics.filesWritten.inc({ kind: "cluster" });
        logger.info({ path: p.clusterJson }, "no cluster.json yet: wrote an accept-all one");
        if (this.#manifest.clusterLayers.length === 0) {
          const text = serializeLayer(EMPTY_CLUSTER_LAYER);
          this.#manifest = {
            ...this.#manifest,
            clusterLayers: [text],
            clusterRevision: layerRevision(text),
          };
          await fs.writeIfChanged(p.manifest, serializeManifest(this.#manifest));
        }
      }
    } catch (cause) {
      throw new AgentStartError(`cannot prepare the node's files: ${(cause as Error).message}`, {
        cause,
      });
    }
    const kick = (): void => {
      this.trigger();
    };
    this.#unsubscribe.push(this.#d.layers.onEvent(kick), this.#d.node.onEvent(kick));
    this.#d.layers.start();
    this.#d.node.start();
    void Promise.all([this.#d.layers.waitForSync(), this.#d.node.waitForSync()]).then(kick);
    this.#scheduleProbe();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelRetry?.();
    this.#cancelProbe?.();
    for (const u of this.#unsubscribe) u();
    await Promise.all([this.#d.layers.stop(), this.#d.node.stop()]);
    await this.#running;
  }

  /** Level-triggered: coalesces while a reconcile runs, then runs once more. */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#dirty = true;
      return;
    }
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  /** Resolves when no reconcile is running (tests). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#dirty = false;
      let ok: boolean;
      try {
        ok = await this.#reconcile();
      } catch (err) {
        this.#d.logger.error({ err }, "reconcile failed");
        ok = false;
      }
      if (ok) this.#failures = 0;
      else if (!this.#pending()) {
        const wait = Math.min(1000 * 2 ** this.#failures, MAX_BACKOFF_MS);
        this.#failures++;
        this.#cancelRetry = this.#d.schedule(() => {
          this.trigger();
        }, wait);
      }
    } while (this.#pending());
  }

  /** Another trigger arrived while reconciling (read through a method: it changes across awaits). */
  #pending(): boolean {
    return this.#dirty && !this.#stopped;
  }

  #scheduleProbe(): void {
    this.#cancelProbe = this.#d.schedule(() => {
      this.trigger();
      this.#scheduleProbe();
    }, this.#o.probeIntervalMs);
  }

  async #loadManifest(): Promise<Manifest> {
    const { fs, logger } = this.#d;
    const text = await fs.readText(this.#o.paths.manifest);
    const fresh = emptyManifest(this.#o.hostPolicyDir);
    if (text === undefined) return fresh;
    let m: Manifest;
    try {
      m = parseManifest(text);
    } catch (err) {
      // Never delete on doubt: an unreadable manifest owns nothing.
      logger.error({ err }, "unreadable manifest: owning no namespace file");
      return fresh;
    }
    if (m.policyDir !== this.#o.hostPolicyDir) {
      logger.warn(
        { recorded: m.policyDir, now: this.#o.hostPolicyDir },
        "policy directory changed: the files listed in the manifest are left alone",
      );
      return { ...m, policyDir: this.#o.hostPolicyDir, namespaces: {} };
    }
    return m;
  }

  /** Returns false when it should be retried (an error on the way). */
  async #reconcile(): Promise<boolean> {
    const { logger, metrics } = this.#d;
    if (!this.#d.layers.synced || !this.#d.node.synced) return true; // waits for the sync kick
    const nodeObj = this.#d.node.get(this.#o.nodeName);
    const node = nodeObj === undefined ? undefined : nodeSchema.safeParse(nodeObj);
    if (node === undefined || !node.success || node.data.metadata.uid === undefined) {
      logger.warn({ node: this.#o.nodeName }, "own Node not found: files unchanged");
      return true;
    }
    const runtime: Runtime =
      this.#o.crioVersionOverride === undefined
        ? parseRuntimeVersion(node.data.status?.nodeInfo?.containerRuntimeVersion ?? "")
        : { name: "cri-o", version: this.#o.crioVersionOverride };
    const crioVersion = runtime.name === "cri-o" ? tryCrioVersion(runtime.version) : undefined;

    const errors: string[] = [];
    let applyFailed = false;
    const state = readLayers(this.#d.layers.list(), this.#lastGood);
    this.#lastGood = state.lastGood;
    errors.push(...state.problems);
    const desired = desiredFrom(state);
    let readyReason = "Applied";
    if (desired === undefined) {
      readyReason = "NoClusterLayer";
      errors.push(
        state.cluster === undefined
          ? "no cluster layer ConfigMap: files unchanged"
          : `cluster layer unusable: ${state.cluster.ok ? "" : state.cluster.reason}; files unchanged`,
      );
    } else {
      if (state.cluster?.ok === false) errors.push(state.cluster.reason);
      try {
        const inputs = await this.#d.readNodeInputs();
        errors.push(...inputs.problems);
        const own = await this.#d.fs.readText(this.#o.paths.registriesDFile);
        const r = plan(
          {
            manifest: this.#manifest,
            registriesD: (own === undefined ? undefined : parseOwnRegistriesD(own)) ?? {},
          },
          desired,
          {
            target: crioVersion ?? LATEST_KNOWN,
            registries: inputs.registries,
            otherKeys: inputs.otherKeys,
          },
          parseLayer,
        );
        if (!r.ok) {
          readyReason = "CannotRender";
          errors.push(...r.problems);
        } else {
          errors.push(...r.plan.problems);
          const res = await applyPlan(r.plan, this.#manifest, this.#o.paths, this.#d.fs);
          this.#manifest = res.manifest;
          for (const w of res.written) metrics.filesWritten.inc({ kind: kindOf(w, this.#o.paths) });
          metrics.filesRemoved.inc(res.removed.length);
          if (res.written.length > 0 || res.removed.length > 0) {
            logger.info({ written: res.written, removed: res.removed }, "node files updated");
          }
          this.#omitted = r.plan.omittedKeys
            .map((k) => `${k.key} (defined in ${k.definedIn})`)
            .join(", ");
          if (res.error !== undefined) {
            applyFailed = true;
            readyReason = "WriteFailed";
            errors.push(res.error.message);
            metrics.writeErrors.inc();
          } else {
            this.#applied = { ...r.plan.appliedRevisions };
            if (res.written.length > 0 || res.removed.length > 0 || !this.#ready) {
              metrics.lastApplied.set(this.#d.now().getTime() / 1000);
            }
            this.#ready = true;
            if (r.plan.problems.length > 0) readyReason = "AppliedWithProblems";
          }
        }
      } catch (err) {
        applyFailed = true;
        readyReason = "WriteFailed";
        errors.push((err as Error).message);
        metrics.writeErrors.inc();
      }
    }
    if (errors.length > 0) logger.warn({ problems: errors }, "reconcile problems");

    const enf: Enforcement = enforcement({
      runtime,
      crioVersion,
      config: await this.#d.probe(),
      expectedPolicyPath: this.#o.expectedPolicyPath,
      expectedPolicyDir: this.#o.expectedPolicyDir,
    });
    metrics.enforcing.set(enf.enforcing ? 1 : 0);
    const statusOk = await this.#report(node.data.metadata.uid, runtime, enf, errors, readyReason);
    return !applyFailed && statusOk;
  }

  async #report(
    uid: string,
    runtime: Runtime,
    enf: Enforcement,
    errors: readonly string[],
    readyReason: string,
  ): Promise<boolean> {
    const name = this.#o.nodeName;
    const api = this.#d.status;
    try {
      if (!this.#statusChecked) {
        const existing = await api.read(name);
        const parsed = existing === undefined ? undefined : reportedSchema.safeParse(existing);
        const owned =
          parsed?.success === true &&
          parsed.data.metadata.ownerReferences?.some((r) => r.uid === uid) === true;
        if (!owned) await api.ensure(name, { name, uid });
        if (parsed?.success === true) {
          this.#generation = parsed.data.metadata.generation;
          this.#reported = fromReported(parsed.data.status);
        }
        this.#statusChecked = true;
      }
      const now = this.#d.now().toISOString();
      const ready = readyReason === "Applied";
      const next = nodeStatus(
        {
          runtime,
          enforcing: enf.enforcing,
          enforcingReason: enf.reason,
          appliedRevisions: this.#applied,
          ready: {
            ok: ready,
            reason: readyReason,
            message: ready ? "every file holds the current layer revisions" : errors.join("; "),
          },
          registriesD: {
            complete: this.#omitted === "",
            message:
              this.#omitted === ""
                ? `${REGISTRIES_D_FILE} holds every key the policies need`
                : `left out of ${REGISTRIES_D_FILE} because another file defines them: ${this.#omitted}`,
          },
          lastError: errors.join("; "),
          generation: this.#generation,
        },
        this.#reported,
        now,
      );
      if (sameStatus(next, this.#reported)) return true;
      const withTime: NodeStatus = { ...next, lastUpdateTime: now };
      await api.patchStatus(name, statusPatch(withTime, this.#reported));
      this.#d.metrics.statusWrites.inc();
      this.#reported = withTime;
      return true;
    } catch (err) {
      this.#d.logger.warn({ err }, "cannot write ImagePolicyNodeStatus; will retry");
      this.#statusChecked = this.#statusChecked && this.#reported !== undefined;
      return false;
    }
  }
}

function tryCrioVersion(text: string): CrioVersion | undefined {
  try {
    return parseCrioVersion(text);
  } catch {
    return undefined; // CrioVersionError: reported as "cannot read CRI-O version"
  }
}

function kindOf(p: string, paths: NodePaths): string {
  if (p === paths.clusterJson) return "cluster";
  if (p === paths.manifest) return "manifest";
  if (p === paths.registriesDFile) return "registries.d";
  return "namespace";
}

function fromReported(s: z.infer<typeof reportedSchema>["status"]): NodeStatus | undefined {
  if (s?.runtime === undefined) return undefined;
  return {
    runtime: s.runtime,
    enforcing: s.enforcing ?? false,
    enforcingReason: s.enforcingReason ?? "",
    appliedRevisions: s.appliedRevisions ?? {},
    lastError: s.lastError ?? "",
    ...(s.lastTransitionTime === undefined ? {} : { lastTransitionTime: s.lastTransitionTime }),
    ...(s.lastUpdateTime === undefined ? {} : { lastUpdateTime: s.lastUpdateTime }),
    conditions: (s.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: c.lastTransitionTime,
      ...(c.observedGeneration === undefined ? {} : { observedGeneration: c.observedGeneration }),
    })),
  };
}

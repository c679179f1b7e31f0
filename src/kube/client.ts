// The one typed adapter around @kubernetes/client-node (docs/style.md habit 11). Everything the
// controller and the agent do against the API server goes through KubeClient:
//
// - list / watch of any Resource as plain JSON (an informer's ListWatcher, see informer.ts);
// - apply(obj, fieldManager): server-side apply (Content-Type application/apply-patch+yaml set
//   explicitly: client-node would otherwise send a bare patch as a JSON patch), force=true;
// - patchStatus: a JSON merge patch of the status subresource, optionally guarded by
//   resourceVersion so a status computed from a stale cache fails with 409 instead of winning;
// - delete, Events (events.k8s.io/v1) and Leases (coordination.k8s.io/v1).
//
// Skipping a write when nothing changed is the caller's job: it knows what it wants.

import { request as httpRequest } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { z } from "zod";
import {
  KubeConfigError,
  KubeError,
  ResourceExpiredError,
  describeFailure,
  isNotFound,
  statusOf,
} from "./errors.ts";
import {
  apiVersionOf,
  collectionPath,
  kubeObjectSchema,
  resourceOf,
  type KubeObject,
  type Resource,
} from "./objects.ts";

export type KubeConfigSource =
  { readonly kind: "file"; readonly path: string } | { readonly kind: "in-cluster" };

/** Loads a kubeconfig file, or the in-cluster ServiceAccount configuration. */
export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (source.kind === "file") kc.loadFromFile(source.path);
    else kc.loadFromCluster();
  } catch (cause) {
    throw new KubeConfigError(
      source.kind === "file"
        ? `cannot load kubeconfig ${source.path}: ${(cause as Error).message}`
        : `cannot load the in-cluster configuration: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (kc.getCurrentCluster() === null) {
    throw new KubeConfigError("the kubeconfig has no current cluster");
  }
  return kc;
}

export interface Selector {
  /** Only for namespaced resources; absent: all namespaces. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
}

export interface ListResult {
  readonly items: readonly KubeObject[];
  readonly resourceVersion: string;
}

/** A change, or a bookmark (only a newer resourceVersion to resume from). */
export type WatchEvent =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: KubeObject }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string };

const bookmarkSchema = z.looseObject({
  metadata: z.looseObject({ resourceVersion: z.string() }),
});

/** The two calls an informer makes; KubeClient.listWatcher gives the real one, tests a fake. */
export interface ListWatcher {
  /** A consistent list and the resourceVersion to watch from. */
  list(signal: AbortSignal): Promise<ListResult>;
  /** Watches from `resourceVersion` until the server ends the stream (resolves) or an error
   * (rejects; ResourceExpiredError for 410 Gone). */
  watch(
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export interface ObjectRef {
  readonly name: string;
  readonly namespace?: string | undefined;
}

export interface AppliedObject {
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly resourceVersion: string;
}

const listSchema = z.looseObject({
  metadata: z.looseObject({
    resourceVersion: z.string().optional(),
    continue: z.string().optional(),
  }),
  items: z.array(z.unknown()),
});

const statusSchema = z.looseObject({ code: z.number().optional(), message: z.string().optional() });

const LIST_PAGE = 500;
const REQUEST_TIMEOUT_MS = 60_000;

export class KubeClient {
  readonly config: KubeConfig;
  readonly #core: CoreV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #watch: Watch;

  constructor(config: KubeConfig) {
    this.config = config;
    this.#core = config.makeApiClient(CoreV1Api);
    this.#custom = config.makeApiClient(CustomObjectsApi);
    this.#watch = new Watch(config);
  }

  /** Lists every object (all pages) as plain JSON, each with apiVersion and kind set. */
  async list(
    resource: Resource,
    selector: Selector = {},
    signal?: AbortSignal,
  ): Promise<ListResult> {
    const items: KubeObject[] = [];
    let resourceVersion = "";
    let continueToken: string | undefined;
    do {
      const query = new URLSearchParams({ limit: String(LIST_PAGE) });
      if (selector.labelSelector !== undefined) query.set("labelSelector", selector.labelSelector);
      if (selector.fieldSelector !== undefined) query.set("fieldSelector", selector.fieldSelector);
      if (continueToken !== undefined) query.set("continue", continueToken);
      const path = `${collectionPath(resource, selector.namespace)}?${query.toString()}`;
      const body = await this.#getJson(path, signal);
      const parsed = listSchema.safeParse(body);
      if (!parsed.success) {
        throw new KubeError(`list ${path}: unexpected response`, { cause: parsed.error });
      }
      resourceVersion ||= parsed.data.metadata.resourceVersion ?? "";
      for (const item of parsed.data.items) items.push(asObject(resource, item, `list ${path}`));
      continueToken = parsed.data.metadata.continue || undefined;
    } while (continueToken !== undefined);
    return { items, resourceVersion };
  }

  /** Watches from `resourceVersion` with bookmarks; see ListWatcher.watch. */
  watch(
    resource: Resource,
    selector: Selector,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const path = collectionPath(resource, selector.namespace);
    const query: Record<string, string | boolean> = {
      resourceVersion,
      allowWatchBookmarks: true,
    };
    if (selector.labelSelector !== undefined) query["labelSelector"] = selector.labelSelector;
    if (selector.fieldSelector !== undefined) query["fieldSelector"] = selector.fieldSelector;
    return new Promise<void>((resolve, reject) => {
      let failure: Error | undefined;
      let controller: AbortController | undefined;
      const onAbort = (): void => controller?.abort();
      const finish = (err: unknown): void => {
        signal.removeEventListener("abort", onAbort);
        const e = failure ?? (err === null || err === undefined ? undefined : err);
        if (e === undefined || isTimeout(e)) {
          // The server closed the stream, or client-node's inactivity timer fired: resume.
          resolve();
        } else if (signal.aborted) {
          resolve();
        } else {
          reject(
            e instanceof KubeError
              ? e
              : new KubeError(describeFailure(`watch ${path}`, e), {
                  cause: e,
                  status: statusOf(e),
                }),
          );
        }
      };
      const onLine = (type: string, object: unknown): void => {
        if (failure !== undefined) return;
        if (type === "ERROR") {
          const status = statusSchema.safeParse(object);
          const code = status.success ? status.data.code : undefined;
          const message = status.success ? (status.data.message ?? "") : "";
          failure =
            code === 410
              ? new ResourceExpiredError(`watch ${path}: ${message}`, { status: 410 })
              : new KubeError(`watch ${path}: error event ${code ?? "?"}: ${message}`, {
                  status: code,
                });
          controller?.abort();
          return;
        }
        if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED" && type !== "BOOKMARK") {
          return;
        }
        if (type === "BOOKMARK") {
          const b = bookmarkSchema.safeParse(object);
          if (b.success) onEvent({ type, resourceVersion: b.data.metadata.resourceVersion });
          return;
        }
        const parsed = kubeObjectSchema.safeParse(withDefaults(resource, object));
        if (!parsed.success) {
          failure = new KubeError(`watch ${path}: malformed ${type} object`, {
            cause: parsed.error,
          });
          controller?.abort();
          return;
        }
        onEvent({ type, object: parsed.data });
      };
      if (signal.aborted) {
        resolve();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      this.#watch.watch(path, query, onLine, finish).then(
        (c) => {
          controller = c;
          if (signal.aborted) c.abort();
        },
        (err: unknown) => {
          finish(err);
        },
      );
    });
  }

  listWatcher(resource: Resource, selector: Selector = {}): ListWatcher {
    return {
      list: (signal) => this.list(resource, selector, signal),
      watch: (resourceVersion, onEvent, signal) =>
        this.watch(resource, selector, resourceVersion, onEvent, signal),
    };
  }

  /** Server-side apply of `obj` (apiVersion, kind, metadata.name[, namespace] and the fields this
   * manager owns), with force: the controller is the only writer of what it applies. */
  async apply(obj: KubeObject, fieldManager: string): Promise<AppliedObject> {
    const { name, namespace } = obj.metadata;
    const t = this.#target(obj, { name, namespace }, "apply");
    const options = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
    const result = await this.#call(t.what, async (): Promise<unknown> => {
      if (t.kind === "configmap") {
        const cm = await this.#core.patchNamespacedConfigMap(
          { name, namespace: t.namespace, body: obj, fieldManager, force: true },
          options,
        );
        return { metadata: { name, namespace, resourceVersion: cm.metadata?.resourceVersion } };
      }
      const args = { ...t.base, name, body: obj, fieldManager, force: true };
      return t.namespace === undefined
        ? this.#custom.patchClusterCustomObject(args, options)
        : this.#custom.patchNamespacedCustomObject({ ...args, namespace: t.namespace }, options);
    });
    return appliedFrom(t.resource, result, t.what);
  }

  /** JSON merge patch of `{status}` on the status subresource of a custom resource. With
   * `resourceVersion`, the patch fails with 409 if the object changed since it was read. */
  async patchStatus(
    resource: Resource,
    ref: ObjectRef,
    status: unknown,
    opts: { readonly resourceVersion?: string | undefined } = {},
  ): Promise<AppliedObject> {
    const t = this.#target(resource, ref, "patch status of");
    if (t.kind === "configmap") throw new KubeError(`${t.what}: no status subresource`, {});
    const body = {
      ...(opts.resourceVersion === undefined
        ? {}
        : { metadata: { resourceVersion: opts.resourceVersion } }),
      status,
    };
    const options = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
    const args = { ...t.base, name: ref.name, body };
    const result = await this.#call(t.what, (): Promise<unknown> =>
      t.namespace === undefined
        ? this.#custom.patchClusterCustomObjectStatus(args, options)
        : this.#custom.patchNamespacedCustomObjectStatus(
            { ...args, namespace: t.namespace },
            options,
          ),
    );
    return appliedFrom(t.resource, result, t.what);
  }

  /** Deletes an object; false if it was already gone. */
  async delete(resource: Resource, ref: ObjectRef): Promise<boolean> {
    const t = this.#target(resource, ref, "delete");
    try {
      await this.#call(t.what, async (): Promise<unknown> => {
        if (t.kind === "configmap") {
          return this.#core.deleteNamespacedConfigMap({ name: ref.name, namespace: t.namespace });
        }
        const args = { ...t.base, name: ref.name };
        return t.namespace === undefined
          ? this.#custom.deleteClusterCustomObject(args)
          : this.#custom.deleteNamespacedCustomObject({ ...args, namespace: t.namespace });
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw new KubeError((err as Error).message, { cause: err, status: statusOf(err) });
    }
  }

  /** Reads one object of a group resource (not core) as plain JSON; undefined if absent. */
  async get(resource: Resource, ref: ObjectRef): Promise<KubeObject | undefined> {
    const t = this.#target(resource, ref, "get");
    if (t.kind === "configmap") throw new KubeError(`${t.what}: use an informer`, {});
    try {
      const args = { ...t.base, name: ref.name };
      const result = await this.#call(t.what, (): Promise<unknown> =>
        t.namespace === undefined
          ? this.#custom.getClusterCustomObject(args)
          : this.#custom.getNamespacedCustomObject({ ...args, namespace: t.namespace }),
      );
      return asObject(resource, result, t.what);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new KubeError((err as Error).message, { cause: err, status: statusOf(err) });
    }
  }

  /** Creates an object of a group resource (not core) from plain JSON; 409 if it exists. */
  async create(resource: Resource, obj: KubeObject): Promise<KubeObject> {
    const t = this.#target(resource, obj.metadata, "create");
    if (t.kind === "configmap") throw new KubeError(`${t.what}: use apply`, {});
    const result = await this.#call(t.what, (): Promise<unknown> =>
      t.namespace === undefined
        ? this.#custom.createClusterCustomObject({ ...t.base, body: obj })
        : this.#custom.createNamespacedCustomObject({
            ...t.base,
            namespace: t.namespace,
            body: obj,
          }),
    );
    return asObject(resource, result, t.what);
  }

  /** Replaces an object of a group resource (not core); `metadata.resourceVersion` makes it a
   * compare-and-swap (409 when it changed). */
  async replace(resource: Resource, obj: KubeObject): Promise<KubeObject> {
    const t = this.#target(resource, obj.metadata, "replace");
    if (t.kind === "configmap") throw new KubeError(`${t.what}: use apply`, {});
    const args = { ...t.base, name: obj.metadata.name, body: obj };
    const result = await this.#call(t.what, (): Promise<unknown> =>
      t.namespace === undefined
        ? this.#custom.replaceClusterCustomObject(args)
        : this.#custom.replaceNamespacedCustomObject({ ...args, namespace: t.namespace }),
    );
    return asObject(resource, result, t.what);
  }

  /** Where an object lives: a ConfigMap (CoreV1Api) or a group resource (CustomObjectsApi, which
   * serves any /apis/<group>/<version> path, built-in groups included, as plain JSON). */
  #target(
    resourceOrObject: Resource | KubeObject,
    ref: ObjectRef,
    verb: string,
  ):
    | { kind: "configmap"; what: string; resource: Resource; namespace: string }
    | {
        kind: "group";
        what: string;
        resource: Resource;
        namespace: string | undefined;
        base: { group: string; version: string; plural: string };
      } {
    const resource =
      "metadata" in resourceOrObject ? resourceOf(resourceOrObject) : resourceOrObject;
    const kind = "metadata" in resourceOrObject ? resourceOrObject.kind : resourceOrObject.kind;
    const what = `${verb} ${kind} ${ref.namespace === undefined ? "" : `${ref.namespace}/`}${ref.name}`;
    if (resource === undefined) throw new KubeError(`${what}: unknown resource`, {});
    if (resource.namespaced !== (ref.namespace !== undefined)) {
      throw new KubeError(
        `${what}: ${resource.namespaced ? "namespace required" : "cluster-scoped"}`,
        {},
      );
    }
    if (resource.group === "") {
      if (resource.plural !== "configmaps" || ref.namespace === undefined) {
        throw new KubeError(`${what}: core resource not supported`, {});
      }
      return { kind: "configmap", what, resource, namespace: ref.namespace };
    }
    return {
      kind: "group",
      what,
      resource,
      namespace: ref.namespace,
      base: { group: resource.group, version: resource.version, plural: resource.plural },
    };
  }

  /** Runs one client-node call; anything it throws becomes a KubeError with the HTTP status. */
  async #call(what: string, fn: () => Promise<unknown>): Promise<unknown> {
    try {
      return await fn();
    } catch (cause) {
      throw new KubeError(describeFailure(what, cause), { cause, status: statusOf(cause) });
    }
  }

  async #getJson(path: string, signal: AbortSignal | undefined): Promise<unknown> {
    const cluster = this.config.getCurrentCluster();
    if (cluster === null) throw new KubeConfigError("the kubeconfig has no current cluster");
    const url = new URL(cluster.server + path);
    const options: RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
    await this.config.applyToHTTPSOptions(options);
    const requestFn = url.protocol === "http:" ? httpRequest : httpsRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>(
      (resolve, reject) => {
        const req = requestFn(
          url,
          { ...options, timeout: REQUEST_TIMEOUT_MS, ...(signal === undefined ? {} : { signal }) },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("error", reject);
            res.on("end", () => {
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString("utf8"),
              });
            });
          },
        );
        req.on("timeout", () => req.destroy(new KubeError(`GET ${path}: timeout`, {})));
        req.on("error", reject);
        req.end();
      },
    ).catch((cause: unknown) => {
      throw new KubeError(`GET ${path}: ${(cause as Error).message}`, { cause });
    });
    if (status !== 200) {
      let message = text.slice(0, 500);
      try {
        const s = statusSchema.safeParse(JSON.parse(text));
        if (s.success && s.data.message !== undefined) message = s.data.message;
      } catch {
        // not JSON: keep the text
      }
      const err = `GET ${path}: HTTP ${status}: ${message}`;
      if (status === 410) throw new ResourceExpiredError(err, { status });
      throw new KubeError(err, { status });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (cause) {
      throw new KubeError(`GET ${path}: response is not JSON`, { cause, status });
    }
  }
}

/** List items carry no apiVersion/kind for built-in types: fill them in from the resource. */
function withDefaults(resource: Resource, item: unknown): unknown {
  if (typeof item !== "object" || item === null) return item;
  return { apiVersion: apiVersionOf(resource), kind: resource.kind, ...item };
}

function asObject(resource: Resource, item: unknown, what: string): KubeObject {
  const parsed = kubeObjectSchema.safeParse(withDefaults(resource, item));
  if (!parsed.success) throw new KubeError(`${what}: malformed object`, { cause: parsed.error });
  return parsed.data;
}

function appliedFrom(resource: Resource, result: unknown, what: string): AppliedObject {
  const o = asObject(resource, result, what);
  return {
    name: o.metadata.name,
    namespace: o.metadata.namespace,
    resourceVersion: o.metadata.resourceVersion ?? "",
  };
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === "TimeoutError";
}

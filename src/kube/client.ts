// The one typed adapter around the Kubernetes API (docs/style.md habit 11). Everything the
// controller and the agent do against the API server goes through a KubeApi; KubeClient is the
// real one, on transport.ts (node:https, no client library: docs/scale.md has the numbers):
//
// - list / watch of any Resource as plain JSON (an informer's ListWatcher, see informer.ts);
// - apply(obj, fieldManager): server-side apply, Content-Type application/apply-patch+yaml
//   (a JSON body is YAML), force=true;
// - patch / patchStatus: JSON merge patch (application/merge-patch+json) of an object or of its
//   status subresource, optionally guarded by resourceVersion so a write computed from a stale
//   cache fails with 409 instead of winning;
// - get, create, replace (compare-and-swap on resourceVersion), delete; Events
//   (events.k8s.io/v1) and Leases (coordination.k8s.io/v1) are plain resources.
//
// Skipping a write when nothing changed is the caller's job: it knows what it wants.

import { KubeError, ResourceExpiredError } from "./errors.ts";
import type { KubeConfig } from "./kubeconfig.ts";
import {
  apiVersionOf,
  collectionPath,
  objectPath,
  parseKubeObject,
  resourceOf,
  type KubeObject,
  type ObjectRef,
  type Resource,
} from "./objects.ts";
import { Transport, type ExternalKubeConfig, type TransportResponse } from "./transport.ts";

export { loadKubeConfig, type KubeConfigSource } from "./kubeconfig.ts";
export type { ObjectRef } from "./objects.ts";

export interface Selector {
  /** Only for namespaced resources; absent: all namespaces. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Objects per list page (default 500): smaller pages keep less of a list in memory at once. */
  readonly pageSize?: number;
  /** Parses the JSON text of each list page and watch event (default JSON.parse): the controller
   * decodes node reports without parsing the revisions maps it already holds (reportJson.ts). */
  readonly decode?: (json: string) => unknown;
}

export interface ListResult {
  readonly items: readonly KubeObject[];
  readonly resourceVersion: string;
}

/** A change, or a bookmark (only a newer resourceVersion to resume from). */
export type WatchEvent =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: KubeObject }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string };

/** The two calls an informer makes; KubeClient.listWatcher gives the real one, tests a fake. */
export interface ListWatcher {
  /** A consistent list and the resourceVersion to watch from. With `each`, every item is
   * returned as each(item), applied as its page arrives: a large list (5,000 node reports) is
   * never held whole (docs/scale.md). */
  list(signal: AbortSignal, each?: (object: KubeObject) => KubeObject): Promise<ListResult>;
  /** Watches from `resourceVersion` until the server ends the stream (resolves) or an error
   * (rejects; ResourceExpiredError for 410 Gone). */
  watch(
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export interface AppliedObject {
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly resourceVersion: string;
}

/** What the operator's processes need of the API: the shell boundary. KubeClient is the real
 * one; tests implement it (or the part they use) without a network. */
export interface KubeApi {
  list(
    resource: Resource,
    selector?: Selector,
    signal?: AbortSignal,
    each?: (object: KubeObject) => KubeObject,
  ): Promise<ListResult>;
  watch(
    resource: Resource,
    selector: Selector,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void>;
  listWatcher(resource: Resource, selector?: Selector): ListWatcher;
  apply(obj: KubeObject, fieldManager: string): Promise<AppliedObject>;
  patch(
    resource: Resource,
    ref: ObjectRef,
    body: unknown,
    opts?: { readonly resourceVersion?: string | undefined },
  ): Promise<AppliedObject>;
  patchStatus(
    resource: Resource,
    ref: ObjectRef,
    status: unknown,
    opts?: { readonly resourceVersion?: string | undefined },
  ): Promise<AppliedObject>;
  delete(resource: Resource, ref: ObjectRef): Promise<boolean>;
  get(resource: Resource, ref: ObjectRef): Promise<KubeObject | undefined>;
  create(resource: Resource, obj: KubeObject): Promise<KubeObject>;
  replace(resource: Resource, obj: KubeObject): Promise<KubeObject>;
}

const LIST_PAGE = 500;
/** The server ends a watch after this long (client-go picks 5 to 10 minutes at random). */
const WATCH_SECONDS = 300;
/** A watch that delivered nothing (not even a bookmark) for this long is presumed dead. */
const WATCH_IDLE_MS = (WATCH_SECONDS + 60) * 1000;

const APPLY = "application/apply-patch+yaml";
const MERGE = "application/merge-patch+json";
const JSON_TYPE = "application/json";

export class KubeClient implements KubeApi {
  readonly #t: Transport;

  /** `config`: from loadKubeConfig, or @kubernetes/client-node's KubeConfig (anything with a
   * current cluster and applyToHTTPSOptions). */
  constructor(config: KubeConfig | ExternalKubeConfig) {
    this.#t = new Transport(config);
  }

  /** Lists every object (all pages) as plain JSON, each with apiVersion and kind set, and
   * passed through `each` as its page arrives (the page's JSON is then garbage). */
  async list(
    resource: Resource,
    selector: Selector = {},
    signal?: AbortSignal,
    each: (object: KubeObject) => KubeObject = (o) => o,
  ): Promise<ListResult> {
    const items: KubeObject[] = [];
    let resourceVersion = "";
    let continueToken: string | undefined;
    do {
      const query = new URLSearchParams({ limit: String(selector.pageSize ?? LIST_PAGE) });
      if (selector.labelSelector !== undefined) query.set("labelSelector", selector.labelSelector);
      if (selector.fieldSelector !== undefined) query.set("fieldSelector", selector.fieldSelector);
      if (continueToken !== undefined) query.set("continue", continueToken);
      const path = `${collectionPath(resource, selector.namespace)}?${query.toString()}`;
      const page = await this.#json("GET", path, { signal, decode: selector.decode });
      const body = record(page, `list ${path}`);
      const meta = record(body["metadata"] ?? {}, `list ${path}: metadata`);
      const list = body["items"];
      if (!Array.isArray(list)) throw new KubeError(`list ${path}: no items`, {});
      resourceVersion ||= stringOr(meta["resourceVersion"], "");
      for (const item of list) items.push(each(asObject(resource, item, `list ${path}`)));
      continueToken = stringOr(meta["continue"], "") || undefined;
    } while (continueToken !== undefined);
    return { items, resourceVersion };
  }

  /** Watches from `resourceVersion` with bookmarks; see ListWatcher.watch. */
  async watch(
    resource: Resource,
    selector: Selector,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) return;
    const query = new URLSearchParams({
      watch: "true",
      resourceVersion,
      allowWatchBookmarks: "true",
      timeoutSeconds: String(WATCH_SECONDS),
    });
    if (selector.labelSelector !== undefined) query.set("labelSelector", selector.labelSelector);
    if (selector.fieldSelector !== undefined) query.set("fieldSelector", selector.fieldSelector);
    const path = `${collectionPath(resource, selector.namespace)}?${query.toString()}`;
    const inner = new AbortController();
    const onAbort = (): void => {
      inner.abort();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    let failure: Error | undefined;
    let res: TransportResponse = { status: 200, text: "" };
    try {
      res = await this.#t.stream(
        path,
        (line) => {
          const event = watchEvent(resource, path, line, selector.decode);
          if (event instanceof Error) {
            failure = event;
            inner.abort();
            return;
          }
          if (event !== undefined) onEvent(event);
        },
        inner.signal,
        WATCH_IDLE_MS,
      );
    } catch (err) {
      failure ??= err instanceof KubeError ? err : new KubeError(`watch ${path}`, { cause: err });
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (failure !== undefined) {
      // Stopping is not a failure; an error event, a malformed line or a broken stream is.
      return aborted(signal) ? undefined : Promise.reject(failure);
    }
    if (res.status !== 200) fail(`watch ${path}`, res);
  }

  listWatcher(resource: Resource, selector: Selector = {}): ListWatcher {
    return {
      list: (signal, each) => this.list(resource, selector, signal, each),
      watch: (resourceVersion, onEvent, signal) =>
        this.watch(resource, selector, resourceVersion, onEvent, signal),
    };
  }

  /** Server-side apply of `obj` (apiVersion, kind, metadata.name[, namespace] and the fields this
   * manager owns), with force: the caller is the only writer of what it applies. */
  async apply(obj: KubeObject, fieldManager: string): Promise<AppliedObject> {
    const { resource, ref, what } = this.#target(obj, obj.metadata, "apply");
    const query = new URLSearchParams({ fieldManager, force: "true" });
    const path = `${objectPath(resource, ref)}?${query.toString()}`;
    const body = await this.#json("PATCH", path, {
      body: JSON.stringify(obj),
      contentType: APPLY,
      what,
    });
    return appliedFrom(resource, body, what);
  }

  /** JSON merge patch of an object. With `resourceVersion`, 409 if it changed meanwhile. */
  async patch(
    resource: Resource,
    ref: ObjectRef,
    body: unknown,
    opts: { readonly resourceVersion?: string | undefined } = {},
  ): Promise<AppliedObject> {
    const t = this.#target(resource, ref, "patch");
    return this.#merge(t.resource, objectPath(t.resource, ref), body, opts, t.what);
  }

  /** JSON merge patch of `{status}` on the status subresource. With `resourceVersion`, the
   * patch fails with 409 if the object changed since it was read. */
  async patchStatus(
    resource: Resource,
    ref: ObjectRef,
    status: unknown,
    opts: { readonly resourceVersion?: string | undefined } = {},
  ): Promise<AppliedObject> {
    const t = this.#target(resource, ref, "patch status of");
    const path = `${objectPath(t.resource, ref)}/status`;
    return this.#merge(t.resource, path, { status }, opts, t.what);
  }

  async #merge(
    resource: Resource,
    path: string,
    body: unknown,
    opts: { readonly resourceVersion?: string | undefined },
    what: string,
  ): Promise<AppliedObject> {
    const guarded =
      opts.resourceVersion === undefined
        ? body
        : { ...record(body, what), metadata: { resourceVersion: opts.resourceVersion } };
    const result = await this.#json("PATCH", path, {
      body: JSON.stringify(guarded),
      contentType: MERGE,
      what,
    });
    return appliedFrom(resource, result, what);
  }

  /** Deletes an object; false if it was already gone. */
  async delete(resource: Resource, ref: ObjectRef): Promise<boolean> {
    const t = this.#target(resource, ref, "delete");
    const res = await this.#t.request("DELETE", objectPath(t.resource, ref));
    if (res.status === 404) return false;
    if (res.status < 200 || res.status >= 300) fail(t.what, res);
    return true;
  }

  /** Reads one object as plain JSON; undefined if absent. */
  async get(resource: Resource, ref: ObjectRef): Promise<KubeObject | undefined> {
    const t = this.#target(resource, ref, "get");
    const res = await this.#t.request("GET", objectPath(t.resource, ref));
    if (res.status === 404) return undefined;
    return asObject(t.resource, ok(res, t.what), t.what);
  }

  /** Creates an object from plain JSON; 409 if it exists. */
  async create(resource: Resource, obj: KubeObject): Promise<KubeObject> {
    const t = this.#target(resource, obj.metadata, "create");
    const body = await this.#json(
      "POST",
      collectionPath(t.resource, obj.metadata.namespace ?? undefined),
      { body: JSON.stringify(obj), contentType: JSON_TYPE, what: t.what },
    );
    return asObject(t.resource, body, t.what);
  }

  /** Replaces an object; `metadata.resourceVersion` makes it a compare-and-swap (409 when it
   * changed). */
  async replace(resource: Resource, obj: KubeObject): Promise<KubeObject> {
    const t = this.#target(resource, obj.metadata, "replace");
    const body = await this.#json("PUT", objectPath(t.resource, obj.metadata), {
      body: JSON.stringify(obj),
      contentType: JSON_TYPE,
      what: t.what,
    });
    return asObject(t.resource, body, t.what);
  }

  /** Closes idle connections. */
  close(): void {
    this.#t.close();
  }

  #target(
    resourceOrObject: Resource | KubeObject,
    ref: ObjectRef,
    verb: string,
  ): { resource: Resource; ref: ObjectRef; what: string } {
    const resource =
      "metadata" in resourceOrObject ? resourceOf(resourceOrObject) : resourceOrObject;
    const kind = resourceOrObject.kind;
    const what = `${verb} ${kind} ${ref.namespace === undefined ? "" : `${ref.namespace}/`}${ref.name}`;
    if (resource === undefined) throw new KubeError(`${what}: unknown resource`, {});
    if (resource.namespaced !== (ref.namespace !== undefined)) {
      throw new KubeError(
        `${what}: ${resource.namespaced ? "namespace required" : "cluster-scoped"}`,
        {},
      );
    }
    return { resource, ref: { name: ref.name, namespace: ref.namespace }, what };
  }

  async #json(
    method: string,
    path: string,
    init: {
      readonly body?: string;
      readonly contentType?: string;
      readonly signal?: AbortSignal | undefined;
      readonly what?: string;
      readonly decode?: ((json: string) => unknown) | undefined;
    },
  ): Promise<unknown> {
    const what = init.what ?? `${method} ${path}`;
    const res = await this.#t.request(method, path, init);
    return ok(res, what, init.decode);
  }
}

/** The parsed body of a 2xx answer, else a KubeError with the status and the server's message
 * (ResourceExpiredError for 410). */
function ok(
  res: TransportResponse,
  what: string,
  decode: (json: string) => unknown = JSON.parse,
): unknown {
  if (res.status < 200 || res.status >= 300) fail(what, res);
  try {
    const body: unknown = decode(res.text);
    return body;
  } catch (cause) {
    throw new KubeError(`${what}: response is not JSON`, { cause, status: res.status });
  }
}

/** Read through a call: TypeScript narrows `signal.aborted` after one check, but it changes. */
function aborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** Throws the KubeError of a failed answer: its status and the server's message. */
function fail(what: string, res: TransportResponse): never {
  let message = res.text.slice(0, 500);
  try {
    const status: unknown = JSON.parse(res.text);
    const m: unknown =
      typeof status === "object" && status !== null ? Reflect.get(status, "message") : "";
    if (typeof m === "string" && m !== "") message = m;
  } catch {
    // not JSON: keep the text
  }
  const text = `${what}: HTTP ${res.status}: ${message}`;
  if (res.status === 410) throw new ResourceExpiredError(text, { status: 410 });
  throw new KubeError(text, { status: res.status });
}

/** One line of a watch stream: an event, nothing (an unknown type), or the error it reports. */
function watchEvent(
  resource: Resource,
  path: string,
  line: string,
  decode: (json: string) => unknown = JSON.parse,
): WatchEvent | Error | undefined {
  let value: unknown;
  try {
    value = decode(line);
  } catch (cause) {
    return new KubeError(`watch ${path}: a line is not JSON`, { cause });
  }
  if (typeof value !== "object" || value === null) {
    return new KubeError(`watch ${path}: an event is not an object`, {});
  }
  const type: unknown = Reflect.get(value, "type");
  const object: unknown = Reflect.get(value, "object");
  if (type === "ERROR") {
    const code: unknown =
      typeof object === "object" && object !== null ? Reflect.get(object, "code") : undefined;
    const message: unknown =
      typeof object === "object" && object !== null ? Reflect.get(object, "message") : undefined;
    const text = `watch ${path}: error event ${typeof code === "number" ? code : "?"}: ${typeof message === "string" ? message : ""}`;
    return code === 410
      ? new ResourceExpiredError(text, { status: 410 })
      : new KubeError(text, { status: typeof code === "number" ? code : undefined });
  }
  if (type === "BOOKMARK") {
    const meta: unknown =
      typeof object === "object" && object !== null ? Reflect.get(object, "metadata") : undefined;
    const rv: unknown =
      typeof meta === "object" && meta !== null ? Reflect.get(meta, "resourceVersion") : undefined;
    return typeof rv === "string" ? { type, resourceVersion: rv } : undefined;
  }
  if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") return undefined;
  try {
    return { type, object: asObject(resource, object, `watch ${path}: ${type}`) };
  } catch (err) {
    return err instanceof Error ? err : new KubeError(String(err), {});
  }
}

function record(v: unknown, what: string): Readonly<Record<string, unknown>> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new KubeError(`${what}: expected a JSON object`, {});
  }
  return Object.fromEntries(Object.entries(v));
}

function stringOr(v: unknown, dflt: string): string {
  return typeof v === "string" ? v : dflt;
}

/** A KubeObject from an answer; list items of built-in types lack apiVersion and kind. */
function asObject(resource: Resource, item: unknown, what: string): KubeObject {
  try {
    return parseKubeObject(item, { apiVersion: apiVersionOf(resource), kind: resource.kind });
  } catch (cause) {
    throw new KubeError(`${what}: malformed object: ${(cause as Error).message}`, { cause });
  }
}

function appliedFrom(resource: Resource, result: unknown, what: string): AppliedObject {
  const o = asObject(resource, result, what);
  return {
    name: o.metadata.name,
    namespace: o.metadata.namespace,
    resourceVersion: o.metadata.resourceVersion ?? "",
  };
}

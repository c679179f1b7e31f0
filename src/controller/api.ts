// What the controller needs of the API server beyond its informers: the shell boundary
// (docs/style.md habit 9). KubeClient and EventRecorder (src/kube) are the real ones, passed in by
// main.ts; the unit tests and the benchmark implement these interfaces with fakes that record
// instead of sending, so nothing depends on the concrete client.

import type {
  AppliedObject,
  EventSink,
  InformerHandler,
  KubeObject,
  Resource,
} from "../kube/index.ts";

/** An object's address: name, and namespace for namespaced resources. */
export interface ObjectAddress {
  readonly name: string;
  readonly namespace?: string | undefined;
}

export interface ControllerApi {
  /** Server-side apply (force) of a layer ConfigMap with the controller's field manager. */
  apply(obj: KubeObject, fieldManager: string): Promise<AppliedObject>;
  /** Merge patch of a policy object's status; 409 when `resourceVersion` is stale. */
  patchStatus(
    resource: Resource,
    ref: ObjectAddress,
    status: unknown,
    opts: { readonly resourceVersion?: string | undefined },
  ): Promise<AppliedObject>;
  /** Deletes a layer ConfigMap; false when it was gone already. */
  delete(resource: Resource, ref: ObjectAddress): Promise<boolean>;
}

/** Where the controller records Events (kube/events.ts; best effort: never throws). */
export type { EventSink };

/** What the controller reads of one resource: a synced cache and its events (kube/informer.ts). */
export interface ControllerInformer {
  onEvent(handler: InformerHandler): () => void;
  start(): void;
  stop(): Promise<void>;
  readonly synced: boolean;
  waitForSync(): Promise<void>;
  list(): KubeObject[];
  get(name: string, namespace?: string): KubeObject | undefined;
}

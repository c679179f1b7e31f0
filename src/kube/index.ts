// The Kubernetes adapter of the controller and the agent: its whole public face. Import from
// here, never from the files behind it.
//
//   const client = new KubeClient(loadKubeConfig({ kind: "file", path }));   // or in-cluster
//
//   // Informer: list + watch + cache; resumes, re-lists on 410, retries errors with backoff.
//   const cms = new Informer({
//     name: "layers",
//     source: client.listWatcher(Resources.configMaps, { namespace, labelSelector }),
//     logger,
//     transform: (o) => o,          // optional: what the cache keeps of each object
//   });
//   cms.onEvent((e) => queue.add("all"));
//   cms.start(); await cms.waitForSync(); cms.list(); cms.get(name, namespace);
//
//   // Writes (skip unchanged writes yourself):
//   await client.apply(obj, "field-manager");                  // server-side apply, force
//   await client.patchStatus(Resources.imagePolicies, { name, namespace }, status,
//     { resourceVersion });                                    // merge patch, 409 if stale
//   await client.delete(Resources.configMaps, { name, namespace });  // false if already gone
//   await new EventRecorder({ client, controller, instance, clock, logger }).record(...);
//
//   // Leader election on a Lease:
//   const elector = new LeaderElector({ identity, store: kubeLeaseStore(client, ns, name),
//     clock: systemClock, delay: systemDelay, logger });
//   await elector.run(signal, { onStartedLeading(s) {...}, onStoppedLeading() {...} });
//
//   // Keyed work queue with per-key dedupe and capped exponential backoff:
//   const q = new WorkQueue<string>(); q.add(k); const k = await q.get(); ...; q.forget(k);
//   q.done(k);   // or q.addRateLimited(k) on failure, then q.done(k)
//
// Code that depends on the API takes a KubeApi (or the Pick of it it uses), so tests pass fakes.

export {
  KubeClient,
  type AppliedObject,
  type KubeApi,
  type ListResult,
  type ListWatcher,
  type Selector,
  type WatchEvent,
} from "./client.ts";
export {
  AbortedError,
  systemClock,
  systemDelay,
  systemSchedule,
  type Clock,
  type Delay,
  type Schedule,
} from "./clock.ts";
export {
  KubeConfigError,
  KubeError,
  ResourceExpiredError,
  isConflict,
  isGone,
  isNotFound,
  statusOf,
} from "./errors.ts";
export {
  EventRecorder,
  type EventRecorderOptions,
  type EventSink,
  type EventTarget,
} from "./events.ts";
export {
  Informer,
  type InformerEvent,
  type InformerHandler,
  type InformerOptions,
} from "./informer.ts";
export {
  KubeConfig,
  loadKubeConfig,
  type Credentials,
  type KubeConfigSource,
  type TlsSettings,
} from "./kubeconfig.ts";
export { type LogFn, type Logger } from "./log.ts";
export {
  LeaderElectionConfigError,
  LeaderElector,
  kubeLeaseStore,
  microTime,
  type LeaderCallbacks,
  type LeaderElectorOptions,
  type LeaseRecord,
  type LeaseStore,
  type StoredLease,
} from "./leaderElection.ts";
export {
  ObjectShapeError,
  Resources,
  apiVersionOf,
  collectionPath,
  objectKey,
  objectPath,
  parseKubeObject,
  resourceOf,
  type KubeObject,
  type ObjectMeta,
  type ObjectRef,
  type Resource,
} from "./objects.ts";
export { type ExternalKubeConfig } from "./transport.ts";
export { WorkQueue, type WorkQueueOptions } from "./workQueue.ts";

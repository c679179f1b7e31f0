// The refusal explainer as the controller runs it: its Event stream, record store and inputs
// built from the controller's own client and informers (src/controller/main.ts calls this).

import type { Registry } from "prom-client";
import type { Clock, Delay, EventSink, KubeClient, KubeObject } from "../kube/index.ts";
import { RefusalExplainer, type ExplainerLogger, type RecordStore } from "./explainer.ts";
import { REFUSAL_EVENT_SELECTOR } from "./parse.ts";
import { CORE_EVENTS, IMAGE_PULL_REFUSALS } from "./record.ts";

/** ImagePullRefusal writes through KubeClient. */
export function kubeRecordStore(client: KubeClient): RecordStore {
  return {
    get: (namespace, name) => client.get(IMAGE_PULL_REFUSALS, { namespace, name }),
    create: (obj) => client.create(IMAGE_PULL_REFUSALS, obj),
    replace: (obj) => client.replace(IMAGE_PULL_REFUSALS, obj),
    patchStatus: async (namespace, name, status) => {
      await client.patchStatus(IMAGE_PULL_REFUSALS, { namespace, name }, status);
    },
  };
}

export interface ControllerRefusalsOptions {
  readonly client: KubeClient;
  /** The operator namespace (where the layer ConfigMaps are). */
  readonly namespace: string;
  /** The controller's caches (src/controller/api.ts ControllerInformer): only lookups. */
  readonly layers: { get(name: string, namespace?: string): KubeObject | undefined };
  readonly nodeStatuses: { get(name: string, namespace?: string): KubeObject | undefined };
  readonly events: EventSink;
  readonly clock: Clock;
  readonly delay: Delay;
  readonly logger: ExplainerLogger;
  readonly registry: Registry;
}

export function controllerRefusalExplainer(o: ControllerRefusalsOptions): RefusalExplainer {
  return new RefusalExplainer({
    events: o.client.listWatcher(CORE_EVENTS, { fieldSelector: REFUSAL_EVENT_SELECTOR }),
    layerConfigMap: (name) => o.layers.get(name, o.namespace),
    nodeStatus: (node) => o.nodeStatuses.get(node),
    records: kubeRecordStore(o.client),
    eventSink: o.events,
    clock: o.clock,
    delay: o.delay,
    logger: o.logger,
    registry: o.registry,
  });
}

// An Event recorder (events.k8s.io/v1). Recording is best effort: a failure is logged, never
// thrown, so an Event can never block a reconcile.

import { randomBytes } from "node:crypto";
import type { Logger } from "./log.ts";
import type { KubeApi } from "./client.ts";
import type { Clock } from "./clock.ts";
import { microTime } from "./leaderElection.ts";
import { Resources } from "./objects.ts";

export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly uid?: string | undefined;
}

/** Where Events are recorded, best effort (never throws): what EventRecorder implements, and what
 * the controller and the refusal explainer depend on, so tests give them a fake. */
export interface EventSink {
  record(
    regarding: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    action: string,
    note: string,
  ): Promise<void>;
}

export interface EventRecorderOptions {
  readonly client: Pick<KubeApi, "create">;
  /** reportingController, e.g. "imagepolicy.dev/controller". */
  readonly controller: string;
  /** reportingInstance, e.g. the pod name. */
  readonly instance: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Namespace for Events about cluster-scoped objects (default "default", as kubectl expects). */
  readonly clusterScopedNamespace?: string;
}

export class EventRecorder implements EventSink {
  readonly #options: EventRecorderOptions;

  constructor(options: EventRecorderOptions) {
    this.#options = options;
  }

  async record(
    regarding: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    action: string,
    note: string,
  ): Promise<void> {
    const o = this.#options;
    const namespace = regarding.namespace ?? o.clusterScopedNamespace ?? "default";
    const suffix = randomBytes(5).toString("hex");
    try {
      await o.client.create(Resources.events, {
        apiVersion: "events.k8s.io/v1",
        kind: "Event",
        metadata: { name: `${regarding.name.slice(0, 240)}.${suffix}`, namespace },
        eventTime: microTime(o.clock.now()),
        reportingController: o.controller,
        reportingInstance: o.instance.slice(0, 128),
        action,
        reason,
        type,
        note: note.length > 1024 ? `${note.slice(0, 1021)}...` : note,
        regarding: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          name: regarding.name,
          ...(regarding.namespace === undefined ? {} : { namespace: regarding.namespace }),
          ...(regarding.uid === undefined ? {} : { uid: regarding.uid }),
        },
      });
    } catch (err) {
      o.logger.warn({ err, reason, regarding }, "cannot record an Event");
    }
  }
}

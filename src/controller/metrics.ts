// The controller's Prometheus metrics, in a registry of their own (no global registry).

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** What the policies gauge counts: the Ready condition of every policy object the controller's
 * caches hold, read when Prometheus scrapes (no bookkeeping on the reconcile path). */
export interface PolicyReadiness {
  readonly kind: string;
  /** "True", "False", "Unknown", or "" while the object has no Ready condition yet. */
  readonly ready: string;
  readonly reason: string;
}

export class ControllerMetrics {
  readonly registry = new Registry();
  #policies: () => Iterable<PolicyReadiness> = () => [];
  readonly reconciles = new Counter({
    name: "imagepolicy_controller_reconcile_total",
    help: "Reconciles by key kind (layers, rollout, status) and result (success, error).",
    labelNames: ["kind", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "imagepolicy_controller_reconcile_errors_total",
    help: "Failed reconciles by key kind; each is retried with backoff.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: "imagepolicy_controller_reconcile_duration_seconds",
    help: "Duration of one reconcile by key kind.",
    labelNames: ["kind"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly layersPublished = new Counter({
    name: "imagepolicy_controller_layers_published_total",
    help: "Layer ConfigMaps written because their bytes changed, by layer (cluster, namespace).",
    labelNames: ["layer"] as const,
    registers: [this.registry],
  });
  readonly layersDeleted = new Counter({
    name: "imagepolicy_controller_layers_deleted_total",
    help: "Namespace layer ConfigMaps deleted because no accepted ImagePolicy is left.",
    registers: [this.registry],
  });
  readonly objectsRefused = new Gauge({
    name: "imagepolicy_controller_objects_refused",
    help: "Policy objects whose current generation is refused (their last accepted form stays).",
    registers: [this.registry],
  });
  readonly layersUnpublished = new Gauge({
    name: "imagepolicy_controller_layers_unpublished",
    help: "Layers whose planned revision could not be published (too large, or refused); retried.",
    registers: [this.registry],
  });
  readonly secretsWatched = new Gauge({
    name: "imagepolicy_controller_secrets_watched",
    help: "Secrets the controller watches: only those that policies reference.",
    registers: [this.registry],
  });
  readonly statusWrites = new Counter({
    name: "imagepolicy_controller_status_writes_total",
    help: "Status patches of policy objects (only when the status changed).",
    registers: [this.registry],
  });
  readonly rolloutGroups = new Gauge({
    name: "imagepolicy_controller_report_maps",
    help: "Distinct appliedRevisions maps the node reports hold (nodes that report the same share one).",
    registers: [this.registry],
  });
  readonly layerBytes = new Gauge({
    name: "imagepolicy_controller_layer_bytes",
    help: "Size of the planned layer.json: the cluster layer, and the largest namespace layer.",
    labelNames: ["layer"] as const,
    registers: [this.registry],
  });
  readonly layerLimitBytes = new Gauge({
    name: "imagepolicy_controller_layer_limit_bytes",
    help: "The most a layer.json may hold before the controller refuses to publish it (a ConfigMap's limit).",
    registers: [this.registry],
  });
  readonly policies = new Gauge({
    name: "imagepolicy_controller_policies",
    help: "Policy objects by kind and by the status and reason of their Ready condition.",
    labelNames: ["kind", "ready", "reason"] as const,
    registers: [this.registry],
    collect: () => {
      const counts = new Map<string, { labels: PolicyReadiness; n: number }>();
      for (const p of this.#policies()) {
        const key = `${p.kind}\0${p.ready}\0${p.reason}`;
        const c = counts.get(key) ?? { labels: p, n: 0 };
        c.n += 1;
        counts.set(key, c);
      }
      this.policies.reset();
      for (const { labels, n } of counts.values()) {
        this.policies.set({ kind: labels.kind, ready: labels.ready, reason: labels.reason }, n);
      }
    },
  });
  readonly isLeader = new Gauge({
    name: "imagepolicy_controller_is_leader",
    help: "1 while this replica holds the leader Lease, else 0.",
    registers: [this.registry],
  });

  /** Where the policies gauge reads the objects from when scraped. */
  countPolicies(source: () => Iterable<PolicyReadiness>): void {
    this.#policies = source;
  }
}

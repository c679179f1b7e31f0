// The agent's Prometheus metrics, in a registry of their own (no global registry).

import { Counter, Gauge, Registry } from "prom-client";

export class AgentMetrics {
  readonly registry = new Registry();
  readonly filesWritten = new Counter({
    name: "imagepolicy_agent_files_written_total",
    help: "Policy, registries.d and manifest files written (bytes changed), by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly filesRemoved = new Counter({
    name: "imagepolicy_agent_files_removed_total",
    help: "Namespace policy files removed because their layer disappeared.",
    registers: [this.registry],
  });
  readonly writeErrors = new Counter({
    name: "imagepolicy_agent_write_errors_total",
    help: "Failed applications of the layers to the node's files.",
    registers: [this.registry],
  });
  readonly lastApplied = new Gauge({
    name: "imagepolicy_agent_last_applied_timestamp_seconds",
    help: "When the node's files last reached the current layer revisions.",
    registers: [this.registry],
  });
  readonly enforcing = new Gauge({
    name: "imagepolicy_agent_enforcing",
    help: "1 when CRI-O on this node reads the files the agent writes, else 0.",
    registers: [this.registry],
  });
  readonly statusWrites = new Counter({
    name: "imagepolicy_agent_status_writes_total",
    help: "Writes of this node's ImagePolicyNodeStatus.",
    registers: [this.registry],
  });
}

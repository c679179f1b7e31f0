// The agent's Prometheus metrics, in a registry of its own, in the text exposition format
// (version 0.0.4). Written here rather than with prom-client: the agent runs on every node and
// these few counters are not worth the library's resident memory (docs/scale.md).

type Labels = Readonly<Record<string, string>>;

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge";
  samples(): readonly (readonly [Labels, number])[];
}

export class MetricsRegistry {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics: Metric[] = [];

  register<M extends Metric>(m: M): M {
    this.#metrics.push(m);
    return m;
  }

  metrics(): Promise<string> {
    const lines: string[] = [];
    for (const m of this.#metrics) {
      lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
      for (const [labels, value] of m.samples()) {
        const l = Object.entries(labels)
          .map(
            ([k, v]) =>
              `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`,
          )
          .join(",");
        lines.push(`${m.name}${l === "" ? "" : `{${l}}`} ${String(value)}`);
      }
    }
    return Promise.resolve(`${lines.join("\n")}\n`);
  }
}

export class Counter implements Metric {
  readonly type = "counter";
  readonly name: string;
  readonly help: string;
  readonly #values = new Map<string, [Labels, number]>();

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  inc(labelsOrBy?: Labels | number, by = 1): void {
    const labels = typeof labelsOrBy === "object" ? labelsOrBy : {};
    const amount = typeof labelsOrBy === "number" ? labelsOrBy : by;
    const key = JSON.stringify(Object.entries(labels).sort());
    const v = this.#values.get(key);
    this.#values.set(key, [labels, (v?.[1] ?? 0) + amount]);
  }

  samples(): readonly (readonly [Labels, number])[] {
    return this.#values.size === 0 ? [[{}, 0]] : [...this.#values.values()];
  }
}

export class Gauge implements Metric {
  readonly type = "gauge";
  readonly name: string;
  readonly help: string;
  #value = 0;

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  set(v: number): void {
    this.#value = v;
  }

  samples(): readonly (readonly [Labels, number])[] {
    return [[{}, this.#value]];
  }
}

export class AgentMetrics {
  readonly registry = new MetricsRegistry();
  readonly filesWritten = this.registry.register(
    new Counter(
      "imagepolicy_agent_files_written_total",
      "Policy, registries.d, manifest and layer files written, by kind.",
    ),
  );
  readonly bytesWritten = this.registry.register(
    new Counter("imagepolicy_agent_bytes_written_total", "Bytes written to the node's files."),
  );
  readonly filesRemoved = this.registry.register(
    new Counter(
      "imagepolicy_agent_files_removed_total",
      "Namespace policy files removed because their layer disappeared, and old layer files.",
    ),
  );
  readonly writeErrors = this.registry.register(
    new Counter(
      "imagepolicy_agent_write_errors_total",
      "Failed applications of the layers to the node's files.",
    ),
  );
  readonly lastApplied = this.registry.register(
    new Gauge(
      "imagepolicy_agent_last_applied_timestamp_seconds",
      "When the node's files last reached the current layer revisions.",
    ),
  );
  readonly enforcing = this.registry.register(
    new Gauge(
      "imagepolicy_agent_enforcing",
      "1 when CRI-O on this node reads the files the agent writes, else 0.",
    ),
  );
  readonly statusWrites = this.registry.register(
    new Gauge(
      "imagepolicy_agent_status_writes",
      "Writes of this node's ImagePolicyNodeStatus by this process.",
    ),
  );
}

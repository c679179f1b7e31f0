// The floor of the propagation benchmark (hack/bench-propagation --floor): a process that does
// only what any agent must to get a layer onto its node. It watches the layer ConfigMaps as the
// agent does (the same transport, informer and trimming) and writes each layer's text, as
// received, to <root>/floor/<ConfigMap name> the way the agent writes a file (fsync, rename). No
// render, no manifest, no status. N of these on the machine's cores say how close to the raw
// watch any N agents can get there; the agent's own figures are read against them.
//
// Usage: node bench/floorNode.ts --kubeconfig=FILE --root=DIR --namespace=NS (of the layers)

import { mkdirSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { trimLayerConfigMap } from "../src/agent/layers.ts";
import { jsonLogger } from "../src/agent/log.ts";
import { atomicWriteSync } from "../src/atomicWrite.ts";
import { Informer, KubeClient, loadKubeConfig, Resources } from "../src/kube/index.ts";
import { LAYER_KEY, LAYER_SELECTOR } from "../src/layerConfigMap.ts";

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    root: { type: "string" },
    namespace: { type: "string" },
  },
  strict: true,
});
// The namespace comes as an argument: importing bench/world.ts for it loaded the fixture's
// generator and the compiler into every floor process.
if (
  values.kubeconfig === undefined ||
  values.root === undefined ||
  values.namespace === undefined
) {
  process.stderr.write("usage: floorNode.ts --kubeconfig=FILE --root=DIR --namespace=NS\n");
  process.exit(2);
}
const dir = path.join(values.root, "floor");
mkdirSync(dir, { recursive: true });
const logger = jsonLogger({
  level: "warn",
  base: { component: "floor" },
  write: (line) => process.stdout.write(line),
  now: Date.now,
});
const client = new KubeClient(
  loadKubeConfig({ kind: "file", path: values.kubeconfig }, process.env),
);
const layers = new Informer({
  name: "floor layers",
  source: client.listWatcher(Resources.configMaps, {
    namespace: values.namespace,
    labelSelector: LAYER_SELECTOR,
    pageSize: 20,
  }),
  logger,
  transform: trimLayerConfigMap,
});
layers.onEvent((e) => {
  const data: unknown = e.object["data"];
  const text =
    typeof data === "object" && data !== null
      ? (Reflect.get(data, LAYER_KEY) as unknown)
      : undefined;
  if (e.type === "deleted" || typeof text !== "string") return;
  atomicWriteSync(path.join(dir, e.object.metadata.name), text);
});
layers.start();
process.on("SIGTERM", () => {
  void layers.stop().then(() => process.exit(0));
});

// `imagepolicy explain --live --image REF [-n NS] [--node NODE]` (and `kubectl imagepolicy
// explain ...`, bin/kubectl-imagepolicy): what is in force in the cluster, not what files say.
// Reads the published layer ConfigMaps (the policies as the controller accepted them, exactly
// what every agent combines) and, with --node, that node's ImagePolicyNodeStatus: its CRI-O
// version (a CRI-O older than 1.27.1 reads only cluster.json) and the revisions of the files it
// holds, compared with the published ones. Keys are shown as fingerprints only.

import os from "node:os";
import path from "node:path";
import { describeRef } from "../api/types.ts";
import { describeAcceptance, explain, type LayerDecision } from "../compiler/explain.ts";
import { formatCrioVersion } from "../compiler/crioVersion.ts";
import { parseImage } from "../compiler/scopes.ts";
import { type KubeApi, KubeClient, loadKubeConfig, Resources } from "../kube/index.ts";
import { layerConfigMapName } from "../layerConfigMap.ts";
import { nodeReport } from "../refusals/explainer.ts";
import { nodeNotes } from "../refusals/explainRefusal.ts";
import { readPublishedLayer } from "../refusals/layers.ts";
import type { Io } from "./io.ts";

export interface LiveExplainOptions {
  readonly image: string;
  readonly namespace?: string;
  readonly node?: string;
  /** Where the operator runs (its layer ConfigMaps). */
  readonly operatorNamespace: string;
  readonly kubeconfig?: string;
}

/** --kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config (as kubectl). */
export function kubeconfigPath(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string {
  if (flag !== undefined) return flag;
  const first = env["KUBECONFIG"]?.split(path.delimiter).find((p) => p !== "");
  return first ?? path.join(env["HOME"] ?? os.homedir(), ".kube", "config");
}

const scopeName = (s: string): string => (s === "" ? "*" : s);

function printLayer(io: Io, title: string, d: LayerDecision | null, image: string): void {
  io.out(`${title}:`);
  if (d === null) {
    io.out("  no scope matches: adds nothing");
    return;
  }
  io.out(`  deciding scope: ${scopeName(d.scope)}`);
  io.out(`  from: ${d.sources.map(describeRef).join(", ")}`);
  io.out("  accepts (all must pass):");
  for (const a of d.accepts) io.out(`    ${describeAcceptance(a, image)}`);
}

export async function liveExplainCommand(
  o: LiveExplainOptions,
  io: Io,
  client: Pick<KubeApi, "get"> = new KubeClient(
    loadKubeConfig({ kind: "file", path: kubeconfigPath(o.kubeconfig, process.env) }),
  ),
): Promise<number> {
  const image = parseImage(o.image);
  if (!image.ok) {
    io.err(`error: --image ${JSON.stringify(o.image)}: ${image.reason}`);
    return 2;
  }
  const get = (name: string) =>
    client.get(Resources.configMaps, { namespace: o.operatorNamespace, name });
  const clusterCm = await get(layerConfigMapName(undefined));
  if (clusterCm === undefined) {
    io.err(
      `error: no ConfigMap ${layerConfigMapName(undefined)} in ${o.operatorNamespace}: is the controller running there (--operator-namespace)?`,
    );
    return 1;
  }
  const cluster = readPublishedLayer(clusterCm, undefined);
  const nsCm = o.namespace === undefined ? undefined : await get(layerConfigMapName(o.namespace));
  const namespace =
    nsCm === undefined || o.namespace === undefined
      ? undefined
      : readPublishedLayer(nsCm, o.namespace);
  const node =
    o.node === undefined
      ? undefined
      : nodeReport(o.node, await client.get(Resources.imagePolicyNodeStatuses, { name: o.node }));
  const { notes, usesNamespace } =
    o.namespace === undefined
      ? { notes: [], usesNamespace: false }
      : o.node === undefined
        ? { notes: [], usesNamespace: namespace !== undefined }
        : nodeNotes(o.namespace, cluster, namespace, node, o.node);
  if (o.namespace === undefined && node !== undefined && node.enforcing === false) {
    notes.push(`Node ${node.name} reports enforcing=false: its CRI-O does not read these files.`);
  }
  const e = explain(image.reference, cluster.index, usesNamespace ? namespace?.index : undefined);
  io.out(`image: ${e.image}`);
  io.out(`lookup order: ${e.chain.map(scopeName).join(" -> ")}`);
  io.out(
    `published revisions: cluster ${cluster.revision}${namespace === undefined ? "" : `, ${o.namespace ?? ""} ${namespace.revision}`}`,
  );
  if (o.node !== undefined) {
    io.out(
      node === undefined
        ? `node ${o.node}: no ImagePolicyNodeStatus`
        : `node ${node.name}: CRI-O ${node.crioVersion === undefined ? "unknown" : formatCrioVersion(node.crioVersion)}, enforcing ${String(node.enforcing ?? "unknown")}, files ${
            Object.entries(node.appliedRevisions)
              .map(([f, r]) => `${f}=${r}`)
              .join(" ") || "none"
          }`,
    );
  }
  printLayer(io, "cluster layer", e.cluster, e.image);
  if (o.namespace !== undefined) {
    printLayer(io, `namespace layer (${o.namespace})`, usesNamespace ? e.namespace : null, e.image);
  }
  io.out(`file CRI-O reads: ${e.file}`);
  io.out(
    `  deciding scope: ${e.fileScope === null ? "none (default: accept)" : scopeName(e.fileScope)}`,
  );
  io.out("  accepts (all must pass):");
  for (const a of e.accepts) io.out(`    ${describeAcceptance(a, e.image)}`);
  for (const n of notes) io.out(`note: ${n}`);
  return 0;
}

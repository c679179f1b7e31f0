// `helm install` of charts/imagepolicy-operator on a real API server (helm from
// hack/tools/helm.sh): the objects it creates are, as the API server stores them, the objects
// `kubectl apply -k config/default` creates, apart from Helm's own ownership metadata (the label
// app.kubernetes.io/managed-by=Helm, the meta.helm.sh/release-* annotations) and the CRDs'
// helm.sh/resource-policy=keep (docs/operate.md, "Helm"). Then, installed into another namespace,
// the real controller and agent run with the ServiceAccounts, RBAC and admission policy the chart
// created there, and an upgrade changes what its values say.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { z } from "zod";
import { isJsonObject, toJson, type Json, type JsonObject } from "../../hack/chart/json.ts";
import { CHART_DIR } from "../../hack/chart/render.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startOperatorCluster, type OperatorCluster } from "../support/operatorCluster.ts";
import { runToolOk, toolBin } from "../support/tools.ts";
import { waitFor } from "../support/waitFor.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CHART = path.join(ROOT, CHART_DIR);
const RELEASE = "imagepolicy-operator";
/** Helm's release record lives here; the chart creates the operator namespace itself. */
const RELEASE_NS = "default";
const NS = "imagepolicy-system";

let dir: string;
let cp: ControlPlane;
let helm: string;
let manifest: string;
let cluster: OperatorCluster | undefined;

const listSchema = z.looseObject({ items: z.array(z.unknown()) });

async function kubectl(args: readonly string[], stdin?: string): Promise<string> {
  const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function helmCmd(args: readonly string[]): Promise<string> {
  return runToolOk(helm, [...args, "--kubeconfig", cp.kubeconfigPath], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(dir, "helm/cache"),
      HELM_CONFIG_HOME: path.join(dir, "helm/config"),
      HELM_DATA_HOME: path.join(dir, "helm/data"),
    },
  });
}

const HELM_LABELS = new Map([["app.kubernetes.io/managed-by", "Helm"]]);
const HELM_ANNOTATIONS = new Map([
  ["meta.helm.sh/release-name", RELEASE],
  ["meta.helm.sh/release-namespace", RELEASE_NS],
]);
/** Written by the API server or controllers, different from one creation to the next. */
const VOLATILE_METADATA = [
  "uid",
  "resourceVersion",
  "creationTimestamp",
  "generation",
  "managedFields",
];
const VOLATILE_ANNOTATIONS = ["deployment.kubernetes.io/revision"];

/** The stored object without what the server writes, and without (after checking their values)
 * the labels and annotations in `remove`. */
function normalise(o: JsonObject, remove: ReadonlyMap<string, string>): JsonObject {
  const { status: _, metadata, ...rest } = o;
  if (!isJsonObject(metadata)) return rest;
  const meta: JsonObject = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (VOLATILE_METADATA.includes(k)) continue;
    if ((k === "labels" || k === "annotations") && isJsonObject(v)) {
      const kept: JsonObject = {};
      for (const [lk, lv] of Object.entries(v)) {
        if (VOLATILE_ANNOTATIONS.includes(lk)) continue;
        if (remove.has(lk)) {
          expect(lv, `${k} ${lk}`).toBe(remove.get(lk));
          continue;
        }
        kept[lk] = lv;
      }
      if (Object.keys(kept).length > 0) meta[k] = kept;
      continue;
    }
    meta[k] = v;
  }
  return { ...rest, metadata: meta };
}

function str(o: Json | undefined, ...keys: string[]): string {
  let cur = o;
  for (const k of keys) cur = isJsonObject(cur) ? cur[k] : undefined;
  return typeof cur === "string" ? cur : "";
}

const name = (o: Json | undefined): string =>
  `${str(o, "kind")} ${str(o, "metadata", "namespace")}/${str(o, "metadata", "name")}`;

/** The live objects named in `manifest`, as the API server stores them. */
async function live(): Promise<JsonObject[]> {
  const list = listSchema.parse(JSON.parse(await kubectl(["get", "-f", manifest, "-o", "json"])));
  return list.items.map((i) => {
    const v = toJson(i);
    if (!isJsonObject(v)) throw new Error("not an object");
    return v;
  });
}

async function namespaceGone(ns: string): Promise<void> {
  await waitFor(
    `namespace ${ns} deleted`,
    async () => {
      const r = await cp.kubectl(["get", "namespace", ns]);
      return r.code !== 0 && r.stderr.includes("NotFound") ? true : undefined;
    },
    { timeoutMs: 120_000 },
  );
}

beforeAll(async () => {
  helm = path.join(await toolBin("helm.sh"), "helm");
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-helm-"));
  cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  manifest = path.join(dir, "kustomized.yaml");
  await writeFile(manifest, await kubectl(["kustomize", path.join(ROOT, "config/default")]));
}, 3_600_000);

afterAll(async () => {
  await cluster?.stopAll();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("helm install on a real API server", () => {
  let kustomized: Map<string, JsonObject>;

  it("stores, from kubectl apply -k config/default, the objects to compare with", async () => {
    await kubectl(["apply", "--server-side", "-f", manifest]);
    kustomized = new Map((await live()).map((o) => [name(o), normalise(o, new Map())]));
    expect(kustomized.size).toBeGreaterThan(15);
    await kubectl(["delete", "-f", manifest, "--wait=true"]);
    await namespaceGone(NS);
  });

  it("creates the same objects, apart from Helm's ownership metadata and the CRDs' keep", async () => {
    const out = await helmCmd(["install", RELEASE, CHART, "--namespace", RELEASE_NS]);
    expect(out).toContain("STATUS: deployed");
    await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    const installed = await live();
    expect(installed.map(name).sort()).toEqual([...kustomized.keys()].sort());
    for (const o of installed) {
      // Helm's ownership metadata is really there (normalise checks its values).
      const metadata = o["metadata"];
      const own = isJsonObject(metadata) ? metadata["annotations"] : undefined;
      expect(isJsonObject(own) ? own["meta.helm.sh/release-name"] : undefined, name(o)).toBe(
        RELEASE,
      );
      const isCrd = o["kind"] === "CustomResourceDefinition";
      const annotations = new Map([
        ...HELM_ANNOTATIONS,
        ...(isCrd ? [["helm.sh/resource-policy", "keep"] as const] : []),
      ]);
      expect(normalise(normalise(o, HELM_LABELS), annotations), name(o)).toEqual(
        kustomized.get(name(o)),
      );
    }
    // The workloads exist and their controllers act on them (no kubelet runs their pods here).
    await waitFor(
      "the controller's ReplicaSet pods",
      async () =>
        (
          await kubectl([
            "get",
            "pods",
            "-n",
            NS,
            "-l",
            "app.kubernetes.io/name=imagepolicy-controller",
            "-o",
            "name",
          ])
        )
          .trim()
          .split("\n")
          .filter((l) => l !== "").length === 2 || undefined,
    );
  });

  it("leaves the CRDs on uninstall and adopts them again on the next install", async () => {
    await helmCmd(["uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait"]);
    await namespaceGone(NS);
    const crds = await kubectl(["get", "crd", "-o", "name"]);
    expect(crds).toContain("clusterimagepolicies.imagepolicy.dev");
    expect(crds).toContain("imagepolicynodestatuses.imagepolicy.dev");
  });

  it("installs into another namespace where the real controller and agent work", async () => {
    const ns = "policy-ops";
    await helmCmd([
      "install",
      RELEASE,
      CHART,
      "--namespace",
      RELEASE_NS,
      "--set",
      `namespace.name=${ns}`,
    ]);
    await cp.registerNode("node-a", "cri-o://1.34.0");
    cluster = await startOperatorCluster({ cp, dir, namespace: ns, nodes: ["node-a"] });
    await kubectl(
      ["apply", "-f", "-"],
      stringify({
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ClusterImagePolicy",
        metadata: { name: "block-vendor" },
        spec: { scopes: ["vendor.example.com"], policy: { rootOfTrust: { policyType: "Reject" } } },
      }),
    );
    // The controller publishes into policy-ops (its Role there), the agent reads it and writes its
    // own node's status (ClusterRole, and the admission policy naming policy-ops' agent).
    const clusterJson = path.join(
      cluster.agents.get("node-a")?.root ?? "",
      "etc/crio/imagepolicy/cluster.json",
    );
    await waitFor(
      "cluster.json with the policy",
      async () =>
        (await readFile(clusterJson, "utf8").catch(() => "")).includes("vendor.example.com") ||
        undefined,
      { timeoutMs: 90_000, context: () => cluster?.logs() ?? "" },
    );
    expect(
      await kubectl(["get", "configmap", "imagepolicy-layer-cluster", "-n", ns, "-o", "name"]),
    ).toContain("imagepolicy-layer-cluster");
    await waitFor(
      "node-a's status from its agent",
      async () =>
        (await kubectl([
          "get",
          "imagepolicynodestatus",
          "node-a",
          "-o",
          "jsonpath={.status.appliedRevisions.cluster\\.json}",
        ])) !== "" || undefined,
      { timeoutMs: 60_000, context: () => cluster?.logs() ?? "" },
    );
    // The admission policy holds the agent of policy-ops to its own node.
    const agentKubeconfig = await cp.serviceAccountKubeconfig(ns, "imagepolicy-agent", {
      boundNode: "node-a",
    });
    const forged = await cp.kubectl([`--kubeconfig=${agentKubeconfig}`, "create", "-f", "-"], {
      stdin: stringify({
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ImagePolicyNodeStatus",
        metadata: { name: "node-b" },
        spec: { nodeName: "node-b" },
      }),
    });
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toContain("imagepolicy-agent-own-node-status");
  });

  it("changes what the values say on helm upgrade", async () => {
    await helmCmd([
      "upgrade",
      RELEASE,
      CHART,
      "--namespace",
      RELEASE_NS,
      "--reuse-values",
      "--set",
      "controller.resources.limits.memory=1Gi",
      "--set",
      "controller.flags.logLevel=debug",
    ]);
    const field = (jsonpath: string): Promise<string> =>
      kubectl([
        "get",
        "deployment",
        "imagepolicy-controller",
        "-n",
        "policy-ops",
        "-o",
        `jsonpath=${jsonpath}`,
      ]);
    expect(await field("{.spec.template.spec.containers[0].resources.limits.memory}")).toBe("1Gi");
    expect(await field("{.spec.template.spec.containers[0].args}")).toContain(
      '"--log-level=debug"',
    );
  });
});

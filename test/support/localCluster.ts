// A whole local cluster on this machine, for the `node` tests, hack/demo and hack/node-up: the node
// network, a registry on the host end of its veth holding the operator image (built without
// Docker) and the test images, the control plane listening on that address with kube-scheduler,
// and a real node (kubelet + CRI-O + kube-proxy + CNI). `installOperator` then installs the
// shipped manifests through an overlay that only sets the image, in the order docs/install.md
// gives.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { stringify } from "yaml";
import { startControlPlane, type ControlPlane } from "./controlPlane.ts";
import { installCrioDropIn, startNode, toolOutput, type Node } from "./node.ts";
import { pushNodeImages, type NodeImages } from "./nodeImages.ts";
import { createNodeNetwork, type NodeNetwork } from "./nodeNetwork.ts";
import { createPolicyHarness, OPERATOR_NAMESPACE } from "./policyHarness.ts";
import { runToolOk, toolBin } from "./tools.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
export { OPERATOR_NAMESPACE };
/** Label selector of the controller's and the agent's pods (their templates' own labels). */
export const OPERATOR_PODS = "app.kubernetes.io/name in (imagepolicy-controller,imagepolicy-agent)";

export class LocalClusterError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface LocalClusterOptions {
  readonly dir: string;
  readonly nodeName?: string;
  /** Progress lines (building on a cold machine takes minutes). */
  readonly log?: (line: string) => void;
}

export interface LocalCluster {
  readonly dir: string;
  readonly network: NodeNetwork;
  readonly images: NodeImages;
  readonly cp: ControlPlane;
  readonly node: Node;
  /** Runs kubectl; throws with its stderr on a non-zero exit. */
  kubectl(args: readonly string[], stdin?: string): Promise<string>;
  /** The node's and the operator's last log lines, for failure messages. */
  diagnostics(): Promise<string>;
  stop(): Promise<void>;
}

/** Each component with what a cold build costs on 2 cores (README, docs/local-node.md). */
const components = [
  ["control-plane.sh", "etcd, kube-apiserver, kube-controller-manager, kubectl", "~8 min"],
  ["kubelet.sh", "kubelet, kube-scheduler, kube-proxy", "~4 min after the control plane"],
  ["crio.sh", "CRI-O, crictl, runc", "~6 min"],
  ["cni.sh", "CNI plugins", "~1 min"],
  ["evaluator.sh", "registry, skopeo, cosign, umoci", "~1 min"],
  ["operator-image.sh", "the operator image", "~4 min cold, ~45 s warm"],
  ["node-images.sh", "pause and test images", "~10 s"],
] as const;

export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const log = opts.log ?? ((): void => undefined);
  const dir = path.resolve(opts.dir);
  await mkdir(dir, { recursive: true });

  const outputs = new Map<string, string>();
  for (const [script, what, cold] of components) {
    const start = Date.now();
    log(`building or reusing ${what} (hack/tools/${script}; cold: ${cold})`);
    outputs.set(script, await toolOutput(script));
    const s = Math.round((Date.now() - start) / 1000);
    if (s >= 5) log(`  ${what}: ${String(s)} s`);
  }
  const out = (script: string): string => {
    const v = outputs.get(script);
    if (v === undefined) throw new LocalClusterError(`no output from ${script}`);
    return v;
  };

  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      await c().catch((error: unknown) => {
        log(`cleanup failed: ${String(error)}`);
      });
    }
  };
  try {
    log("creating the node's network namespace");
    const network = await createNodeNetwork(dir);
    cleanups.push(() => network.release());
    log(`pushing and signing images into a registry on ${network.hostAddress}`);
    const images = await pushNodeImages({
      dir: path.join(dir, "registry"),
      address: network.hostAddress,
      toolsBin: out("evaluator.sh"),
      operatorLayout: out("operator-image.sh"),
      nodeImagesLayout: out("node-images.sh"),
    });
    cleanups.push(() => images.registry.stop());
    log(
      "starting the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)",
    );
    const cp = await startControlPlane({
      dir: path.join(dir, "control-plane"),
      address: network.hostAddress,
      scheduler: path.join(out("kubelet.sh"), "kube-scheduler"),
    });
    cleanups.push(() => cp.stop());
    const node = await startNode({
      dir: path.join(dir, "node"),
      ...(opts.nodeName === undefined ? {} : { name: opts.nodeName }),
      network,
      controlPlane: cp,
      registries: images.registries,
      pauseImage: images.pause,
      log,
    });
    cleanups.push(() => node.stop());

    const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
      const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
      if (r.code !== 0) {
        throw new LocalClusterError(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
      }
      return r.stdout;
    };
    const diagnostics = async (): Promise<string> => {
      const pods = await cp.kubectl(["get", "pods", "-A", "-o", "wide"]);
      const operatorLogs = await cp.kubectl([
        "logs",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        OPERATOR_PODS,
        "--tail=20",
        "--prefix",
        "--all-containers",
      ]);
      return [pods.stdout, operatorLogs.stdout, operatorLogs.stderr, await node.logTail(25)].join(
        "\n",
      );
    };
    return { dir, network, images, cp, node, kubectl, diagnostics, stop };
  } catch (error) {
    await stop();
    throw new LocalClusterError(
      `the local cluster in ${dir} did not start: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** The kustomize overlay of config/default that only sets the operator image. */
export function operatorOverlay(overlayDir: string, image: string): string {
  const at = image.indexOf("@");
  if (at < 0) throw new LocalClusterError(`the operator image must be pinned by digest: ${image}`);
  return stringify({
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    resources: [path.relative(overlayDir, path.join(repoRoot, "config/default"))],
    images: [
      {
        name: "ghcr.io/imagepolicy-dev/imagepolicy-operator",
        newName: image.slice(0, at),
        digest: image.slice(at + 1),
      },
    ],
    // docs/install.md: an overlay that changes the image repeats config/default's replacement,
    // so the controller guards the image it really runs (--operator-image).
    replacements: [
      {
        source: {
          kind: "Deployment",
          name: "imagepolicy-controller",
          fieldPath: "spec.template.spec.containers.[name=controller].image",
        },
        targets: [
          {
            select: { kind: "Deployment", name: "imagepolicy-controller" },
            fieldPaths: [
              "spec.template.spec.containers.[name=controller].env.[name=OPERATOR_IMAGE].value",
            ],
          },
        ],
      },
    ],
  });
}

export interface InstallTimings {
  /** kubectl apply until both workloads rolled out. */
  readonly rolloutMs: number;
  /** ... until the agent reported cluster.json at the published revision. */
  readonly clusterJsonMs: number;
  /** Drop-in and CRI-O restart until the agent reported `enforcing: true`. */
  readonly enforcingMs: number;
}

/**
 * docs/install.md on the local node: apply the overlay of config/default, wait for both
 * workloads, wait until the node's agent has applied cluster.json at the published revision, only
 * then install config/crio/10-imagepolicy.conf and restart CRI-O, and wait for `enforcing: true`.
 */
/** Installs the chart (charts/imagepolicy-operator) with only the image set, as a Helm user
 * would: `helm install` into `default` (the chart creates the operator namespace). */
async function helmInstall(cluster: LocalCluster, log: (line: string) => void): Promise<void> {
  const image = cluster.images.operator;
  const at = image.indexOf("@");
  if (at < 0) throw new LocalClusterError(`the operator image must be pinned by digest: ${image}`);
  const helm = path.join(await toolBin("helm.sh"), "helm");
  const home = path.join(cluster.dir, "helm");
  const args = [
    "install",
    "imagepolicy-operator",
    path.join(repoRoot, "charts/imagepolicy-operator"),
    "--namespace",
    "default",
    "--set",
    `image.repository=${image.slice(0, at)}`,
    "--set",
    `image.digest=${image.slice(at + 1)}`,
    "--kubeconfig",
    cluster.cp.kubeconfigPath,
  ];
  log(`helm ${args.slice(0, 3).join(" ")} --set image.repository=... --set image.digest=...`);
  await runToolOk(helm, args, {
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(home, "cache"),
      HELM_CONFIG_HOME: path.join(home, "config"),
      HELM_DATA_HOME: path.join(home, "data"),
    },
  });
}

export async function installOperator(
  cluster: LocalCluster,
  log: (line: string) => void = (): void => undefined,
  options: { readonly with?: "kustomize" | "helm" } = {},
): Promise<InstallTimings> {
  const start = Date.now();
  if (options.with === "helm") {
    await helmInstall(cluster, log);
  } else {
    const overlayDir = path.join(cluster.dir, "overlay");
    await mkdir(overlayDir, { recursive: true });
    await writeFile(
      path.join(overlayDir, "kustomization.yaml"),
      operatorOverlay(overlayDir, cluster.images.operator),
    );
    log(
      `kubectl apply --server-side -k <overlay of config/default> (image ${cluster.images.operator})`,
    );
    await cluster.kubectl(["apply", "--server-side", "-k", overlayDir]);
  }
  for (const workload of ["deployment/imagepolicy-controller", "daemonset/imagepolicy-agent"]) {
    log(`kubectl rollout status ${workload}`);
    await cluster
      .kubectl(["-n", OPERATOR_NAMESPACE, "rollout", "status", workload, "--timeout=300s"])
      .catch(async (error: unknown) => {
        throw new LocalClusterError(
          `${workload} did not roll out\n${await cluster.diagnostics()}`,
          { cause: error },
        );
      });
  }
  const rolloutMs = Date.now() - start;

  log("waiting until the agent has applied cluster.json at the published revision");
  const harness = createPolicyHarness({
    kubectl: (args, stdin) => cluster.kubectl(args, stdin),
    node: cluster.node.name,
    diagnostics: () => cluster.diagnostics(),
    timeoutMs: 180_000,
  });
  await harness.waitFor("cluster.json applied on the node", async () =>
    (await harness.converged([], [])) ? true : undefined,
  );
  const revision = (await harness.nodeStatus())?.status?.appliedRevisions?.["cluster.json"];
  const clusterJsonMs = Date.now() - start - rolloutMs;

  log(
    `cluster.json at revision ${String(revision)}: installing the CRI-O drop-in, restarting CRI-O`,
  );
  const enforcingStart = Date.now();
  await installCrioDropIn(cluster.node);
  await cluster.node.restartCrio();
  await harness.waitFor("the agent to report enforcing: true", async () =>
    (await harness.nodeStatus())?.status?.enforcing === true ? true : undefined,
  );
  return { rolloutMs, clusterJsonMs, enforcingMs: Date.now() - enforcingStart };
}

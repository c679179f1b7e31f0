// The README's main job: the product doing what it exists for, on a real node of this machine.
//
// 1. Builds (or reuses) and starts a local cluster: control plane, a node with kubelet + CRI-O +
//    kube-proxy + CNI in its own namespaces, a registry holding the operator image built without
//    Docker (cosign-signed) and test images (test/support/localCluster.ts, docs/local-node.md).
// 2. Installs the operator from config/default through an overlay that only sets the image, then
//    the CRI-O drop-in once the agent pod wrote cluster.json (docs/install.md).
// 3. Applies config/samples with kubectl, plus two policies for this node's own registry: the
//    operator image must carry its cosign signature, and so must the demo's workloads.
// 4. Runs two Deployments in team-a: an unsigned image (refused by CRI-O: its Events carry
//    CRI-O's reason) and a cosign-signed one (runs). Shows the pods, the policies (Ready, Rollout
//    1/1), the node's ImagePolicyNodeStatus and the Node.
//
// `hack/demo --keep` leaves everything running until Ctrl-C (it prints a KUBECONFIG);
// `hack/demo --simulated` runs the older demo without a node (hack/demo-simulated.ts).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { z } from "zod";
import {
  installOperator,
  OPERATOR_NAMESPACE,
  startLocalCluster,
  type LocalCluster,
} from "../test/support/localCluster.ts";
import { waitFor } from "../test/support/waitFor.ts";
import { sleeperDeployment } from "../test/support/workloads.ts";

const repo = path.resolve(import.meta.dirname, "..");
const started = Date.now();

function say(line: string): void {
  process.stdout.write(`\n\x1b[1m==> ${line}\x1b[0m\n`);
}

function progress(line: string): void {
  const s = Math.round((Date.now() - started) / 1000);
  process.stdout.write(
    `    [${String(Math.floor(s / 60))}:${String(s % 60).padStart(2, "0")}] ${line}\n`,
  );
}

function show(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** An exception under config/samples' default deny. The operator's own image must be accepted
 * unconditionally (docs/security.md, rule 5: a policy requiring any signature for it is refused
 * with WouldRejectOperator, since a wrong key would stop the operator that could fix it). */
function acceptPolicy(name: string, scope: string): string {
  return stringify({
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ClusterImagePolicy",
    metadata: { name },
    spec: { scopes: [scope], policy: { rootOfTrust: { policyType: "InsecureAcceptAnything" } } },
  });
}

function cosignPolicy(name: string, scope: string, keyData: string): string {
  return stringify({
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ClusterImagePolicy",
    metadata: { name },
    spec: {
      scopes: [scope],
      policy: {
        rootOfTrust: { policyType: "PublicKey", publicKey: { keyData } },
        // cosign signatures name the repository only: accept them for tag pulls too.
        signedIdentity: { matchPolicy: "MatchRepository" },
      },
    },
  });
}

const podListSchema = z.looseObject({
  items: z.array(
    z.looseObject({
      metadata: z.looseObject({ name: z.string() }),
      status: z.looseObject({
        containerStatuses: z
          .array(
            z.looseObject({
              ready: z.boolean(),
              state: z.looseObject({
                waiting: z.looseObject({ reason: z.string().optional() }).optional(),
              }),
            }),
          )
          .optional(),
      }),
    }),
  ),
});

async function podOf(cluster: LocalCluster, app: string, want: "running" | "refused") {
  return waitFor(
    `the ${app} pod ${want === "running" ? "to run" : "to be refused"}`,
    async () => {
      const pods = podListSchema.parse(
        JSON.parse(
          await cluster.kubectl(["get", "pods", "-n", "team-a", "-l", `app=${app}`, "-o", "json"]),
        ),
      );
      const pod = pods.items[0];
      const cs = pod?.status.containerStatuses?.[0];
      if (pod === undefined || cs === undefined) return undefined;
      const reason = cs.state.waiting?.reason;
      if (want === "running" && cs.ready) return pod.metadata.name;
      if (want === "refused" && (reason === "ErrImagePull" || reason === "ImagePullBackOff")) {
        return pod.metadata.name;
      }
      return undefined;
    },
    { timeoutMs: 180_000, intervalMs: 500, context: () => cluster.diagnostics() },
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { keep: { type: "boolean" } },
  });
  const dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-demo-"));

  say("building or reusing the components, then starting a local cluster with a real node");
  const cluster = await startLocalCluster({ dir, log: progress });
  try {
    show(
      `node ${cluster.node.name}: kubelet ${cluster.node.kubeletVersion}, CRI-O ${cluster.node.crioVersion}; ` +
        `API server ${cluster.cp.server}; registry ${cluster.images.registry.host}`,
    );

    say(
      "installing the operator (config/default, image set by an overlay) as docs/install.md says",
    );
    const t = await installOperator(cluster, progress);
    show(
      `rolled out in ${String(Math.round(t.rolloutMs / 1000))} s; cluster.json written ` +
        `${String(Math.round(t.clusterJsonMs / 1000))} s later; drop-in + CRI-O restart -> enforcing in ` +
        `${String(Math.round(t.enforcingMs / 1000))} s`,
    );
    show(await cluster.kubectl(["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide"]));

    say("applying this node's registry policies, then config/samples");
    const keys = cluster.images.keys;
    show(
      await cluster.kubectl(
        ["apply", "-f", "-"],
        [
          acceptPolicy("local-operator-exception", cluster.images.operatorRepository),
          cosignPolicy("local-apps-signed", `${cluster.images.registry.host}/apps`, keys.cosign),
        ].join("---\n"),
      ),
    );
    show(await cluster.kubectl(["apply", "-k", path.join(repo, "config/samples")]));
    await waitFor(
      "every policy Ready with Rollout 1/1",
      async () => {
        const r = await cluster.kubectl([
          "get",
          "clusterimagepolicies,imagepolicies",
          "-A",
          "-o",
          'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}/{.status.rollout.display}{"\\n"}{end}',
        ]);
        const lines = r.split("\n").filter((l) => l !== "");
        return lines.length > 0 && lines.every((l) => l === "True/1/1") ? true : undefined;
      },
      {
        timeoutMs: 180_000,
        intervalMs: 500,
        context: async () =>
          (await cluster.kubectl([
            "get",
            "clusterimagepolicies,imagepolicies",
            "-A",
            "-o",
            'custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,REASON:.status.conditions[?(@.type=="Ready")].reason,MESSAGE:.status.conditions[?(@.type=="Ready")].message',
          ])) + (await cluster.diagnostics()),
      },
    );

    say("two Deployments in team-a: an unsigned image and a cosign-signed one");
    await cluster.kubectl(
      ["apply", "-f", "-"],
      [
        sleeperDeployment("team-a", "unsigned", cluster.images.apps["apps/unsigned:v1"]),
        sleeperDeployment("team-a", "signed", cluster.images.apps["apps/cosigned:v1"]),
      ].join("---\n"),
    );
    const refused = await podOf(cluster, "unsigned", "refused");
    await podOf(cluster, "signed", "running");
    show(await cluster.kubectl(["get", "pods", "-n", "team-a", "-o", "wide"]));

    say(`why ${refused} does not run: its Events (the kubelet reports CRI-O's refusal)`);
    show(
      await cluster.kubectl([
        "get",
        "events",
        "-n",
        "team-a",
        "--field-selector",
        `involvedObject.name=${refused},reason=Failed`,
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
      ]),
    );

    say("which policy refused it: the controller's Event on the pod and its ImagePullRefusal");
    await waitFor(
      "an ImagePullRefusal for the refused pod",
      async () => {
        const r = await cluster.kubectl(["get", "imagepullrefusals", "-n", "team-a", "-o", "name"]);
        return r.trim() === "" ? undefined : true;
      },
      { timeoutMs: 120_000, intervalMs: 1000, context: () => cluster.diagnostics() },
    );
    show(
      await cluster.kubectl([
        "get",
        "events",
        "-n",
        "team-a",
        "--field-selector",
        `involvedObject.name=${refused},reason=ImagePolicyRefused`,
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
      ]),
    );
    show(await cluster.kubectl(["get", "imagepullrefusals", "-n", "team-a"]));

    say("kubectl get clusterimagepolicies,imagepolicies -A");
    show(await cluster.kubectl(["get", "clusterimagepolicies,imagepolicies", "-A"]));

    say("the node: its ImagePolicyNodeStatus and the Node");
    show(
      await cluster.kubectl([
        "get",
        "imagepolicynodestatuses",
        "-o",
        "custom-columns=NODE:.metadata.name,RUNTIME:.status.runtime.version,ENFORCING:.status.enforcing,REASON:.status.enforcingReason",
      ]),
    );
    show(await cluster.kubectl(["get", "nodes", "-o", "wide"]));
    show(`\ndemo done in ${String(Math.round((Date.now() - started) / 1000))} s`);

    if (values.keep === true) {
      say(
        `running; export KUBECONFIG=${cluster.cp.kubeconfigPath}; ` +
          `kubectl is ${path.join(cluster.cp.binDir, "kubectl")}; Ctrl-C to stop`,
      );
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => {
          resolve();
        });
      });
    }
  } finally {
    progress("stopping the local cluster");
    await cluster.stop();
    if (values.keep !== true) await rm(dir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (err) {
  const cause = err instanceof Error && err.cause instanceof Error ? `\n${err.cause.message}` : "";
  process.stderr.write(
    `demo failed: ${err instanceof Error ? err.message : String(err)}${cause}\n`,
  );
  process.exitCode = 1;
}

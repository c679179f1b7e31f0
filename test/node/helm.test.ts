// Issue 13: the chart, installed the way a Helm user installs it, on the real node. `helm install`
// of charts/imagepolicy-operator with only the image set (test/support/localCluster.ts
// installOperator({ with: "helm" })), the CRI-O drop-in after cluster.json exists
// (docs/install.md), then a pod whose image lacks the required cosign signature is refused by
// CRI-O and a signed one runs, because of the files the chart's agent pod wrote.
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  installOperator,
  OPERATOR_NAMESPACE,
  startLocalCluster,
  type LocalCluster,
} from "../support/localCluster.ts";
import { cip, createPolicyHarness, policy, publicKey } from "../support/policyHarness.ts";
import { waitFor } from "../support/waitFor.ts";
import { sleeperPod } from "../support/workloads.ts";

let cluster: LocalCluster | undefined;
let dir = "";

function c(): LocalCluster {
  if (cluster === undefined) throw new Error("the local cluster did not start");
  return cluster;
}

const podSchema = z.looseObject({
  status: z.looseObject({
    containerStatuses: z
      .array(
        z.looseObject({
          ready: z.boolean(),
          state: z.looseObject({
            waiting: z
              .looseObject({ reason: z.string().optional(), message: z.string().optional() })
              .optional(),
          }),
        }),
      )
      .optional(),
  }),
});

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-node-helm-"));
  cluster = await startLocalCluster({
    dir,
    log: (l) => {
      console.log(`[node-helm] ${l}`);
    },
  });
  await installOperator(
    cluster,
    (l) => {
      console.log(`[node-helm] ${l}`);
    },
    { with: "helm" },
  );
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

describe("the Helm chart on a real kubelet + CRI-O node", () => {
  it("runs the controller and the agent as Helm-managed pods, the agent enforcing", async () => {
    const labels = await c().kubectl([
      "get",
      "deployment/imagepolicy-controller",
      "daemonset/imagepolicy-agent",
      "-n",
      OPERATOR_NAMESPACE,
      "-o",
      'jsonpath={range .items[*]}{.metadata.labels.app\\.kubernetes\\.io/managed-by} {.status.numberReady}{.status.readyReplicas}{"\\n"}{end}',
    ]);
    expect(labels.trim().split("\n")).toEqual(["Helm 2", "Helm 1"]);
    const enforcing = await c().kubectl([
      "get",
      "imagepolicynodestatus",
      c().node.name,
      "-o",
      "jsonpath={.status.enforcing}",
    ]);
    expect(enforcing).toBe("true");
  });

  it("refuses an unsigned pod and runs a cosign-signed one under a chart-installed agent", async () => {
    const harness = createPolicyHarness({
      kubectl: (args, stdin) => c().kubectl(args, stdin),
      node: c().node.name,
      diagnostics: () => c().diagnostics(),
      timeoutMs: 180_000,
    });
    const apps = `${c().images.registry.host}/apps`;
    await harness.applyAndWait(
      policy(cip("helm-apps-cosigned"), [apps], publicKey(c().images.keys.cosign), {
        matchPolicy: "MatchRepository",
      }),
    );
    await c().kubectl(["create", "namespace", "helm-apps"]);
    await c().kubectl(
      ["apply", "-f", "-"],
      [
        sleeperPod("helm-apps", "unsigned", c().images.apps["apps/unsigned:v1"]),
        sleeperPod("helm-apps", "cosigned", c().images.apps["apps/cosigned:v1"]),
      ].join("---\n"),
    );
    const state = async (name: string) =>
      podSchema.parse(
        JSON.parse(await c().kubectl(["get", "pod", name, "-n", "helm-apps", "-o", "json"])),
      ).status.containerStatuses?.[0];
    const refused = await waitFor(
      "the unsigned pod refused by CRI-O",
      async () => {
        const s = await state("unsigned");
        const message = s?.state.waiting?.message ?? "";
        return message.includes("SignatureValidationFailed") ||
          message.includes("Source image rejected")
          ? message
          : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000, context: () => c().diagnostics() },
    );
    expect(refused).toContain("A signature was required, but no signature exists");
    await waitFor(
      "the cosign-signed pod running",
      async () => ((await state("cosigned"))?.ready === true ? true : undefined),
      { timeoutMs: 180_000, intervalMs: 1000, context: () => c().diagnostics() },
    );
  });
});

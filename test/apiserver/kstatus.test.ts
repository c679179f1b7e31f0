// How GitOps tools read a policy's status: kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, the
// rules of Flux's health checks, Helm 4's --wait and kpt; hack/tools/kstatus.sh) applied to
// ClusterImagePolicy and ImagePolicy objects read from a real API server, with the real controller
// and an agent on a node whose real CRI-O (hack/tools/crio.sh) reads the agent's files, so that
// Ready can really be reached:
// - Current once Ready;
// - InProgress before the controller has observed a new generation, and while the new layer rolls
//   out to the nodes;
// - Failed when the controller refuses the current generation.
// docs/operate.md, "GitOps", explains each state.

import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { z } from "zod";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startCrio, type Crio } from "../support/crio.ts";
import { startOperatorCluster, type OperatorCluster } from "../support/operatorCluster.ts";
import { runToolOk, toolBin } from "../support/tools.ts";
import { waitFor } from "../support/waitFor.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const NODE = "node-a";
const CLUSTER_JSON = "etc/crio/imagepolicy/cluster.json";
const POLICY_DIR = "etc/crio/policies";

let dir: string;
let cp: ControlPlane;
let cluster: OperatorCluster | undefined;
let crio: Crio | undefined;
let kstatusBin: string;

const resultSchema = z.strictObject({
  apiVersion: z.string(),
  kind: z.string(),
  namespace: z.string().optional(),
  name: z.string(),
  status: z.enum(["Current", "InProgress", "Failed", "Terminating", "Unknown"]),
  message: z.string(),
});

const statusSchema = z.looseObject({
  metadata: z.looseObject({ generation: z.number() }),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      conditions: z
        .array(z.looseObject({ type: z.string(), status: z.string(), reason: z.string() }))
        .optional(),
    })
    .optional(),
});

async function kubectl(args: readonly string[], stdin?: string): Promise<string> {
  const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

type Ref = readonly [kind: "clusterimagepolicy" | "imagepolicy", name: string, ns?: string];
const get = (ref: Ref): Promise<string> =>
  kubectl(["get", ref[0], ref[1], ...(ref[2] === undefined ? [] : ["-n", ref[2]]), "-o", "json"]);

/** kstatus's verdict on the object as the API server holds it now. */
async function kstatus(ref: Ref): Promise<z.infer<typeof resultSchema>> {
  const out = await runToolOk(kstatusBin, [], { stdin: await get(ref) });
  return resultSchema.parse(JSON.parse(out));
}

/** Waits until the object's Ready condition, for its current generation, satisfies `ok`. */
async function waitReady(ref: Ref, ok: (status: string, reason: string) => boolean): Promise<void> {
  await waitFor(
    `${ref.join(" ")} Ready`,
    async () => {
      const o = statusSchema.parse(JSON.parse(await get(ref)));
      const ready = o.status?.conditions?.find((c) => c.type === "Ready");
      return o.status?.observedGeneration === o.metadata.generation &&
        ready !== undefined &&
        ok(ready.status, ready.reason)
        ? true
        : undefined;
    },
    {
      timeoutMs: 90_000,
      context: async () =>
        [
          await get(ref),
          await kubectl(["get", "imagepolicynodestatus", NODE, "-o", "yaml"]),
          await kubectl(["get", "configmaps", "-n", NS, "-o", "yaml"]),
          (await cluster?.logs()) ?? "",
        ].join("\n"),
    },
  );
}

const REJECT = { rootOfTrust: { policyType: "Reject" } };

function policy(
  kind: "ClusterImagePolicy" | "ImagePolicy",
  name: string,
  scopes: string[],
  ns?: string,
  rules: object = REJECT,
): string {
  return stringify({
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind,
    metadata: { name, ...(ns === undefined ? {} : { namespace: ns }) },
    spec: { scopes, policy: rules },
  });
}

const CIP: Ref = ["clusterimagepolicy", "block-vendor"];
const IP: Ref = ["imagepolicy", "block-team-a-tools", "team-a"];

beforeAll(async () => {
  kstatusBin = path.join(await toolBin("kstatus.sh"), "kstatus");
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-kstatus-"));
  cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  await kubectl(["apply", "--server-side", "-k", path.join(ROOT, "config/default")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  await kubectl(["create", "namespace", "team-a"]);
  const crioBin =
    execFileSync(path.join(ROOT, "hack/tools/crio.sh"), { encoding: "utf8" })
      .trim()
      .split("\n")
      .at(-1) ?? "";
  const version = /crio version (\S+)/.exec(
    execFileSync(path.join(crioBin, "crio"), ["--version"], { encoding: "utf8" }),
  )?.[1];
  if (version === undefined) throw new Error("cannot read crio --version");
  await cp.registerNode(NODE, `cri-o://${version}`);
  const root = path.join(dir, "nodes", NODE);
  // The agent finds CRI-O's socket under its --root; CRI-O reads the agent's files by their paths.
  await mkdir(path.join(root, "var/run/crio"), { recursive: true });
  cluster = await startOperatorCluster({
    cp,
    dir,
    namespace: NS,
    nodes: [NODE],
    agentArgs: (_, r) => [
      "--crio-socket=/var/run/crio/crio.sock",
      `--crio-expected-policy-path=${path.join(r, CLUSTER_JSON)}`,
      `--crio-expected-policy-dir=${path.join(r, POLICY_DIR)}`,
      "--probe-interval=1",
    ],
  });
  // docs/install.md's order: cluster.json exists before CRI-O is pointed at it.
  await waitFor(
    "the first cluster.json",
    () => stat(path.join(root, CLUSTER_JSON)).then(() => true),
    {
      timeoutMs: 90_000,
      context: () => cluster?.logs() ?? "",
    },
  );
  await mkdir(path.join(root, "etc/containers/registries.d"), { recursive: true });
  crio = await startCrio({
    dir: path.join(root, "var/run/crio"),
    signaturePolicy: path.join(root, CLUSTER_JSON),
    signaturePolicyDir: path.join(root, POLICY_DIR),
    registriesDDir: path.join(root, "etc/containers/registries.d"),
    insecureRegistries: [],
  });
  await waitFor(
    `${NODE} enforcing`,
    async () =>
      (await kubectl([
        "get",
        "imagepolicynodestatus",
        NODE,
        "-o",
        "jsonpath={.status.enforcing}",
      ])) === "true" || undefined,
    { timeoutMs: 90_000, context: () => cluster?.logs() ?? "" },
  );
}, 3_600_000);

afterAll(async () => {
  await cluster?.stopAll();
  await crio?.stop();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("kstatus reads policy status as GitOps tools do", () => {
  it("reads a ClusterImagePolicy and an ImagePolicy as Current once Ready", async () => {
    await kubectl(
      ["apply", "-f", "-"],
      policy("ClusterImagePolicy", CIP[1], ["vendor.example.com"]),
    );
    await kubectl(
      ["apply", "-f", "-"],
      policy("ImagePolicy", IP[1], ["registry.example.com/tools"], "team-a"),
    );
    for (const ref of [CIP, IP]) {
      await waitReady(ref, (s) => s === "True");
      expect(await kstatus(ref)).toMatchObject({ status: "Current" });
    }
  });

  it("reads a new generation as InProgress until the controller has observed it", async () => {
    await cluster?.stop("controller");
    try {
      await kubectl(
        ["apply", "-f", "-"],
        policy("ClusterImagePolicy", CIP[1], ["vendor.example.com", "vendor.example.org"]),
      );
      const r = await kstatus(CIP);
      expect(r.status).toBe("InProgress");
      expect(r.message).toMatch(/generation is 2, but latest observed generation is 1/);
    } finally {
      cluster?.start("controller");
    }
    await waitReady(CIP, (s) => s === "True");
    expect((await kstatus(CIP)).status).toBe("Current");
  });

  it("reads a policy as InProgress while its layer rolls out, Current once every node has it", async () => {
    await cluster?.stop(NODE);
    try {
      await kubectl(
        ["apply", "-f", "-"],
        policy(
          "ImagePolicy",
          IP[1],
          ["registry.example.com/tools", "registry.example.com/debug"],
          "team-a",
        ),
      );
      await waitReady(IP, (s, reason) => s === "False" && reason === "RollingOut");
      expect(await kstatus(IP)).toMatchObject({ status: "InProgress" });
    } finally {
      cluster?.start(NODE);
    }
    await waitReady(IP, (s) => s === "True");
    expect((await kstatus(IP)).status).toBe("Current");
  });

  it("reads a refused policy as Failed (a Stalled condition), not as forever InProgress", async () => {
    // Rejecting the pause image would lock every node out; a key in a Secret that does not exist
    // cannot be published: the controller refuses both.
    const refused: Ref[] = [
      ["clusterimagepolicy", "reject-pause"],
      ["imagepolicy", "missing-key", "team-a"],
    ];
    await kubectl(
      ["apply", "-f", "-"],
      policy("ClusterImagePolicy", "reject-pause", ["registry.k8s.io/pause"]),
    );
    await kubectl(
      ["apply", "-f", "-"],
      policy("ImagePolicy", "missing-key", ["registry.example.com/signed"], "team-a", {
        rootOfTrust: {
          policyType: "PublicKey",
          publicKey: { keySecretRef: { name: "no-such-secret", key: "cosign.pub" } },
        },
      }),
    );
    for (const ref of refused) {
      await waitReady(ref, (s) => s === "False");
      const o = statusSchema.parse(JSON.parse(await get(ref)));
      expect(o.status?.conditions?.find((c) => c.type === "Compiled")?.status, ref.join(" ")).toBe(
        "False",
      );
      expect(await kstatus(ref), ref.join(" ")).toMatchObject({ status: "Failed" });
    }
  });
});

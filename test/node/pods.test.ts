// Issue 8: the product as a user installs it, on a real node of this machine. kubelet + CRI-O +
// kube-proxy + CNI (test/support/node.ts) join a local control plane; the operator image, built
// without Docker and signed, runs the SHIPPED manifests (config/default through an overlay that
// only sets the image) under the kubelet; the CRI-O drop-in goes in after the agent wrote
// cluster.json (docs/install.md); then real pods are refused and admitted by CRI-O because of the
// files the real agent pod wrote.
//
// The crictl-level suite (test/e2e) stays where it tests what pods cannot reach (a second,
// non-enforcing agent, parse errors under continuous rewrites, container-creation re-checks).
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  installOperator,
  OPERATOR_NAMESPACE,
  OPERATOR_PODS,
  startLocalCluster,
  type InstallTimings,
  type LocalCluster,
} from "../support/localCluster.ts";
import {
  cip,
  createPolicyHarness,
  ip,
  policy,
  policyObjectSchema,
  publicKey,
  type NodeStatus,
  type PolicyHarness,
  type RootOfTrust,
} from "../support/policyHarness.ts";
import { waitFor } from "../support/waitFor.ts";
import { sleeperDeployment, sleeperPod } from "../support/workloads.ts";

class NodeSuiteError extends Error {
  override readonly name = "NodeSuiteError";
}

let cluster: LocalCluster | undefined;
let timings: InstallTimings | undefined;
const started = Date.now();
/** Case -> the kubelet's Event text for a refused pull (printed at the end). */
const refusals = new Map<string, string>();
const latencies: number[] = [];

function c(): LocalCluster {
  if (cluster === undefined) throw new NodeSuiteError("the local cluster did not start");
  return cluster;
}

const R = (): string => c().images.registry.host;
const app = (name: "signed" | "signed-b" | "unsigned" | "cosigned"): string =>
  c().images.apps[`apps/${name}:v1`];

// ---------------------------------------------------------------------------------------------
// Objects

const key = (k: "a" | "b" | "cosign"): RootOfTrust => publicKey(c().images.keys[k]);
const apps = (): string => `${R()}/apps`;

let harness: PolicyHarness | undefined;
function h(): PolicyHarness {
  if (harness === undefined) throw new NodeSuiteError("the local cluster did not start");
  return harness;
}

/** The node's ImagePolicyNodeStatus (it exists once the operator is installed). */
async function nodeStatus(): Promise<NodeStatus> {
  const st = await h().nodeStatus();
  if (st === undefined) throw new NodeSuiteError(`no ImagePolicyNodeStatus ${c().node.name}`);
  return st;
}

/** Waits until the node's agent reports exactly the published revisions again. */
async function nodeConverged(what: string): Promise<void> {
  await h().waitFor(`the node to apply ${what}`, async () =>
    (await h().converged([], [])) ? true : undefined,
  );
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster

const containerStateSchema = z.looseObject({
  waiting: z
    .looseObject({ reason: z.string().optional(), message: z.string().optional() })
    .optional(),
  running: z.looseObject({}).optional(),
});
const podSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), uid: z.string() }),
  spec: z.looseObject({ nodeName: z.string().optional() }),
  status: z.looseObject({
    phase: z.string().optional(),
    containerStatuses: z
      .array(
        z.looseObject({
          name: z.string(),
          ready: z.boolean(),
          restartCount: z.number(),
          image: z.string(),
          imageID: z.string().optional(),
          containerID: z.string().optional(),
          state: containerStateSchema,
        }),
      )
      .optional(),
  }),
});
type Pod = z.infer<typeof podSchema>;
const podListSchema = z.looseObject({ items: z.array(podSchema) });
const eventListSchema = z.looseObject({
  items: z.array(
    z.looseObject({
      reason: z.string().optional(),
      message: z.string().optional(),
      type: z.string().optional(),
    }),
  ),
});
async function getJson<T>(schema: z.ZodType<T>, args: readonly string[]): Promise<T> {
  return schema.parse(JSON.parse(await c().kubectl([...args, "-o", "json"])));
}

async function podsOf(namespace: string, selector: string): Promise<Pod[]> {
  return (await getJson(podListSchema, ["get", "pods", "-n", namespace, "-l", selector])).items;
}

type Outcome =
  | { readonly kind: "running"; readonly pod: Pod }
  | {
      readonly kind: "refused";
      readonly pod: Pod;
      readonly reason: string;
      readonly message: string;
    };

/** Waits until the pod's container runs (Ready) or waits in ErrImagePull/ImagePullBackOff. */
async function outcome(namespace: string, podName: string): Promise<Outcome> {
  return waitFor(
    `pod ${namespace}/${podName} to run or fail its pull`,
    async () => {
      const pod = await getJson(podSchema, ["get", "pod", "-n", namespace, podName]);
      const cs = pod.status.containerStatuses?.[0];
      if (cs === undefined) return undefined;
      if (cs.state.running !== undefined && cs.ready) return { kind: "running", pod } as const;
      const reason = cs.state.waiting?.reason;
      if (reason === "ErrImagePull" || reason === "ImagePullBackOff") {
        return { kind: "refused", pod, reason, message: cs.state.waiting?.message ?? "" } as const;
      }
      return undefined;
    },
    { timeoutMs: 180_000, intervalMs: 500, context: () => c().diagnostics() },
  );
}

/** The single pod of a one-replica Deployment (the newest, when a rollout replaced one). */
async function deploymentPod(namespace: string, name: string): Promise<string> {
  return waitFor(`a pod of ${namespace}/${name}`, async () => {
    const pods = await podsOf(namespace, `app=${name}`);
    return pods.at(-1)?.metadata.name;
  });
}

/** The kubelet's `Failed` Events of a pod (the pull errors CRI-O returned). */
async function failedEvents(namespace: string, pod: string): Promise<string[]> {
  const list = await getJson(eventListSchema, [
    "get",
    "events",
    "-n",
    namespace,
    "--field-selector",
    `involvedObject.kind=Pod,involvedObject.name=${pod}`,
  ]);
  return list.items.filter((e) => e.reason === "Failed").map((e) => e.message ?? "");
}

async function expectRefused(
  label: string,
  namespace: string,
  pod: string,
  reason: RegExp,
): Promise<string> {
  const o = await outcome(namespace, pod);
  expect(o.kind, `${namespace}/${pod} should not run`).toBe("refused");
  const events = await waitFor(`a Failed Event for ${namespace}/${pod}`, async () => {
    const e = await failedEvents(namespace, pod);
    return e.some((m) => reason.test(m)) ? e : undefined;
  });
  const text = events.find((m) => reason.test(m)) ?? "";
  refusals.set(label, text);
  return text;
}

async function expectRunning(namespace: string, pod: string): Promise<Pod> {
  const o = await outcome(namespace, pod);
  if (o.kind !== "running") {
    throw new NodeSuiteError(
      `${namespace}/${pod} was refused: ${o.reason} ${o.message}\n${(await failedEvents(namespace, pod)).join("\n")}`,
    );
  }
  return o.pod;
}

/** A bare Pod (no controller): one attempt. */
async function createPod(namespace: string, name: string, image: string): Promise<string> {
  await c().kubectl(["apply", "-f", "-"], sleeperPod(namespace, name, image));
  return name;
}

interface FileFacts {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly bytes: string;
}

async function fileFacts(nodePaths: readonly string[]): Promise<Record<string, FileFacts>> {
  const out: Record<string, FileFacts> = {};
  for (const p of nodePaths) {
    const file = c().node.hostPath(p);
    const st = await stat(file);
    out[p] = { ino: st.ino, mtimeMs: st.mtimeMs, bytes: await readFile(file, "utf8") };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-node-"));
  const log = (line: string): void => {
    console.info(`[node ${String(Math.round((Date.now() - started) / 1000))} s] ${line}`);
  };
  try {
    cluster = await startLocalCluster({ dir, log });
    timings = await installOperator(cluster, log);
  } catch (error) {
    await cluster?.stop();
    cluster = undefined;
    throw new NodeSuiteError("the local cluster or the operator did not come up", {
      cause: error,
    });
  }
  harness = createPolicyHarness({
    kubectl: (args, stdin) => c().kubectl(args, stdin),
    node: c().node.name,
    diagnostics: () => c().diagnostics(),
    timeoutMs: 120_000,
  });
  for (const ns of ["team-a", "team-b"]) await c().kubectl(["create", "namespace", ns]);
  // The ServiceAccount admission plugin needs each namespace's `default` ServiceAccount.
  for (const ns of ["team-a", "team-b"]) {
    await waitFor(`${ns}/default ServiceAccount`, async () =>
      (await c().cp.kubectl(["get", "serviceaccount", "default", "-n", ns])).code === 0
        ? true
        : undefined,
    );
  }
  log(
    `operator installed: rollout ${String(timings.rolloutMs)} ms, cluster.json ${String(timings.clusterJsonMs)} ms, ` +
      `drop-in + CRI-O restart -> enforcing ${String(timings.enforcingMs)} ms; node ${c().node.name}: ` +
      `kubelet ${c().node.kubeletVersion}, CRI-O ${c().node.crioVersion}`,
  );
}, 3_600_000);

afterAll(async () => {
  if (cluster !== undefined) {
    console.info(
      [
        `node suite wall time ${String(Math.round((Date.now() - started) / 1000))} s`,
        latencies.length === 0
          ? ""
          : `kubectl apply -> next pod's outcome changed: ${latencies.map((l) => `${String(l)} ms`).join(", ")}`,
        "Events of refused pods (kubelet, from CRI-O):",
        ...[...refusals].map(([label, text]) => `  ${label}: ${text}`),
      ].join("\n"),
    );
    const keep = process.env["IMAGEPOLICY_KEEP_NODE"] !== undefined;
    await cluster.stop();
    if (!keep) await rm(cluster.dir, { recursive: true, force: true });
  }
});

const NO_SIGNATURE = /A signature was required, but no signature exists/;

describe("the shipped manifests on a real kubelet + CRI-O node", () => {
  it("runs the controller and the agent as pods of the operator image, the agent enforcing", async () => {
    const pods = await podsOf(OPERATOR_NAMESPACE, OPERATOR_PODS);
    const byComponent = (name: string): Pod[] =>
      pods.filter((p) => p.metadata.name.startsWith(name));
    expect(byComponent("imagepolicy-controller-")).toHaveLength(2);
    expect(byComponent("imagepolicy-agent-")).toHaveLength(1);
    for (const pod of pods) {
      expect(pod.spec.nodeName).toBe(c().node.name);
      const cs = pod.status.containerStatuses?.[0];
      expect(cs?.ready, `${pod.metadata.name} ready`).toBe(true);
      expect(cs?.imageID ?? "").toContain(c().images.operator.split("@")[1] ?? "no digest");
    }
    const st = await nodeStatus();
    expect(st.spec?.nodeName).toBe(c().node.name);
    expect(st.status?.enforcing).toBe(true);
    expect(st.status?.enforcingReason).toContain("/etc/crio/imagepolicy/cluster.json");
    expect(st.status?.runtime?.version).toBe(c().node.crioVersion);
    // The files the agent pod wrote through its hostPath mounts, where CRI-O reads them.
    const clusterJson = await readFile(
      c().node.hostPath("/etc/crio/imagepolicy/cluster.json"),
      "utf8",
    );
    expect(JSON.parse(clusterJson)).toHaveProperty("default");
    // CRI-O reads them: its effective configuration carries the drop-in.
    const dropIn = await readFile(
      c().node.hostPath("/etc/crio/crio.conf.d/10-imagepolicy.conf"),
      "utf8",
    );
    expect(dropIn).toContain('signature_policy = "/etc/crio/imagepolicy/cluster.json"');
    // The image's malloc_trim addon loads in the agent container (src/agent/mallocTrim.ts): the
    // agent's log, as the kubelet wrote it under /var/log/pods.
    const logs = c().node.hostPath("/var/log/pods");
    const agentLogs = (await readdir(logs)).filter((d) =>
      d.startsWith(`${OPERATOR_NAMESPACE}_imagepolicy-agent-`),
    );
    expect(agentLogs).toHaveLength(1);
    const agentDir = path.join(logs, agentLogs[0] ?? "", "agent");
    const agentLog = (
      await Promise.all(
        (await readdir(agentDir)).map((f) => readFile(path.join(agentDir, f), "utf8")),
      )
    ).join("");
    expect(agentLog).toContain('"msg":"malloc_trim available"');
    expect(agentLog).toContain('"addon":"/app/native/malloc-trim.node"');
    expect(agentLog).not.toContain("malloc_trim unavailable");
    // system-node-critical: the kubelet asked oom_score_adj -997 for the agent; see
    // docs/local-node.md for why the node's runc raised it.
    const oom = await readFile(path.join(c().dir, "node/logs/runc-oom-floor.log"), "utf8").catch(
      () => "",
    );
    console.info(`oom_score_adj raised by the node's runc wrapper:\n${oom.trim()}`);
  });

  it("keeps an unsigned image of team-a in ErrImagePull/ImagePullBackOff, with CRI-O's reason in its Events", async () => {
    await h().applyAndWait(policy(cip("apps-signed-by-a"), [apps()], key("a")));
    await c().kubectl(
      ["apply", "-f", "-"],
      sleeperDeployment("team-a", "unsigned", app("unsigned")),
    );
    const pod = await deploymentPod("team-a", "unsigned");
    const text = await expectRefused("team-a unsigned Deployment", "team-a", pod, NO_SIGNATURE);
    expect(text).toContain(app("unsigned"));
    // The controller explains the refusal on the pod and in an ImagePullRefusal (docs/explain.md).
    const note = await waitFor(
      `an ImagePolicyRefused Event on team-a/${pod}`,
      async () => {
        const out = await c().kubectl([
          "get",
          "events.v1.events.k8s.io",
          "-n",
          "team-a",
          "--field-selector",
          `regarding.name=${pod},reason=ImagePolicyRefused`,
          "-o",
          "jsonpath={.items[0].note}",
        ]);
        return out === "" ? undefined : out;
      },
      { timeoutMs: 60_000 },
    );
    expect(note).toMatch(
      /refused by the cluster layer \(ClusterImagePolicies\): scope \S+ of ClusterImagePolicy\/apps-signed-by-a\./,
    );
    const explained = await c().kubectl([
      "get",
      "imagepullrefusals",
      "-n",
      "team-a",
      "-o",
      `jsonpath={.items[?(@.spec.podName=="${pod}")].status.decidingLayer}`,
    ]);
    expect(explained).toBe("Cluster");
    // It stays refused: a later look still finds it waiting on the pull, never running.
    const later = await outcome("team-a", pod);
    expect(later.kind).toBe("refused");
    const d = z
      .looseObject({ status: z.looseObject({ availableReplicas: z.number().optional() }) })
      .parse(
        JSON.parse(
          await c().kubectl(["get", "deployment", "unsigned", "-n", "team-a", "-o", "json"]),
        ),
      );
    expect(d.status.availableReplicas ?? 0).toBe(0);
  });

  it("runs the image signed with key A", async () => {
    await c().kubectl(["apply", "-f", "-"], sleeperDeployment("team-a", "signed", app("signed")));
    const pod = await expectRunning("team-a", await deploymentPod("team-a", "signed"));
    expect(pod.status.containerStatuses?.[0]?.image).toBe(app("signed"));
  });

  it("an ImagePolicy in team-b tightens only team-b", async () => {
    await h().applyAndWait(policy(ip("team-b", "require-b"), [apps()], key("b")));
    expect(await readFile(c().node.hostPath("/etc/crio/policies/team-b.json"), "utf8")).toContain(
      "sigstoreSigned",
    );
    await createPod("team-b", "signed-in-b", app("signed"));
    await expectRefused(
      "key A only, team-b requires key B too",
      "team-b",
      "signed-in-b",
      /SignatureValidationFailed: .*Source image rejected: cryptographic signature verification failed/,
    );
    await createPod("team-a", "signed-in-a", app("signed"));
    await expectRunning("team-a", "signed-in-a");
  });

  it("a policy change takes effect for the next pod, without restarting CRI-O or the kubelet", async () => {
    const pids = c().node.pids();
    // Loosen team-b: delete its ImagePolicy; the next pod there runs.
    let start = Date.now();
    await h().deleteAndWait(ip("team-b", "require-b"));
    await createPod("team-b", "signed-in-b-2", app("signed"));
    await expectRunning("team-b", "signed-in-b-2");
    latencies.push(Date.now() - start);
    // Tighten the cluster: the next pod in team-a is refused, the running one keeps running.
    start = Date.now();
    await h().applyAndWait(policy(cip("apps-signed-by-a"), [apps()], key("b")));
    await createPod("team-a", "signed-in-a-2", app("signed"));
    await expectRefused(
      "cluster now requires key B",
      "team-a",
      "signed-in-a-2",
      /SignatureValidationFailed: .*Source image rejected: cryptographic signature verification failed/,
    );
    latencies.push(Date.now() - start);
    await expectRunning("team-a", "signed-in-a");
    await createPod("team-a", "signed-b-in-a", app("signed-b"));
    await expectRunning("team-a", "signed-b-in-a");
    await h().applyAndWait(policy(cip("apps-signed-by-a"), [apps()], key("a")));
    expect(c().node.pids()).toEqual(pids);
  });

  it("kill -9 of the agent container keeps enforcement; the DaemonSet brings the agent back with no file rewritten", async () => {
    await h().applyAndWait(policy(ip("team-b", "require-a"), [apps()], key("a")));
    const files = [
      "/etc/crio/imagepolicy/cluster.json",
      "/etc/crio/policies/team-b.json",
      "/etc/containers/registries.d/imagepolicy.yaml",
    ];
    const before = await fileFacts(files);
    const agentPods = async (): Promise<Pod[]> =>
      podsOf(OPERATOR_NAMESPACE, "app.kubernetes.io/name=imagepolicy-agent");
    const [agent] = await agentPods();
    if (agent === undefined) throw new NodeSuiteError("no agent pod");
    const restarts = agent.status.containerStatuses?.[0]?.restartCount ?? 0;

    // kill -9 of the agent's process, found through CRI-O.
    const id = (await c().node.crictl(["ps", "--name", "^agent$", "-q"])).stdout.trim();
    const inspect = z
      .looseObject({ info: z.looseObject({ pid: z.number() }) })
      .parse(JSON.parse((await c().node.crictl(["inspect", id])).stdout));
    process.kill(inspect.info.pid, "SIGKILL");
    // While the agent is down the files stay in force.
    await createPod("team-a", "unsigned-agent-down", app("unsigned"));
    await expectRefused(
      "unsigned while the agent restarts",
      "team-a",
      "unsigned-agent-down",
      NO_SIGNATURE,
    );
    await waitFor(
      "the agent container restarted and ready",
      async () => {
        const cs = (await agentPods())[0]?.status.containerStatuses?.[0];
        return cs !== undefined && cs.restartCount > restarts && cs.ready ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, context: () => c().diagnostics() },
    );
    await nodeConverged("the same revisions after the agent restarted");
    expect(await fileFacts(files)).toEqual(before);

    // Deleting the pod: the DaemonSet creates a new one, which rewrites nothing either.
    await c().kubectl([
      "delete",
      "pod",
      "-n",
      OPERATOR_NAMESPACE,
      agent.metadata.name,
      "--wait=false",
    ]);
    await createPod("team-a", "unsigned-agent-gone", app("unsigned"));
    await expectRefused(
      "unsigned while the agent pod is replaced",
      "team-a",
      "unsigned-agent-gone",
      NO_SIGNATURE,
    );
    await waitFor(
      "a new agent pod, ready",
      async () => {
        const pods = await agentPods();
        const fresh = pods.find((p) => p.metadata.uid !== agent.metadata.uid);
        return fresh?.status.containerStatuses?.[0]?.ready === true ? fresh : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 500, context: () => c().diagnostics() },
    );
    await nodeConverged("the same revisions after the agent pod was replaced");
    expect(await fileFacts(files)).toEqual(before);
    expect((await nodeStatus()).status?.enforcing).toBe(true);
  });

  it("shows the policies Ready=True with Rollout 1/1", async () => {
    const refs: [string, string[]][] = [
      ["apps-signed-by-a", ["get", "clusterimagepolicy", "apps-signed-by-a"]],
      ["team-b/require-a", ["get", "imagepolicy", "require-a", "-n", "team-b"]],
    ];
    for (const [label, args] of refs) {
      const o = await waitFor(
        `${label} Ready=True, rollout 1/1`,
        async () => {
          const p = await getJson(policyObjectSchema, args);
          const ready = p.status?.conditions?.find((x) => x.type === "Ready");
          return ready?.status === "True" && p.status?.rollout?.display === "1/1" ? p : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500, context: () => c().diagnostics() },
      );
      expect(o.status?.observedGeneration).toBe(o.metadata.generation);
    }
    console.info(await c().kubectl(["get", "clusterimagepolicies,imagepolicies", "-A"]));
  });
});

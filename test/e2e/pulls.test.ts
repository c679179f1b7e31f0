// Issue 4, end to end: kubectl applies ClusterImagePolicies and ImagePolicies to a real control
// plane (kube-apiserver + etcd + kube-controller-manager, config/default installed), the controller
// and two agents run as child processes with their own ServiceAccounts, and a real CRI-O pulls
// from the local registry of test/evaluator/globalSetup.ts under the files the agent of node
// `e2e-node` writes.
//
// The cases are DATA (test/e2e/cases.ts), run here and on a kind node (hack/kind-e2e.sh) by
// test/support/pullRunner.ts; the harness (apply, wait until the node applied, CRI-O's reasons) is
// test/support/policyHarness.ts. What only local processes can show stays here as code: pulls
// during continuous rewrites (with the agent's metrics), the re-check at container creation, and a
// second, non-enforcing node.
//
// Install order as docs/install.md says: the agent writes cluster.json first, only then is CRI-O
// started with signature_policy pointing at it. One CRI-O process serves the whole suite.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { startCrio, type Crio } from "../support/crio.ts";
import type { ImageName } from "../evaluator/environment.ts";
import {
  freePort,
  startOperatorProcess,
  type OperatorProcess,
} from "../support/operatorProcess.ts";
import {
  acceptAnything,
  cip,
  createPolicyHarness,
  crioReason,
  ip,
  policy,
  POLICY_PARSE_ERROR,
  publicKey,
  reject,
  type PolicyHarness,
  type RootOfTrust,
} from "../support/policyHarness.ts";
import { newCaseRecord, runPullCase, type PullEnvironment } from "../support/pullRunner.ts";
import { pullCases } from "./cases.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const NODE = "e2e-node";
const NODE2 = "e2e-node-2";
const CLUSTER_JSON = "etc/crio/imagepolicy/cluster.json";
const POLICY_DIR = "etc/crio/policies";
const REGISTRIES_D = "etc/containers/registries.d";

const env = inject("evaluator");
const R = env.registry;
const image = (name: ImageName): string => env.images[name];
const OPERATOR_IMAGE = `${R}/base/operator:v1`;
const PAUSE_IMAGE = image("base/pause:3.10");

class PullsSetupError extends Error {
  override readonly name = "PullsSetupError";
}

const key = (k: "a" | "b" | "c" | "cosign"): RootOfTrust => publicKey(env.keys[k]);

interface Suite {
  readonly dir: string;
  readonly root: string;
  readonly root2: string;
  readonly cp: ControlPlane;
  readonly harness: PolicyHarness;
  readonly controller: OperatorProcess;
  readonly agents: readonly OperatorProcess[];
  readonly agentMetricsPort: number;
  readonly crio: Crio;
  readonly crioPid: number;
  readonly started: number;
}

let suite: Suite | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
/** CRI-O's refusal texts and the apply -> pull latencies, printed at the end. */
const record = newCaseRecord();

function s(): Suite {
  if (suite === undefined) throw new PullsSetupError("the suite did not set up");
  return suite;
}

async function kubectl(args: readonly string[], stdin?: string): Promise<string> {
  const r = await s().cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new PullsSetupError(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function diagnostics(): Promise<string> {
  const parts = await Promise.all([
    s().controller.logTail(),
    ...s().agents.map((a) => a.logTail(15)),
    s().crio.logTail(15),
  ]);
  return parts.join("\n");
}

async function pull(ref: string, namespace?: string): Promise<{ ok: boolean; output: string }> {
  const r = await s().crio.pull(ref, namespace === undefined ? {} : { namespace });
  // Whatever the verdict, CRI-O must never have failed to read a policy file.
  expect(r.output).not.toMatch(POLICY_PARSE_ERROR);
  return r;
}

/** The pid of the crio process started with `configFile` (found through /proc). */
function crioPidOf(configFile: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const exe = readlinkSync(`/proc/${entry}/exe`);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (path.basename(exe) === "crio" && cmdline.includes(configFile)) return Number(entry);
    } catch {
      // the process went away, or is not ours to read
    }
  }
  throw new PullsSetupError(`no crio process runs with ${configFile}`);
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m?.[1] !== undefined) sum += Number(m[1]);
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  const started = Date.now();
  const dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-e2e-pulls-"));
  cleanups.push(async () => {
    if (process.env["IMAGEPOLICY_KEEP_E2E"] === undefined) {
      await rm(dir, { recursive: true, force: true });
    }
  });
  const root = path.join(dir, "node");
  const root2 = path.join(dir, "node-2");
  // CRI-O's state, socket included, lives under the first node's root, where its agent's
  // --crio-socket finds it; the second node reaches the same socket through a symlink.
  const crioDir = path.join(root, "var/run/crio");
  await mkdir(crioDir, { recursive: true });
  await mkdir(path.join(root2, "var/run"), { recursive: true });
  await symlink(crioDir, path.join(root2, "var/run/crio"));

  // 1. Control plane, CRDs, then the operator's manifests.
  const cp = await startControlPlane({ dir: path.join(dir, "cp"), crdDir: "crds" });
  cleanups.push(() => cp.stop());
  const must = async (args: readonly string[], stdin?: string): Promise<string> => {
    const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
    if (r.code !== 0) throw new PullsSetupError(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  await must(["apply", "--server-side", "-k", path.join(repoRoot, "config/default")]);
  for (const ns of ["team-a", "team-b"]) await must(["create", "namespace", ns]);

  // 2. The Nodes, running the CRI-O this suite starts (its version from the binary).
  const crioBin =
    execFileSync(path.join(repoRoot, "hack/tools/crio.sh"), { encoding: "utf8" })
      .trim()
      .split("\n")
      .at(-1) ?? "";
  const crioVersionText = /crio version (\S+)/.exec(
    execFileSync(path.join(crioBin, "crio"), ["--version"], { encoding: "utf8" }),
  )?.[1];
  if (crioVersionText === undefined) throw new PullsSetupError("cannot read crio --version");
  for (const node of [NODE, NODE2]) {
    await cp.registerNode(node, `cri-o://${crioVersionText}`);
  }

  // 3. The controller and the two agents, each with its ServiceAccount's token.
  const controllerKubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller");
  const healthPort = await freePort();
  const controller = startOperatorProcess(
    "controller",
    "controller",
    [
      `--kubeconfig=${controllerKubeconfig}`,
      `--namespace=${NS}`,
      `--operator-image=${OPERATOR_IMAGE}`,
      `--pause-image=${PAUSE_IMAGE}`,
      "--identity=e2e-controller",
      `--metrics-addr=127.0.0.1:${String(await freePort())}`,
      `--health-addr=127.0.0.1:${String(healthPort)}`,
    ],
    path.join(dir, "controller.log"),
  );
  cleanups.push(() => controller.stop());
  const agentMetricsPort = await freePort();
  const agents: OperatorProcess[] = [];
  for (const [node, nodeRoot, metricsPort] of [
    [NODE, root, agentMetricsPort],
    [NODE2, root2, await freePort()],
  ] as const) {
    const kubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-agent", {
      boundNode: node,
    });
    const agent = startOperatorProcess(
      `agent ${node}`,
      "agent",
      [
        `--kubeconfig=${kubeconfig}`,
        `--namespace=${NS}`,
        `--node-name=${node}`,
        // Every path is given as CRI-O (on this machine) sees it, under the node's directory:
        // the policy files name key files by such paths (src/agent/keyFiles.ts).
        "--root=/",
        `--policy-path=${path.join(nodeRoot, CLUSTER_JSON)}`,
        `--policy-dir=${path.join(nodeRoot, POLICY_DIR)}`,
        `--registries-d=${path.join(nodeRoot, REGISTRIES_D)}`,
        `--system-registries-d=${path.join(nodeRoot, "usr/share/containers/registries.d")}`,
        `--registries-conf=${path.join(nodeRoot, "etc/containers/registries.conf")}`,
        `--crio-socket=${path.join(nodeRoot, "var/run/crio/crio.sock")}`,
        "--probe-interval=1",
        `--metrics-addr=127.0.0.1:${String(metricsPort)}`,
        `--health-addr=127.0.0.1:${String(await freePort())}`,
      ],
      path.join(dir, `agent-${node}.log`),
    );
    cleanups.push(() => agent.stop());
    agents.push(agent);
  }
  const diag = async (): Promise<string> =>
    (await Promise.all([controller.logTail(), ...agents.map((a) => a.logTail())])).join("\n");
  const harness = createPolicyHarness({
    kubectl: must,
    node: NODE,
    // Once the suite is set up, CRI-O's log too.
    diagnostics: () => (suite === undefined ? diag() : diagnostics()),
  });
  const partial = { dir, root, root2, cp, harness, controller, agents, agentMetricsPort, started };

  // 4. Install order: wait until this node's agent wrote cluster.json at the published revision,
  // THEN point CRI-O at it.
  const clusterJson = path.join(root, CLUSTER_JSON);
  await harness.waitFor(`the agent of ${NODE} to write ${clusterJson}`, async () => {
    const written = await stat(clusterJson).then(
      () => true,
      () => false,
    );
    return written && (await harness.converged([], [])) ? true : undefined;
  });
  await mkdir(path.join(root, REGISTRIES_D), { recursive: true });
  const crio = await startCrio({
    dir: crioDir,
    signaturePolicy: clusterJson,
    signaturePolicyDir: path.join(root, POLICY_DIR),
    registriesDDir: path.join(root, REGISTRIES_D),
    insecureRegistries: [env.registry, env.registryLocalhost],
    pauseImage: PAUSE_IMAGE,
  });
  cleanups.push(() => crio.stop());
  const crioPid = crioPidOf(path.join(crioDir, "crio.conf"));
  suite = { ...partial, crio, crioPid };
  const crictlVersion = (await crio.crictl(["--version"])).stdout.trim();
  console.info(
    `e2e pulls: set up in ${String(Date.now() - started)} ms; CRI-O ${crio.version} (pid ${String(crioPid)}), ${crictlVersion}, ` +
      `Kubernetes ${cp.kubernetesVersion}, registry ${R}`,
  );
}, 3_600_000);

afterAll(async () => {
  if (suite !== undefined) {
    const sorted = [...record.latencies].sort((a, b) => a - b);
    console.info(
      [
        `e2e pulls: suite wall time ${String(Date.now() - suite.started)} ms`,
        sorted.length === 0
          ? "no apply -> pull latency measured"
          : `kubectl apply -> pull result changed: median ${String(sorted[Math.floor(sorted.length / 2)])} ms, ` +
            `min ${String(sorted[0])} ms, max ${String(sorted.at(-1))} ms over ${String(sorted.length)} changes`,
        "CRI-O refusal texts:",
        ...[...record.refusals].map(([label, text]) => `  ${label}: ${text}`),
      ].join("\n"),
    );
  }
  for (const cleanup of cleanups.reverse()) {
    await cleanup().catch((err: unknown) => {
      console.warn(`cleanup failed: ${String(err)}`);
    });
  }
});

describe("CRI-O pulls under policies applied with kubectl", () => {
  it("runs CRI-O on the agent's files, installed after cluster.json existed", async () => {
    const config = await s().crio.configInfo();
    expect(config).toContain(`signature_policy = "${path.join(s().root, CLUSTER_JSON)}"`);
    expect(config).toContain(`signature_policy_dir = "${path.join(s().root, POLICY_DIR)}"`);
    const r = await pull(image("unsigned/app:v1"));
    expect(r.ok, r.output).toBe(true);
  });

  // The shared cases (test/e2e/cases.ts), in order.
  const pullEnvironment = (): PullEnvironment => ({
    harness: s().harness,
    pull: (ref, namespace) => pull(ref, namespace),
    image,
    registry: R,
    systemScopes: [`${R}/base/pause`, `${R}/base/operator`],
    keys: env.keys,
    namespaceFileExists: (namespace) =>
      stat(path.join(s().root, POLICY_DIR, `${namespace}.json`)).then(
        () => true,
        () => false,
      ),
  });
  for (const c of pullCases) {
    it(c.name, async () => {
      await runPullCase(pullEnvironment(), c, record);
    });
  }

  it("kept the same CRI-O process through every policy change", () => {
    expect(crioPidOf(path.join(s().root, "var/run/crio/crio.conf"))).toBe(s().crioPid);
  });

  it("pulls never fail on a parse error while the agent rewrites the files", async () => {
    // A namespace file too, so both files are rewritten on every cluster change.
    await s().harness.applyAndWait(policy(ip("team-b", "also-a"), [`${R}/signed/app`], key("a")));
    const writesBefore = await metric(
      s().agentMetricsPort,
      "imagepolicy_agent_files_written_total",
    );
    const loop = { stop: false };
    let toggles = 0;
    const toggler = (async () => {
      while (!loop.stop) {
        const rootOfTrust = toggles % 2 === 0 ? reject : acceptAnything;
        await kubectl(
          ["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
          policy(cip("unrelated"), ["unrelated.example.com"], rootOfTrust),
        );
        toggles += 1;
      }
    })();
    const failures: string[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const r = await pull(image("signed/app:v1"), i % 2 === 0 ? undefined : "team-b");
        if (!r.ok) failures.push(r.output);
      }
    } finally {
      loop.stop = true;
      await toggler;
    }
    await s().harness.deleteAndWait(cip("unrelated"));
    const writes =
      (await metric(s().agentMetricsPort, "imagepolicy_agent_files_written_total")) - writesBefore;
    console.info(
      `30 pulls during ${String(toggles)} policy toggles, ${String(writes)} file writes`,
    );
    expect(failures).toEqual([]);
    expect(toggles).toBeGreaterThanOrEqual(10);
    expect(writes).toBeGreaterThanOrEqual(10);
    expect(await readFile(s().crio.logFile, "utf8")).not.toMatch(POLICY_PARSE_ERROR);
  });

  it("re-checks at container creation: an image pulled without namespace is refused in team-a", async () => {
    const ref = image("signed/app:v1");
    await s().harness.applyAndWait(policy(ip("team-a", "no-signed"), [`${R}/signed`], reject));
    const mustCrictl = async (args: readonly string[]): Promise<string> => {
      const r = await s().crio.crictl(args);
      if (r.code !== 0) {
        throw new PullsSetupError(`crictl ${args.join(" ")}: ${r.stderr}${r.stdout}`);
      }
      return r.stdout.trim();
    };
    await mustCrictl(["pull", ref]);
    await mustCrictl(["pull", PAUSE_IMAGE]);
    const containerConfig = path.join(s().dir, "container.json");
    await writeFile(
      containerConfig,
      JSON.stringify({
        metadata: { name: "app" },
        image: { image: ref, user_specified_image: ref },
        command: ["/bin/true"],
        log_path: "app.log",
        linux: { security_context: { namespace_options: { network: 2, pid: 1 } } },
      }),
    );
    const create = async (namespace: string) => {
      const pod = await s().crio.podConfig(`pod-${namespace}`, namespace);
      const podId = await mustCrictl(["runp", pod]);
      return s().crio.crictl(["create", podId, containerConfig, pod]);
    };
    try {
      const refused = await create("team-a");
      expect(refused.code).not.toBe(0);
      const reason = crioReason(`${refused.stderr}${refused.stdout}`);
      expect(reason).toMatch(/rejected by policy/);
      record.refusals.set(
        "container create in team-a (image present, pulled without namespace)",
        reason,
      );
      // In team-b the policy check passes and the creation reaches runc, which then fails: the
      // fixture images hold no executable (their /bin/true does not exist). That is past the
      // policy: what matters here is that it was not refused by it.
      const passed = await create("team-b");
      const passedOutput = `${passed.stderr}${passed.stdout}`;
      expect(passedOutput).not.toMatch(/checking signature|SignatureValidationFailed/);
      if (passed.code !== 0) expect(passedOutput).toMatch(/runc create failed/);
    } finally {
      await s().crio.crictl(["rmp", "--all", "--force"]);
      await s().crio.crictl(["rmi", ref]);
    }
    await s().harness.deleteAndWait(ip("team-a", "no-signed"));
  });

  it("reports enforcement it can trust: 1 of 2 nodes covered", async () => {
    const first = await s().harness.waitFor("e2e-node enforcing", async () => {
      const st = await s().harness.nodeStatus(NODE);
      return st?.status?.enforcing === true ? st : undefined;
    });
    expect(first.status?.enforcingReason).toContain(`reads ${path.join(s().root, CLUSTER_JSON)}`);
    const second = await s().harness.waitFor("e2e-node-2 not enforcing", async () => {
      const st = await s().harness.nodeStatus(NODE2);
      return st?.status?.enforcing === false && st.status.enforcingReason !== "" ? st : undefined;
    });
    expect(second.status?.enforcingReason).toBe(
      `CRI-O's signature_policy is ${path.join(s().root, CLUSTER_JSON)}, not ${path.join(s().root2, CLUSTER_JSON)}`,
    );
    console.info(`${NODE2}: enforcing false: ${second.status?.enforcingReason ?? ""}`);
    const rollout = await s().harness.waitFor("rollout 1/2", async () => {
      const o = await s().harness.policyObject(cip("signed-by-a"));
      const r = o?.status?.rollout;
      return r !== undefined && r["nodesApplied"] === 2 ? r : undefined;
    });
    const conditions =
      (await s().harness.policyObject(cip("signed-by-a")))?.status?.conditions ?? [];
    console.info(
      `signed-by-a: rollout ${JSON.stringify(rollout)}; conditions ${JSON.stringify(conditions)}`,
    );
    expect(rollout).toMatchObject({
      nodesApplied: 2,
      nodesEnforcing: 1,
      nodesTotal: 2,
      display: "1/2",
    });
    // Applied on both nodes, but not in force on the node whose CRI-O ignores the files.
    const ready = conditions.find((c) => c.type === "Ready");
    expect(ready?.status).toBe("False");
    expect(ready?.reason).toBe("NotEnforcing");
    // The same CRI-O process served every pull of the suite.
    expect(crioPidOf(path.join(s().root, "var/run/crio/crio.conf"))).toBe(s().crioPid);
  });
});

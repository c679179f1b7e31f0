// The whole chain on a real API server, as a cluster runs it: the operator installed from
// config/default (CRDs, RBAC, the agents' ValidatingAdmissionPolicy), the controller and one
// agent per simulated node as child processes with their ServiceAccounts' tokens (the agents'
// bound to their Node, as a kubelet's are), and policies changed with kubectl only.
//
// The oracle for the node files is the offline compiler: after `kubectl apply -k config/samples`
// every node must hold byte for byte what `imagepolicy compile -f config/samples` writes.

import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { run } from "../../src/cli/main.ts";
import { newPublicKey } from "../support/builders.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import {
  freePort,
  startOperatorProcess,
  type OperatorProcess,
} from "../support/operatorProcess.ts";
import { readPolicyInlined } from "../support/nodeFiles.ts";
import { waitFor } from "../support/waitFor.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const NODES = ["node-a", "node-b"] as const;
const CLUSTER = "etc/crio/imagepolicy/cluster.json";
const POLICIES = "etc/crio/policies";
const REGISTRIES_D = "etc/containers/registries.d/imagepolicy.yaml";

let dir: string;
let cp: ControlPlane;
const processes: OperatorProcess[] = [];
const latencies: number[] = [];

const root = (node: string): string => path.join(dir, "nodes", node);
// A node file with the key files it names inlined: the compiler's bytes.
const read = (node: string, rel: string): Promise<string | undefined> =>
  readPolicyInlined(root(node), rel);

async function kubectl(args: string[], stdin?: string): Promise<string> {
  const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const logs = async (): Promise<string> =>
  (await Promise.all(processes.map((p) => p.logTail(20)))).join("\n");

/** Waits until every node's file `rel` satisfies `ok`; returns the milliseconds it took. */
async function onEveryNode(
  what: string,
  rel: string,
  ok: (text: string | undefined) => boolean,
): Promise<number> {
  const started = Date.now();
  await waitFor(
    `${what} (${rel} on every node)`,
    async () => {
      const texts = await Promise.all(NODES.map((n) => read(n, rel)));
      return texts.every(ok) ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50, context: logs },
  );
  return Date.now() - started;
}

async function applyAndWait(
  what: string,
  yaml: string,
  rel: string,
  ok: (t: string | undefined) => boolean,
): Promise<void> {
  const started = Date.now();
  await kubectl(["apply", "-f", "-"], yaml);
  await onEveryNode(what, rel, ok);
  latencies.push(Date.now() - started);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-operator-"));
  cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  await kubectl(["apply", "--server-side", "-k", path.join(repo, "config/default")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  for (const node of NODES) await cp.registerNode(node, "cri-o://1.34.0");
  const controllerKubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller");
  processes.push(
    startOperatorProcess(
      "controller",
      "controller",
      [
        `--kubeconfig=${controllerKubeconfig}`,
        `--namespace=${NS}`,
        `--metrics-addr=127.0.0.1:${String(await freePort())}`,
        `--health-addr=127.0.0.1:${String(await freePort())}`,
      ],
      path.join(dir, "controller.log"),
    ),
  );
  for (const node of NODES) {
    const kubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-agent", {
      boundNode: node,
    });
    processes.push(
      startOperatorProcess(
        `agent ${node}`,
        "agent",
        [
          `--kubeconfig=${kubeconfig}`,
          `--namespace=${NS}`,
          `--node-name=${node}`,
          `--root=${root(node)}`,
        ],
        path.join(dir, `agent-${node}.log`),
      ),
    );
  }
  // Install order: cluster.json exists before anything could point CRI-O at it.
  await onEveryNode("the first cluster.json", CLUSTER, (t) => t !== undefined);
}, 600_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await cp.stop();
  if (latencies.length > 0) {
    const sorted = [...latencies].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    console.info(
      `kubectl apply -> files on both nodes: median ${String(median)} ms over ${String(sorted.length)} changes (${sorted.join(", ")})`,
    );
  }
  await rm(dir, { recursive: true, force: true });
});

describe("controller and two agents on a real API server", () => {
  it("puts on every node exactly what the offline compiler writes for config/samples", async () => {
    await kubectl(["apply", "-k", path.join(repo, "config/samples")]);
    const out = path.join(dir, "offline");
    const silent = { out: () => undefined, err: () => undefined };
    expect(
      await run(
        ["compile", "-f", path.join(repo, "config/samples"), "-o", out, "--crio-version", "1.34"],
        silent,
      ),
    ).toBe(0);
    for (const [rel, offline] of [
      [CLUSTER, "cluster.json"],
      [`${POLICIES}/team-a.json`, "policies/team-a.json"],
    ] as const) {
      const want = await readFile(path.join(out, offline), "utf8");
      await onEveryNode(`samples in ${rel}`, rel, (t) => t === want);
    }
    // The registries.d file covers the same scopes (the agent adds its own header).
    const reg = await read("node-a", REGISTRIES_D);
    expect(reg).toContain("registry.example.com:\n    use-sigstore-attachments: true");
    expect(await read("node-b", REGISTRIES_D)).toBe(reg);
  });

  it("rewrites the files on every node when a policy changes", async () => {
    const key = newPublicKey();
    const yaml = stringify({
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicy",
      metadata: { name: "team-a-signed", namespace: "team-a" },
      spec: {
        scopes: ["registry.example.com/team-a", "registry.example.com/shared"],
        policy: { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: key } } },
      },
    });
    await applyAndWait(
      "the updated ImagePolicy",
      yaml,
      `${POLICIES}/team-a.json`,
      (t) => t?.includes("registry.example.com/shared") === true && t.includes(key),
    );
  });

  it("keeps the files and reports the field when an update is refused", async () => {
    const before = await Promise.all(NODES.map((n) => read(n, CLUSTER)));
    // A well-formed public key the compiler refuses (secp256k1): a private key is refused earlier,
    // at admission, and would never reach the controller.
    const { publicKey: k1 } = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    const unsupportedKey = Buffer.from(
      k1.export({ type: "spki", format: "pem" }).toString(),
    ).toString("base64");
    await kubectl(
      ["apply", "-f", "-"],
      stringify({
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ClusterImagePolicy",
        metadata: { name: "registry-signed" },
        spec: {
          scopes: ["registry.example.com"],
          policy: {
            rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: unsupportedKey } },
          },
        },
      }),
    );
    const compiled = await waitFor(
      "Compiled=False on registry-signed",
      async () => {
        const text = await kubectl([
          "get",
          "clusterimagepolicy",
          "registry-signed",
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Compiled")].status} {.status.conditions[?(@.type=="Compiled")].reason} {.status.conditions[?(@.type=="Compiled")].message}',
        ]);
        return text.startsWith("False ") ? text : undefined;
      },
      { context: logs },
    );
    expect(compiled).toContain("InvalidKey");
    expect(compiled).toContain("spec.policy.rootOfTrust.publicKey.keyData");
    await delay(2_000);
    expect(await Promise.all(NODES.map((n) => read(n, CLUSTER)))).toEqual(before);
    // Put the sample back.
    await kubectl(["apply", "-f", path.join(repo, "config/samples/cluster-registry-signed.yaml")]);
  });

  it("follows a Secret key rotation", async () => {
    const key = newPublicKey();
    const pem = Buffer.from(key, "base64").toString("utf8");
    await applyAndWait(
      "the rotated key",
      stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "registry-signing-key", namespace: NS },
        stringData: { "cosign.pub": pem },
      }),
      CLUSTER,
      (t) => t?.includes(key) === true,
    );
  });

  it("removes a namespace file when its ImagePolicy or its namespace is deleted, never cluster.json", async () => {
    await applyAndWait(
      "team-b's ImagePolicy",
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n---\n${stringify({
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ImagePolicy",
        metadata: { name: "block", namespace: "team-b" },
        spec: {
          scopes: ["registry.example.com/other"],
          policy: { rootOfTrust: { policyType: "Reject" } },
        },
      })}`,
      `${POLICIES}/team-b.json`,
      (t) => t !== undefined,
    );
    await kubectl(["delete", "imagepolicy", "team-a-signed", "-n", "team-a"]);
    await onEveryNode("team-a.json removed", `${POLICIES}/team-a.json`, (t) => t === undefined);
    await kubectl(["delete", "namespace", "team-b", "--wait=false"]);
    await onEveryNode("team-b.json removed", `${POLICIES}/team-b.json`, (t) => t === undefined);
    await kubectl(["delete", "clusterimagepolicy", "default-deny"]);
    await onEveryNode("cluster.json without *", CLUSTER, (t) => t?.includes('"": [') === false);
  });

  it("keeps the files while the API server is down and converges after", async () => {
    const before = await Promise.all(NODES.map((n) => read(n, CLUSTER)));
    const mtimes = await Promise.all(NODES.map((n) => stat(path.join(root(n), CLUSTER))));
    await cp.stopApiServer();
    await delay(5_000);
    expect(await Promise.all(NODES.map((n) => read(n, CLUSTER)))).toEqual(before);
    const after = await Promise.all(NODES.map((n) => stat(path.join(root(n), CLUSTER))));
    expect(after.map((s) => s.mtimeMs)).toEqual(mtimes.map((s) => s.mtimeMs));
    await cp.startApiServer();
    await applyAndWait(
      "a change after the outage",
      stringify({
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ClusterImagePolicy",
        metadata: { name: "after-outage" },
        spec: {
          scopes: ["registry.example.com/after-outage"],
          policy: { rootOfTrust: { policyType: "Reject" } },
        },
      }),
      CLUSTER,
      (t) => t?.includes("registry.example.com/after-outage") === true,
    );
  });
});

// Two agents (node-a, node-b) as child processes against a real kube-apiserver, each with its
// own --root, a least-privilege ServiceAccount and a Node-bound token. The layer ConfigMaps are
// published here with kubectl, as the controller would (docs/internals.md).

import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { combine, indexLayer } from "../../src/compiler/combine.ts";
import { parseCrioVersion } from "../../src/compiler/crioVersion.ts";
import { serializeLayer, type Layer } from "../../src/compiler/layer.ts";
import { layerRevision } from "../../src/layerConfigMap.ts";
import { newPublicKey } from "../support/builders.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { readPolicyInlined } from "../support/nodeFiles.ts";
import { waitFor as waitUntil } from "../support/waitFor.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const SA = "imagepolicy-agent";
const CRIO = parseCrioVersion("1.34.0");
const K1 = newPublicKey();
const K2 = newPublicKey();

// Least privilege for the agent: list+watch of the layer ConfigMaps (one namespace) and of its
// Node (field selector), read and create/patch of ImagePolicyNodeStatus (server-side apply of a
// missing object needs create and patch), patch of its status subresource.
const RBAC = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: imagepolicy-agent-test, namespace: ${NS} }
rules:
  - { apiGroups: [""], resources: [configmaps], verbs: [list, watch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: imagepolicy-agent-test, namespace: ${NS} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: imagepolicy-agent-test }
subjects: [{ kind: ServiceAccount, name: ${SA}, namespace: ${NS} }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: imagepolicy-agent-test }
rules:
  - { apiGroups: [""], resources: [nodes], verbs: [list, watch] }
  - { apiGroups: [imagepolicy.dev], resources: [imagepolicynodestatuses], verbs: [list, create, patch] }
  - { apiGroups: [imagepolicy.dev], resources: [imagepolicynodestatuses/status], verbs: [patch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: imagepolicy-agent-test }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: imagepolicy-agent-test }
subjects: [{ kind: ServiceAccount, name: ${SA}, namespace: ${NS} }]
`;

const cluster1: Layer = {
  policies: [
    { name: "deny", scopes: [""], requirement: { kind: "reject" } },
    {
      name: "signed",
      scopes: ["reg.example.com"],
      requirement: { kind: "sigstoreKeys", keys: [K1] },
    },
  ],
};
const cluster2: Layer = {
  policies: [
    {
      name: "signed",
      scopes: ["reg.example.com"],
      requirement: { kind: "sigstoreKeys", keys: [K2] },
    },
  ],
};
const cluster3: Layer = {
  policies: [{ name: "deny", scopes: [""], requirement: { kind: "reject" } }],
};
const teamA: Layer = {
  namespace: "team-a",
  policies: [
    {
      name: "app",
      scopes: ["reg.example.com/app"],
      requirement: { kind: "sigstoreKeys", keys: [K2] },
    },
  ],
};

function expected(...layers: Layer[]): string {
  const r = combine(layers.map(indexLayer), CRIO);
  if (!r.ok) throw new Error(r.problems.join("; "));
  return r.text;
}

interface RunningAgent {
  child: ChildProcess;
  stdout: string[];
  exited: Promise<number | null>;
  healthUrl: () => string | undefined;
}

const statusSchema = z.looseObject({
  metadata: z.looseObject({
    resourceVersion: z.string(),
    ownerReferences: z.array(z.looseObject({ kind: z.string(), name: z.string() })),
  }),
  spec: z.object({ nodeName: z.string() }),
  status: z.looseObject({
    runtime: z.object({ name: z.string(), version: z.string() }),
    enforcing: z.boolean(),
    enforcingReason: z.string(),
    appliedRevisions: z.record(z.string(), z.string()),
    lastError: z.string(),
    conditions: z.array(
      z.looseObject({ type: z.string(), status: z.string(), reason: z.string() }),
    ),
  }),
});

describe("agent against a real API server", () => {
  let dir: string;
  let cp: ControlPlane;
  const roots: Record<string, string> = {};
  const kubeconfigs: Record<string, string> = {};
  const agents: Record<string, RunningAgent> = {};
  let fakeCrio: Server;

  async function kubectlOk(args: readonly string[], stdin?: string): Promise<string> {
    const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }

  async function publish(name: string, layer: Layer): Promise<string> {
    const text = serializeLayer(layer);
    const ns = layer.namespace;
    const cm = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name,
        namespace: NS,
        labels: {
          "app.kubernetes.io/managed-by": "imagepolicy-operator",
          "imagepolicy.dev/layer": ns === undefined ? "cluster" : "namespace",
          ...(ns === undefined ? {} : { "imagepolicy.dev/namespace": ns }),
        },
        annotations: { "imagepolicy.dev/revision": layerRevision(text) },
      },
      data: { "layer.json": text },
    };
    await kubectlOk(
      ["apply", "--server-side", "--field-manager=imagepolicy-controller", "-f", "-"],
      JSON.stringify(cm),
    );
    return layerRevision(text);
  }

  function startAgent(node: string): RunningAgent {
    const child = spawn(
      "setpriv",
      [
        "--pdeathsig",
        "SIGKILL",
        "--",
        path.join(repoRoot, "node_modules/.bin/node"),
        path.join(repoRoot, "src/cli/main.ts"),
        "agent",
        `--kubeconfig=${kubeconfigs[node] ?? ""}`,
        `--node-name=${node}`,
        `--root=${roots[node] ?? ""}`,
        "--health-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        "--probe-interval=2",
      ],
      { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
    );
    const stdout: string[] = [];
    let buf = "";
    child.stdout.on("data", (c: Buffer) => {
      buf += c.toString("utf8");
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      stdout.push(...lines);
    });
    child.stderr.on("data", (c: Buffer) => stdout.push(c.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const healthUrl = (): string | undefined => {
      for (const l of stdout) {
        const m = /"url":"([^"]+)","msg":"serving \/healthz/.exec(l);
        if (m?.[1] !== undefined) return m[1];
      }
      return undefined;
    };
    return { child, stdout, exited, healthUrl };
  }

  const waitFor = <T>(
    what: string,
    probe: () => Promise<T | undefined>,
    timeoutMs = 60_000,
  ): Promise<T> =>
    waitUntil(what, probe, {
      timeoutMs,
      intervalMs: 250,
      context: () =>
        Object.entries(agents)
          .map(([n, a]) => `--- ${n}\n${a.stdout.slice(-15).join("\n")}`)
          .join("\n"),
    });

  const file = (node: string, rel: string): string => path.join(roots[node] ?? "", rel);
  const CLUSTER = "etc/crio/imagepolicy/cluster.json";
  const TEAM_A = "etc/crio/policies/team-a.json";
  // A policy file with the key files it names inlined: the compiler's bytes.
  const read = (node: string, rel: string): Promise<string | undefined> =>
    readPolicyInlined(roots[node] ?? "", rel);
  const waitContent = (node: string, rel: string, want: string): Promise<true> =>
    waitFor(`${node}:${rel}`, async () => ((await read(node, rel)) === want ? true : undefined));

  async function nodeStatus(node: string): Promise<z.infer<typeof statusSchema>> {
    return statusSchema.parse(
      JSON.parse(await kubectlOk(["get", "imagepolicynodestatus", node, "-o", "json"])),
    );
  }

  async function ready(a: RunningAgent): Promise<boolean> {
    const url = a.healthUrl();
    if (url === undefined) return false;
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    return r?.status === 200;
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-agent-apiserver-"));
    cp = await startControlPlane({ dir, crdDir: path.join(repoRoot, "crds") });
    await kubectlOk(["create", "namespace", NS]);
    await kubectlOk(["create", "serviceaccount", SA, "-n", NS]);
    await kubectlOk(["apply", "-f", "-"], RBAC);
    // The shipped admission policy: the agent may write only its own node's status.
    await kubectlOk([
      "apply",
      "-f",
      path.join(repoRoot, "config/rbac/agent_node_status_policy.yaml"),
    ]);
    for (const node of ["node-a", "node-b"]) {
      await cp.registerNode(node, "cri-o://1.34.0");
      roots[node] = path.join(dir, `root-${node}`);
      await mkdir(roots[node], { recursive: true });
      kubeconfigs[node] = await cp.serviceAccountKubeconfig(NS, SA, { boundNode: node });
    }
    // node-a has a (fake) CRI-O whose configuration names our files; node-b has none.
    const sock = file("node-a", "var/run/crio/crio.sock");
    await mkdir(path.dirname(sock), { recursive: true });
    fakeCrio = createServer((req, res) => {
      if (req.url === "/config") {
        res.end('[crio]\n[crio.image]\nsignature_policy = "/etc/crio/imagepolicy/cluster.json"\n');
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => fakeCrio.listen(sock, resolve));
  });

  afterAll(async () => {
    for (const a of Object.values(agents)) a.child.kill("SIGKILL");
    await new Promise((resolve) => fakeCrio.close(resolve));
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes an accept-all cluster.json before any layer exists", async () => {
    agents["node-a"] = startAgent("node-a");
    agents["node-b"] = startAgent("node-b");
    const acceptAll = expected({ policies: [] });
    await waitContent("node-a", CLUSTER, acceptAll);
    await waitContent("node-b", CLUSTER, acceptAll);
  });

  it("writes the layers' files on both nodes and reports them", async () => {
    const c = await publish("imagepolicy-layer-cluster", cluster1);
    const t = await publish("imagepolicy-layer-ns-team-a", teamA);
    for (const node of ["node-a", "node-b"]) {
      await waitContent(node, CLUSTER, expected(cluster1));
      await waitContent(node, TEAM_A, expected(cluster1, teamA));
      expect(await read(node, "etc/containers/registries.d/imagepolicy.yaml")).toContain(
        "use-sigstore-attachments: true",
      );
      const s = await waitFor(`${node} status`, async () => {
        const st = await nodeStatus(node);
        return st.status.appliedRevisions["team-a.json"] === t ? st : undefined;
      });
      // The namespace file reports its layer revision alone: built on cluster.json's (c).
      expect(s.status.appliedRevisions).toEqual({ "cluster.json": c, "team-a.json": t });
      expect(s.spec.nodeName).toBe(node);
      expect(s.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: "Node", name: node }),
      ]);
      expect(s.status.runtime).toEqual({ name: "cri-o", version: "1.34.0" });
      expect(s.status.lastError).toBe("");
    }
    const a = await nodeStatus("node-a");
    expect(a.status.enforcing).toBe(true);
    const b = await nodeStatus("node-b");
    expect(b.status.enforcing).toBe(false);
    expect(b.status.enforcingReason).toContain("socket missing");
  });

  it("rewrites the files when a layer changes", async () => {
    await publish("imagepolicy-layer-cluster", cluster2);
    for (const node of ["node-a", "node-b"]) {
      await waitContent(node, CLUSTER, expected(cluster2));
      await waitContent(node, TEAM_A, expected(cluster2, teamA));
    }
  });

  it("removes a namespace file when its layer is deleted, keeps cluster.json", async () => {
    await kubectlOk(["delete", "configmap", "imagepolicy-layer-ns-team-a", "-n", NS]);
    for (const node of ["node-a", "node-b"]) {
      await waitFor(`${node} team-a.json removed`, async () =>
        (await read(node, TEAM_A)) === undefined ? true : undefined,
      );
      expect(await read(node, CLUSTER)).toBe(expected(cluster2));
      expect(await readdir(file(node, "etc/crio/policies"))).toEqual([]);
    }
    await waitFor("status without team-a.json", async () => {
      const s = await nodeStatus("node-a");
      return "team-a.json" in s.status.appliedRevisions ? undefined : true;
    });
  });

  it("keeps the files while the API server is down and converges when it is back", async () => {
    await publish("imagepolicy-layer-ns-team-a", teamA);
    await waitContent("node-a", TEAM_A, expected(cluster2, teamA));
    await waitContent("node-b", TEAM_A, expected(cluster2, teamA));
    await cp.stopApiServer();
    await delay(8000);
    for (const node of ["node-a", "node-b"]) {
      expect(await read(node, CLUSTER)).toBe(expected(cluster2));
      expect(await read(node, TEAM_A)).toBe(expected(cluster2, teamA));
    }
    await cp.startApiServer();
    // Made before the agents' watches reconnect (they are backing off).
    await publish("imagepolicy-layer-cluster", cluster3);
    for (const node of ["node-a", "node-b"]) {
      await waitContent(node, CLUSTER, expected(cluster3));
      await waitContent(node, TEAM_A, expected(cluster3, teamA));
    }
  });

  it("rewrites nothing when restarted, and shuts down gracefully", async () => {
    const a = agents["node-a"];
    if (a === undefined) throw new Error("no agent");
    await waitFor("node-a ready", async () => ((await ready(a)) ? true : undefined));
    const files = [
      CLUSTER,
      TEAM_A,
      "etc/containers/registries.d/imagepolicy.yaml",
      "etc/crio/imagepolicy/.imagepolicy-manifest",
    ];
    const before = await Promise.all(files.map((f) => stat(file("node-a", f))));
    a.child.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    const again = startAgent("node-a");
    agents["node-a"] = again;
    await waitFor("restarted node-a ready", async () => ((await ready(again)) ? true : undefined));
    const after = await Promise.all(files.map((f) => stat(file("node-a", f))));
    expect(after.map((s) => [s.ino, s.mtimeMs])).toEqual(before.map((s) => [s.ino, s.mtimeMs]));
  });

  it("makes no writes at steady state", async () => {
    const c3 = layerRevision(serializeLayer(cluster3));
    await waitFor("node-b status at cluster3", async () => {
      const s = await nodeStatus("node-b");
      return s.status.appliedRevisions["cluster.json"] === c3 ? true : undefined;
    });
    const rv = async (): Promise<string[]> =>
      Promise.all(
        ["node-a", "node-b"].map(async (n) => (await nodeStatus(n)).metadata.resourceVersion),
      );
    await delay(3000);
    const first = await rv();
    const files = await stat(file("node-b", CLUSTER));
    // Several CRI-O probes (every 2 s) happen meanwhile.
    await delay(6000);
    expect(await rv()).toEqual(first);
    expect((await stat(file("node-b", CLUSTER))).mtimeMs).toBe(files.mtimeMs);
    const pid = agents["node-b"]?.child.pid;
    const rss = /VmRSS:\s+(\d+) kB/.exec(
      await readFile(`/proc/${String(pid)}/status`, "utf8"),
    )?.[1];
    console.log(`idle agent (node-b, pid ${String(pid)}) VmRSS ${rss ?? "?"} kB`);
  });
});

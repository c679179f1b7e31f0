// The controller against a real kube-apiserver (+ etcd + kube-controller-manager), run as child
// processes (`imagepolicy controller`) with a ServiceAccount bound to the least-privilege
// ClusterRole/Role defined below: layer ConfigMaps appear, change only when their bytes change,
// keep a refused object's last accepted form (also across a restart), follow Secret rotation,
// disappear with the last ImagePolicy of a namespace or the namespace; lock-out refusals; status
// conditions; two replicas with one leader and a takeover after kill -9.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseLayer, type Layer } from "../../src/compiler/layer.ts";
import { KubeClient, loadKubeConfig } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { Resources, type KubeObject } from "../../src/kube/objects.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import { waitFor as waitUntil } from "../support/waitFor.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const NODE = path.join(ROOT, "node_modules/.bin/node");
const NS = "imagepolicy-system";
const OPERATOR_IMAGE = "registry.example.com/imagepolicy/operator:v1";

/** Least privilege of the controller (the reply to config/rbac lists the same rules). */
const RBAC = [
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "imagepolicy-controller" },
    rules: [
      {
        apiGroups: ["imagepolicy.dev"],
        resources: ["clusterimagepolicies", "imagepolicies", "imagepolicynodestatuses"],
        verbs: ["list", "watch"],
      },
      {
        apiGroups: ["imagepolicy.dev"],
        resources: ["clusterimagepolicies/status", "imagepolicies/status"],
        verbs: ["patch"],
      },
      { apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] },
      { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create"] },
    ],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "imagepolicy-controller" },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "imagepolicy-controller",
    },
    subjects: [{ kind: "ServiceAccount", name: "imagepolicy-controller", namespace: NS }],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "imagepolicy-controller", namespace: NS },
    rules: [
      {
        apiGroups: [""],
        resources: ["configmaps"],
        verbs: ["list", "watch", "create", "patch", "delete"],
      },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        verbs: ["get", "create", "update"],
      },
    ],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: "imagepolicy-controller", namespace: NS },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "imagepolicy-controller",
    },
    subjects: [{ kind: "ServiceAccount", name: "imagepolicy-controller", namespace: NS }],
  },
  // Lock-out protection of kube-system's pod images (--protected-namespace=kube-system).
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "imagepolicy-controller-protected-pods", namespace: "kube-system" },
    rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] }],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: "imagepolicy-controller-protected-pods", namespace: "kube-system" },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "imagepolicy-controller-protected-pods",
    },
    subjects: [{ kind: "ServiceAccount", name: "imagepolicy-controller", namespace: NS }],
  },
];

function publicKey(): string {
  const { publicKey: k } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return Buffer.from(k.export({ type: "spki", format: "pem" }).toString()).toString("base64");
}

/** A well-formed public key the compiler refuses (secp256k1). A private key is refused earlier,
 * at admission (crds/), and never reaches the controller. */
function unsupportedKey(): string {
  const { publicKey: k } = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
  return Buffer.from(k.export({ type: "spki", format: "pem" }).toString()).toString("base64");
}

type RootOfTrust = Record<string, unknown>;
const keyed = (keyData: string): RootOfTrust => ({
  policyType: "PublicKey",
  publicKey: { keyData },
});

function cip(name: string, scopes: string[], rootOfTrust: RootOfTrust, labels = {}): KubeObject {
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ClusterImagePolicy",
    metadata: { name, labels },
    spec: { scopes, policy: { rootOfTrust } },
  };
}

function ip(
  namespace: string,
  name: string,
  scopes: string[],
  rootOfTrust: RootOfTrust,
): KubeObject {
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name, namespace },
    spec: { scopes, policy: { rootOfTrust } },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

class Replica {
  readonly identity: string;
  readonly logPath: string;
  readonly healthPort: number;
  readonly metricsPort: number;
  readonly #child: ChildProcess;
  readonly exited: Promise<number | null>;

  private constructor(
    identity: string,
    logPath: string,
    ports: [number, number],
    child: ChildProcess,
  ) {
    this.identity = identity;
    this.logPath = logPath;
    [this.metricsPort, this.healthPort] = ports;
    this.#child = child;
    this.exited = new Promise((resolve) =>
      child.once("exit", (code) => {
        resolve(code);
      }),
    );
  }

  static async start(dir: string, kubeconfig: string, identity: string): Promise<Replica> {
    const ports: [number, number] = [await freePort(), await freePort()];
    const logPath = path.join(dir, `controller-${identity}.log`);
    const fd = openSync(logPath, "a");
    try {
      const child = spawn(
        "setpriv",
        [
          "--pdeathsig",
          "SIGKILL",
          "--",
          NODE,
          path.join(ROOT, "src/cli/main.ts"),
          "controller",
          `--kubeconfig=${kubeconfig}`,
          `--identity=${identity}`,
          `--metrics-addr=127.0.0.1:${ports[0]}`,
          `--health-addr=127.0.0.1:${ports[1]}`,
          `--operator-image=${OPERATOR_IMAGE}`,
          "--lease-duration=6s",
          "--renew-deadline=4s",
          "--retry-period=1s",
          "--log-level=debug",
        ],
        { stdio: ["ignore", fd, fd], cwd: ROOT },
      );
      return new Replica(identity, logPath, ports, child);
    } finally {
      closeSync(fd);
    }
  }

  async get(port: number, p: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`http://127.0.0.1:${port}${p}`);
    return { status: res.status, text: await res.text() };
  }

  async waitReady(): Promise<void> {
    await waitFor(`${this.identity} ready`, 60_000, async () => {
      try {
        return (await this.get(this.healthPort, "/readyz")).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    });
  }

  async isLeader(): Promise<boolean> {
    const m = await this.get(this.metricsPort, "/metrics");
    return /^imagepolicy_controller_is_leader 1$/m.test(m.text);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    this.#child.kill(signal);
    return this.exited;
  }

  async log(): Promise<string> {
    return readFile(this.logPath, "utf8");
  }
}

/** waitFor with this file's argument order and a short interval. */
function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  return waitUntil(what, probe, { timeoutMs, intervalMs: 20 });
}

const conditionSchema = z.looseObject({
  type: z.string(),
  status: z.string(),
  reason: z.string(),
  message: z.string(),
  observedGeneration: z.number().optional(),
  lastTransitionTime: z.string(),
});
const policyStatusSchema = z.looseObject({
  metadata: z.looseObject({ generation: z.number() }),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      conditions: z.array(conditionSchema).optional(),
      rollout: z.looseObject({ display: z.string(), revision: z.string() }).loose().optional(),
    })
    .optional(),
});
const configMapSchema = z.looseObject({
  metadata: z.looseObject({
    resourceVersion: z.string(),
    labels: z.record(z.string(), z.string()),
    annotations: z.record(z.string(), z.string()),
  }),
  data: z.looseObject({ "layer.json": z.string() }),
});

describe("controller (real kube-apiserver)", () => {
  let dir: string;
  let plane: ControlPlane | undefined;
  let admin: KubeClient;
  let layers: Informer | undefined;
  let saKubeconfig: string;
  let a: Replica | undefined;
  let b: Replica | undefined;
  /** ConfigMap name -> local time of every change seen. */
  const changes = new Map<string, number[]>();
  const latencies: number[] = [];

  const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
    if (plane === undefined) throw new Error("no control plane");
    const r = await plane.kubectl(args, stdin === undefined ? undefined : { stdin });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const apply = (...objects: KubeObject[]): Promise<string> =>
    kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
    );

  const layerOf = (
    name: string,
  ): { layer: Layer; cm: z.infer<typeof configMapSchema> } | undefined => {
    const raw = layers?.get(name, NS);
    if (raw === undefined) return undefined;
    const cm = configMapSchema.parse(raw);
    return { layer: parseLayer(cm.data["layer.json"]), cm };
  };

  /** Applies `objects` and waits until `name`'s layer satisfies `check`; records the latency
   * from just before kubectl apply to the ConfigMap change seen by a watch. */
  async function applyAndWait(
    name: string,
    check: (l: Layer | undefined) => boolean,
    ...objects: KubeObject[]
  ): Promise<number> {
    const start = Date.now();
    await apply(...objects);
    await waitFor(`layer ${name}`, 30_000, () => (check(layerOf(name)?.layer) ? true : undefined));
    const seen = (changes.get(name) ?? []).filter((t) => t >= start);
    const latency = (seen.at(-1) ?? Date.now()) - start;
    latencies.push(latency);
    return latency;
  }

  async function status(
    kind: "clusterImagePolicies" | "imagePolicies",
    name: string,
    namespace?: string,
  ) {
    const o = await admin.get(Resources[kind], { name, namespace });
    return policyStatusSchema.parse(o);
  }

  const condition = (
    s: z.infer<typeof policyStatusSchema>,
    type: string,
  ): z.infer<typeof conditionSchema> | undefined =>
    s.status?.conditions?.find((c) => c.type === type);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-controller-"));
    const cp = await startControlPlane({ dir, crdDir: path.join(ROOT, "crds") });
    plane = cp;
    await kubectl(["create", "namespace", NS]);
    await kubectl(["create", "serviceaccount", "imagepolicy-controller", "-n", NS]);
    await apply(...(RBAC as KubeObject[]));
    saKubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller");
    // One CRI-O node (Nodes accept status on create).
    await apply({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-a" },
      status: {
        nodeInfo: {
          containerRuntimeVersion: "cri-o://1.34.1",
          machineID: "m",
          systemUUID: "u",
          bootID: "b",
          kernelVersion: "6.1.0",
          osImage: "Debian GNU/Linux 13",
          kubeletVersion: "v1.34.0",
          kubeProxyVersion: "",
          operatingSystem: "linux",
          architecture: "amd64",
        },
      },
    });
    admin = new KubeClient(loadKubeConfig({ kind: "file", path: cp.kubeconfigPath }));
    const informer = new Informer({
      name: "test-layers",
      source: admin.listWatcher(Resources.configMaps, { namespace: NS }),
      logger: pino({ level: "silent" }),
    });
    layers = informer;
    informer.onEvent((e) => {
      const name = e.object.metadata.name;
      changes.set(name, [...(changes.get(name) ?? []), Date.now()]);
    });
    informer.start();
    await informer.waitForSync();
    a = await Replica.start(dir, saKubeconfig, "replica-a");
    await a.waitReady();
  });

  afterAll(async () => {
    await layers?.stop();
    await a?.stop("SIGKILL");
    await b?.stop("SIGKILL");
    await plane?.stop();
    if (latencies.length > 0) {
      const sorted = [...latencies].sort((x, y) => x - y);
      console.log(
        `kubectl apply -> layer ConfigMap change: median ${sorted[Math.floor(sorted.length / 2)]} ms, ` +
          `min ${sorted[0]} ms, max ${sorted.at(-1)} ms over ${sorted.length} changes`,
      );
    }
    await rm(dir, { recursive: true, force: true });
  });

  const keyA = publicKey();
  const keyB = publicKey();
  const keyC = publicKey();

  it("publishes the cluster layer and a namespace layer with labels, revision and layer.json", async () => {
    await kubectl(["create", "namespace", "team"]);
    await applyAndWait(
      "imagepolicy-layer-ns-team",
      (l) => l?.policies.length === 1,
      cip("signed", ["reg.example.com"], keyed(keyA)),
      ip("team", "app", ["reg.example.com/team"], keyed(keyB)),
    );
    await waitFor("cluster layer", 10_000, () =>
      layerOf("imagepolicy-layer-cluster")?.layer.policies.some((p) => p.name === "signed")
        ? true
        : undefined,
    );
    const cluster = layerOf("imagepolicy-layer-cluster");
    const team = layerOf("imagepolicy-layer-ns-team");
    expect(cluster?.layer).toEqual({
      policies: [
        {
          name: "signed",
          generation: 1,
          scopes: ["reg.example.com"],
          requirement: { kind: "sigstoreKeys", keys: [keyA] },
        },
      ],
    });
    expect(team?.layer).toEqual({
      namespace: "team",
      policies: [
        {
          name: "app",
          generation: 1,
          scopes: ["reg.example.com/team"],
          requirement: { kind: "sigstoreKeys", keys: [keyB] },
        },
      ],
    });
    const text = team?.cm.data["layer.json"] ?? "";
    expect(team?.cm.metadata.annotations["imagepolicy.dev/revision"]).toBe(
      createHash("sha256").update(text).digest("hex").slice(0, 16),
    );
    expect(team?.cm.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "imagepolicy-operator",
      "imagepolicy.dev/layer": "namespace",
      "imagepolicy.dev/namespace": "team",
    });
    expect(cluster?.cm.metadata.labels["imagepolicy.dev/layer"]).toBe("cluster");
  });

  it("sets Compiled/Applied/Ready with observedGeneration, and the rollout from node reports", async () => {
    const s1 = await waitFor("status", 10_000, async () => {
      const s = await status("clusterImagePolicies", "signed");
      return condition(s, "Ready") === undefined ? undefined : s;
    });
    expect(s1.status?.observedGeneration).toBe(1);
    expect(condition(s1, "Compiled")).toMatchObject({ status: "True", observedGeneration: 1 });
    expect(condition(s1, "Applied")).toMatchObject({ status: "False", reason: "RollingOut" });
    expect(condition(s1, "Ready")).toMatchObject({ status: "False", observedGeneration: 1 });
    // The agent of node-a reports the revisions.
    const clusterRev =
      layerOf("imagepolicy-layer-cluster")?.cm.metadata.annotations["imagepolicy.dev/revision"] ??
      "";
    const teamRev =
      layerOf("imagepolicy-layer-ns-team")?.cm.metadata.annotations["imagepolicy.dev/revision"] ??
      "";
    await apply({
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicyNodeStatus",
      metadata: { name: "node-a" },
      spec: { nodeName: "node-a" },
    });
    await kubectl([
      "patch",
      "imagepolicynodestatus",
      "node-a",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({
        status: {
          enforcing: true,
          appliedRevisions: { "cluster.json": clusterRev, "team.json": `${clusterRev}.${teamRev}` },
        },
      }),
    ]);
    for (const [kind, name, namespace, revision] of [
      ["clusterImagePolicies", "signed", undefined, clusterRev],
      ["imagePolicies", "app", "team", teamRev],
    ] as const) {
      const s = await waitFor(`${name} Ready`, 10_000, async () => {
        const st = await status(kind, name, namespace);
        return condition(st, "Ready")?.status === "True" ? st : undefined;
      });
      expect(condition(s, "Applied")).toMatchObject({ status: "True", observedGeneration: 1 });
      expect(s.status?.rollout).toMatchObject({
        nodesApplied: 1,
        nodesEnforcing: 1,
        nodesTotal: 1,
        display: "1/1",
        revision,
      });
    }
  });

  it("publishes a new revision on update, and writes nothing on a no-op re-apply", async () => {
    const before = layerOf("imagepolicy-layer-cluster");
    for (const [i, key] of [keyC, keyA, keyC, keyA, keyC].entries()) {
      await applyAndWait(
        "imagepolicy-layer-cluster",
        (l) => l?.policies.find((p) => p.name === "signed")?.generation === i + 2,
        cip("signed", ["reg.example.com"], keyed(key)),
      );
    }
    const after = layerOf("imagepolicy-layer-cluster");
    expect(after?.cm.metadata.annotations["imagepolicy.dev/revision"]).not.toBe(
      before?.cm.metadata.annotations["imagepolicy.dev/revision"],
    );
    const rv = after?.cm.metadata.resourceVersion;
    const writesBefore = changes.get("imagepolicy-layer-cluster")?.length;
    // Same spec again, then a label-only change that does reach the controller (new
    // resourceVersion, same generation): both must leave the ConfigMap untouched.
    await apply(cip("signed", ["reg.example.com"], keyed(keyC)));
    await apply(cip("signed", ["reg.example.com"], keyed(keyC), { touched: "yes" }));
    await delay(3_000);
    expect(layerOf("imagepolicy-layer-cluster")?.cm.metadata.resourceVersion).toBe(rv);
    expect(changes.get("imagepolicy-layer-cluster")?.length).toBe(writesBefore);
    expect(await a?.log()).toMatch(/"msg":"observed leader"/);
  });

  it("refuses a key it cannot use with Compiled=False naming the field, keeping the last accepted form", async () => {
    const before = layerOf("imagepolicy-layer-cluster")?.cm;
    await apply(cip("signed", ["reg.example.com"], keyed(unsupportedKey())));
    const s = await waitFor("refusal", 10_000, async () => {
      const st = await status("clusterImagePolicies", "signed");
      return condition(st, "Compiled")?.status === "False" ? st : undefined;
    });
    const generation = s.metadata.generation;
    expect(condition(s, "Compiled")).toMatchObject({
      reason: "InvalidKey",
      observedGeneration: generation,
    });
    expect(condition(s, "Compiled")?.message).toContain(
      "spec.policy.rootOfTrust.publicKey.keyData",
    );
    expect(condition(s, "Ready")).toMatchObject({ status: "False", reason: "InvalidKey" });
    expect(s.status?.observedGeneration).toBe(generation);
    await delay(1_000);
    const after = layerOf("imagepolicy-layer-cluster")?.cm;
    expect(after?.data["layer.json"]).toBe(before?.data["layer.json"]);
    expect(after?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
    const events = z
      .object({
        items: z.array(
          z.looseObject({ reason: z.string(), regarding: z.looseObject({ name: z.string() }) }),
        ),
      })
      .parse(
        JSON.parse(await kubectl(["get", "events.events.k8s.io", "-n", "default", "-o", "json"])),
      );
    expect(
      events.items.some((e) => e.reason === "InvalidKey" && e.regarding.name === "signed"),
    ).toBe(true);
  });

  it("keeps the refused object's last accepted form across a controller restart", async () => {
    const kept = layerOf("imagepolicy-layer-cluster")?.layer.policies.find(
      (p) => p.name === "signed",
    );
    expect(await a?.stop("SIGTERM")).toBe(0);
    a = await Replica.start(dir, saKubeconfig, "replica-a2");
    await a.waitReady();
    // A change made after the restart proves the new process reconciled.
    await applyAndWait(
      "imagepolicy-layer-cluster",
      (l) => l?.policies.some((p) => p.name === "after-restart") === true,
      cip("after-restart", ["reg.other.example"], keyed(keyB)),
    );
    const layer = layerOf("imagepolicy-layer-cluster")?.layer;
    expect(layer?.policies.find((p) => p.name === "signed")).toEqual(kept);
    const s = await status("clusterImagePolicies", "signed");
    expect(condition(s, "Compiled")?.status).toBe("False");
  });

  it("follows a Secret key rotation", async () => {
    await kubectl([
      "create",
      "secret",
      "generic",
      "keys",
      "-n",
      "team",
      `--from-literal=cosign.pub=x`,
    ]);
    // The namespace grants the controller this one Secret (docs/install.md, "Keys in Secrets").
    await kubectl([
      "create",
      "role",
      "imagepolicy-keys",
      "-n",
      "team",
      "--verb=get,list,watch",
      "--resource=secrets",
      "--resource-name=keys",
    ]);
    await kubectl([
      "create",
      "rolebinding",
      "imagepolicy-keys",
      "-n",
      "team",
      "--role=imagepolicy-keys",
      `--serviceaccount=${NS}:imagepolicy-controller`,
    ]);
    const pem = (k: string): string => Buffer.from(k, "base64").toString("utf8");
    const secret = (k: string): KubeObject => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "keys", namespace: "team" },
      stringData: { "cosign.pub": pem(k) },
    });
    const byRef = {
      policyType: "PublicKey",
      publicKey: { keySecretRef: { name: "keys", key: "cosign.pub" } },
    };
    const hasKey = (k: string) => (l: Layer | undefined) =>
      l?.policies.find((p) => p.name === "from-secret")?.requirement.kind === "sigstoreKeys" &&
      JSON.stringify(l.policies.find((p) => p.name === "from-secret")?.requirement).includes(k);
    await applyAndWait(
      "imagepolicy-layer-ns-team",
      hasKey(keyA),
      secret(keyA),
      ip("team", "from-secret", ["quay.io/team"], byRef),
    );
    await applyAndWait("imagepolicy-layer-ns-team", hasKey(keyB), secret(keyB));
  });

  it("removes a namespace layer when its last ImagePolicy is deleted, or its namespace", async () => {
    await kubectl(["create", "namespace", "short"]);
    await kubectl(["create", "namespace", "doomed"]);
    await applyAndWait(
      "imagepolicy-layer-ns-short",
      (l) => l !== undefined,
      ip("short", "p", ["quay.io/short"], keyed(keyA)),
    );
    await applyAndWait(
      "imagepolicy-layer-ns-doomed",
      (l) => l !== undefined,
      ip("doomed", "p", ["quay.io/doomed"], keyed(keyA)),
    );
    await kubectl(["delete", "imagepolicy", "p", "-n", "short"]);
    await waitFor("short layer gone", 10_000, () =>
      layers?.get("imagepolicy-layer-ns-short", NS) === undefined ? true : undefined,
    );
    await kubectl(["delete", "namespace", "doomed", "--wait=false"]);
    await waitFor("doomed layer gone", 120_000, () =>
      layers?.get("imagepolicy-layer-ns-doomed", NS) === undefined ? true : undefined,
    );
    expect(layers?.get("imagepolicy-layer-ns-team", NS)).toBeDefined();
  });

  it("refuses policies that would reject the pause image or the operator's own image", async () => {
    const before = layerOf("imagepolicy-layer-cluster")?.cm.data["layer.json"];
    await apply(
      cip("deny-pause", ["registry.k8s.io"], { policyType: "Reject" }),
      cip("deny-operator", ["registry.example.com/imagepolicy"], { policyType: "Reject" }),
      ip(NS, "deny-own", ["registry.example.com"], { policyType: "Reject" }),
    );
    for (const [kind, name, namespace, reason] of [
      ["clusterImagePolicies", "deny-pause", undefined, "WouldRejectPause"],
      ["clusterImagePolicies", "deny-operator", undefined, "WouldRejectOperator"],
      ["imagePolicies", "deny-own", NS, "WouldRejectOperator"],
    ] as const) {
      const s = await waitFor(`${name} refused`, 10_000, async () => {
        const st = await status(kind, name, namespace);
        return condition(st, "Compiled")?.status === "False" ? st : undefined;
      });
      expect(condition(s, "Compiled")?.reason).toBe(reason);
      expect(condition(s, "Ready")?.status).toBe("False");
    }
    expect(layerOf("imagepolicy-layer-cluster")?.cm.data["layer.json"]).toBe(before);
    expect(layers?.get(`imagepolicy-layer-ns-${NS}`, NS)).toBeUndefined();
    // With exceptions for both images, a default-deny `*` is accepted.
    await applyAndWait(
      "imagepolicy-layer-cluster",
      (l) => l?.policies.some((p) => p.name === "exceptions") === true,
      cip("exceptions", ["registry.k8s.io/pause", "registry.example.com/imagepolicy"], {
        policyType: "InsecureAcceptAnything",
      }),
    );
    await applyAndWait(
      "imagepolicy-layer-cluster",
      (l) => l?.policies.some((p) => p.name === "deny-all") === true,
      cip("deny-all", ["*"], { policyType: "Reject" }),
    );
    await kubectl(["delete", "imagepolicy", "deny-own", "-n", NS]);
    await kubectl([
      "delete",
      "clusterimagepolicy",
      "deny-all",
      "deny-pause",
      "deny-operator",
      "exceptions",
    ]);
  });

  it("runs two replicas with one leader; after kill -9 of the leader the other converges a later change", async () => {
    if (a === undefined) throw new Error("no replica");
    b = await Replica.start(dir, saKubeconfig, "replica-b");
    await b.waitReady();
    await delay(2_000);
    expect([await a.isLeader(), await b.isLeader()]).toEqual([true, false]);
    const lease = await admin.get(Resources.leases, {
      name: "imagepolicy-controller",
      namespace: NS,
    });
    expect(JSON.stringify(lease)).toContain(a.identity);

    await a.stop("SIGKILL");
    const killedAt = Date.now();
    await apply(cip("after-kill", ["reg.after-kill.example"], keyed(keyA)));
    await waitFor("the standby converges", 30_000, () =>
      layerOf("imagepolicy-layer-cluster")?.layer.policies.some((p) => p.name === "after-kill")
        ? true
        : undefined,
    );
    const takeover = Date.now() - killedAt;
    console.log(`leader killed -> change converged by the standby in ${takeover} ms (lease 6 s)`);
    expect(takeover).toBeLessThan(6_000 + 2 * 1_000 + 3_000);
    expect(await b.isLeader()).toBe(true);
    const s = await waitFor("status by the new leader", 10_000, async () => {
      const st = await status("clusterImagePolicies", "after-kill");
      return condition(st, "Compiled") === undefined ? undefined : st;
    });
    expect(condition(s, "Compiled")).toMatchObject({ status: "True", observedGeneration: 1 });
    // Graceful stop releases the lease.
    expect(await b.stop("SIGTERM")).toBe(0);
    expect(await b.log()).toMatch(/released the lease/);
    b = undefined;
  });
});

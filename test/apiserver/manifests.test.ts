// The install manifests (config/default) against a real kube-apiserver: they build and apply, each
// ServiceAccount may do exactly what the RBAC table below says, the controller's pods meet the
// `restricted` Pod Security level while the agent's break it only by hostPath and root, and the
// ValidatingAdmissionPolicy lets the agent write only the ImagePolicyNodeStatus of its own node.
//
// No kubelet runs here, so no pod ever starts: the Deployment and DaemonSet controllers still
// create their pods (admission runs on them), which is what this file checks.
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  startControlPlane,
  type CommandResult,
  type ControlPlane,
} from "../support/controlPlane.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const IMAGE = "ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0";
const CONTROLLER = `system:serviceaccount:${NS}:imagepolicy-controller`;
const AGENT = `system:serviceaccount:${NS}:imagepolicy-agent`;
const NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";

function describeResult(r: CommandResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

// ---------------------------------------------------------------------------------------------
// The RBAC table: [verb, resource, scope, allowed]. scope is a namespace, "-A" (all namespaces)
// or "cluster" (cluster-scoped resource). `resource/status` asks about the status subresource.

type Scope = string;
type Row = readonly [verb: string, resource: string, scope: Scope, allowed: boolean];

const CIP = "clusterimagepolicies.imagepolicy.dev";
const IP = "imagepolicies.imagepolicy.dev";
const IPNS = "imagepolicynodestatuses.imagepolicy.dev";
const LEASES = "leases.coordination.k8s.io";
const EVENTS = "events.events.k8s.io";

const controllerTable: readonly Row[] = [
  // Inputs, read everywhere.
  ["get", CIP, "cluster", true],
  ["list", CIP, "cluster", true],
  ["watch", CIP, "cluster", true],
  ["list", IP, "-A", true],
  ["watch", IP, "team-a", true],
  ["list", IPNS, "cluster", true],
  ["watch", IPNS, "cluster", true],
  ["watch", "nodes", "cluster", true],
  // Secrets: ClusterImagePolicy keys in its own namespace only; none elsewhere unless a namespace
  // admin grants one by name (test/apiserver/attacks.test.ts).
  ["get", "secrets", NS, true],
  ["list", "secrets", NS, true],
  ["watch", "secrets", NS, true],
  ["list", "secrets", "-A", false],
  ["get", "secrets", "team-a", false],
  ["watch", "secrets", "team-a", false],
  ["get", "secrets", "kube-system", false],
  // Pods of kube-system, read for their images (lock-out protection); nothing else of pods.
  ["list", "pods", "kube-system", true],
  ["watch", "pods", "kube-system", true],
  ["get", "pods", "kube-system", false],
  ["list", "pods", "team-a", false],
  ["list", "pods", "-A", false],
  // Status of the policy objects only.
  ["update", `${CIP}/status`, "cluster", true],
  ["patch", `${CIP}/status`, "cluster", true],
  ["patch", `${IP}/status`, "team-a", true],
  ["update", CIP, "cluster", false],
  ["patch", IP, "team-a", false],
  ["create", CIP, "cluster", false],
  ["delete", CIP, "cluster", false],
  ["delete", IP, "team-a", false],
  // Layer ConfigMaps and the Lease, in its own namespace only.
  ["create", "configmaps", NS, true],
  ["update", "configmaps", NS, true],
  ["patch", "configmaps", NS, true],
  ["delete", "configmaps", NS, true],
  ["watch", "configmaps", NS, true],
  ["create", "configmaps", "team-a", false],
  ["get", "configmaps", "kube-system", false],
  ["create", LEASES, NS, true],
  ["update", LEASES, NS, true],
  ["delete", LEASES, NS, false],
  ["update", LEASES, "kube-system", false],
  // Events where their objects live; never read.
  ["create", EVENTS, "team-a", true],
  ["patch", EVENTS, "default", true],
  ["list", EVENTS, "team-a", false],
  // Never writes what the agents own, nodes, workloads or Secrets.
  ["create", IPNS, "cluster", false],
  ["patch", `${IPNS}/status`, "cluster", false],
  ["update", "nodes", "cluster", false],
  ["patch", "nodes", "cluster", false],
  ["patch", "nodes/status", "cluster", false],
  ["create", "pods", NS, false],
  ["create", "pods", "-A", false],
  ["create", "pods/exec", NS, false],
  ["create", "daemonsets.apps", NS, false],
  ["create", "secrets", "team-a", false],
  ["update", "secrets", NS, false],
  ["create", "serviceaccounts/token", NS, false],
  ["impersonate", "users", "cluster", false],
];

const agentTable: readonly Row[] = [
  // The layer ConfigMaps, read-only, in the operator's namespace only.
  ["get", "configmaps", NS, true],
  ["list", "configmaps", NS, true],
  ["watch", "configmaps", NS, true],
  ["create", "configmaps", NS, false],
  ["update", "configmaps", NS, false],
  ["patch", "configmaps", NS, false],
  ["delete", "configmaps", NS, false],
  ["list", "configmaps", "team-a", false],
  ["list", "configmaps", "-A", false],
  // Its Node, read-only.
  ["get", "nodes", "cluster", true],
  ["list", "nodes", "cluster", true],
  ["watch", "nodes", "cluster", true],
  ["update", "nodes", "cluster", false],
  ["patch", "nodes/status", "cluster", false],
  // ImagePolicyNodeStatus (narrowed to its own node by the admission policy, tested below).
  ["get", IPNS, "cluster", true],
  ["create", IPNS, "cluster", true],
  ["update", IPNS, "cluster", true],
  ["patch", IPNS, "cluster", true],
  ["update", `${IPNS}/status`, "cluster", true],
  ["patch", `${IPNS}/status`, "cluster", true],
  ["delete", IPNS, "cluster", false],
  ["deletecollection", IPNS, "cluster", false],
  // No Secrets (keys arrive inlined in the layers), no policy objects.
  ["list", "secrets", "-A", false],
  ["get", "secrets", NS, false],
  ["watch", "secrets", "team-a", false],
  ["list", CIP, "cluster", false],
  ["update", CIP, "cluster", false],
  ["patch", `${CIP}/status`, "cluster", false],
  ["update", IP, "team-a", false],
  // Nothing else.
  ["create", "pods", NS, false],
  ["create", "pods/eviction", NS, false],
  ["create", LEASES, NS, false],
  ["create", EVENTS, NS, false],
  ["create", "serviceaccounts/token", NS, false],
];

function canIArgs(user: string, [verb, resource, scope]: Row): string[] {
  const [plain, subresource] = resource.split("/");
  const args = ["auth", "can-i", `--as=${user}`, verb, plain ?? resource];
  if (subresource !== undefined) args.push(`--subresource=${subresource}`);
  if (scope === "-A") args.push("--all-namespaces");
  else if (scope !== "cluster") args.push("-n", scope);
  return args;
}

// ---------------------------------------------------------------------------------------------
// Kubeconfigs for the admission-policy tests

const adminKubeconfig = z.object({
  clusters: z.array(z.object({ name: z.string(), cluster: z.record(z.string(), z.unknown()) })),
  users: z.array(z.object({ name: z.string(), user: z.record(z.string(), z.unknown()) })),
});

const whoami = z.object({
  status: z.object({
    userInfo: z.object({
      username: z.string(),
      extra: z.record(z.string(), z.array(z.string())).optional(),
    }),
  }),
});

const podSecurityWarning = /^Warning: (\S+?)(?: \(and \d+ other pods?\))?: (.+)$/;

describe("install manifests (config/default, real kube-apiserver)", () => {
  let dir: string;
  let plane: ControlPlane | undefined;
  const kubectl = (
    args: readonly string[],
    options?: { readonly stdin?: string },
  ): Promise<CommandResult> => {
    if (plane === undefined) throw new Error("the control plane did not start");
    return plane.kubectl(args, options);
  };
  const kubectlOk = async (
    args: readonly string[],
    options?: { readonly stdin?: string },
  ): Promise<string> => {
    const r = await kubectl(args, options);
    expect(r.code, `kubectl ${args.join(" ")}\n${describeResult(r)}`).toBe(0);
    return r.stdout;
  };

  /** A kubeconfig for the same cluster with another user entry. */
  const kubeconfigWith = async (
    name: string,
    user: (admin: Readonly<Record<string, unknown>>) => Record<string, unknown>,
  ): Promise<string> => {
    if (plane === undefined) throw new Error("the control plane did not start");
    const admin = adminKubeconfig.parse(JSON.parse(await readFile(plane.kubeconfigPath, "utf8")));
    const adminUser = admin.users[0]?.user;
    if (adminUser === undefined) throw new Error("the admin kubeconfig has no user");
    const file = path.join(dir, `${name}.kubeconfig`);
    const config = {
      apiVersion: "v1",
      kind: "Config",
      clusters: admin.clusters,
      users: [{ name: "user", user: user(adminUser) }],
      contexts: [{ name: "local", context: { cluster: admin.clusters[0]?.name, user: "user" } }],
      "current-context": "local",
    };
    await writeFile(file, JSON.stringify(config), { mode: 0o600 });
    return file;
  };

  /** The admin impersonating the agent's ServiceAccount, with or without a node-name extra. */
  const impersonatedAgent = (node: string | undefined): Promise<string> =>
    kubeconfigWith(`agent-impersonated-${node ?? "no-node"}`, (admin) => ({
      ...admin,
      as: AGENT,
      ...(node === undefined ? {} : { "as-user-extra": { [NODE_NAME_EXTRA]: [node] } }),
    }));

  const nodeStatus = (name: string): string =>
    JSON.stringify({
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicyNodeStatus",
      metadata: { name },
      spec: { nodeName: name },
    });

  const patchStatus = (kubeconfig: string, name: string): Promise<CommandResult> =>
    kubectl([
      `--kubeconfig=${kubeconfig}`,
      "patch",
      "imagepolicynodestatus",
      name,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { enforcing: true, enforcingReason: `written for ${name}` } }),
    ]);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-manifests-"));
    plane = await startControlPlane({ dir });
  });

  afterAll(async () => {
    await plane?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("crds/Kustomization lists exactly the CRD files of crds/", () => {
    const kustomization = z
      .object({ resources: z.array(z.string()) })
      .loose()
      .parse(parseYaml(readFileSync(path.join(ROOT, "crds/Kustomization"), "utf8")));
    const files = readdirSync(path.join(ROOT, "crds"))
      .filter((f) => f.endsWith(".yaml"))
      .sort();
    expect([...kustomization.resources].sort()).toEqual(files);
  });

  it("builds with kubectl kustomize: one image, every namespaced object in imagepolicy-system but the pod reader of kube-system", async () => {
    const out = await kubectlOk(["kustomize", path.join(ROOT, "config/default")]);
    const objects = parseAllDocuments(out).map((d) =>
      z
        .object({
          kind: z.string(),
          metadata: z.object({ name: z.string(), namespace: z.string().optional() }).loose(),
        })
        .loose()
        .parse(d.toJS()),
    );
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).toEqual([
      "ClusterRole/imagepolicy-agent",
      "ClusterRole/imagepolicy-controller",
      "ClusterRoleBinding/imagepolicy-agent",
      "ClusterRoleBinding/imagepolicy-controller",
      "CustomResourceDefinition/clusterimagepolicies.imagepolicy.dev",
      "CustomResourceDefinition/imagepolicies.imagepolicy.dev",
      "CustomResourceDefinition/imagepolicynodestatuses.imagepolicy.dev",
      "CustomResourceDefinition/imagepullrefusals.imagepolicy.dev",
      "DaemonSet/imagepolicy-agent",
      "Deployment/imagepolicy-controller",
      "Namespace/imagepolicy-system",
      "Role/imagepolicy-agent",
      "Role/imagepolicy-controller",
      "Role/imagepolicy-controller-protected-pods",
      "RoleBinding/imagepolicy-agent",
      "RoleBinding/imagepolicy-controller",
      "RoleBinding/imagepolicy-controller-protected-pods",
      "ServiceAccount/imagepolicy-agent",
      "ServiceAccount/imagepolicy-controller",
      "ValidatingAdmissionPolicy/imagepolicy-agent-own-node-status",
      "ValidatingAdmissionPolicyBinding/imagepolicy-agent-own-node-status",
    ]);
    const clusterScoped = new Set([
      "ClusterRole",
      "ClusterRoleBinding",
      "CustomResourceDefinition",
      "Namespace",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    for (const o of objects) {
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(
        clusterScoped.has(o.kind)
          ? undefined
          : o.metadata.name === "imagepolicy-controller-protected-pods"
            ? "kube-system"
            : NS,
      );
    }
    // The admission policy names no namespace: it holds wherever the operator is installed.
    expect(out).not.toMatch(/system:serviceaccount:imagepolicy-system/);
    // The controller's --operator-image is the image it runs, and the agent runs the same one.
    const container = z.object({
      name: z.string(),
      image: z.string(),
      env: z.array(z.object({ name: z.string(), value: z.string().optional() }).loose()),
    });
    const workload = z.object({
      spec: z.object({
        template: z.object({ spec: z.object({ containers: z.array(container.loose()) }) }),
      }),
    });
    const containerOf = (kind: string): z.infer<typeof container> => {
      const found = workload.parse(objects.find((o) => o.kind === kind)).spec.template.spec
        .containers[0];
      if (found === undefined) throw new Error(`${kind} has no container`);
      return found;
    };
    const controller = containerOf("Deployment");
    expect(controller.image).toBe(IMAGE);
    expect(controller.env.find((e) => e.name === "OPERATOR_IMAGE")?.value).toBe(IMAGE);
    expect(containerOf("DaemonSet").image).toBe(IMAGE);
  });

  it("the CRI-O drop-in names files in directories the agent mounts read-write", async () => {
    const dropIn = readFileSync(path.join(ROOT, "config/crio/10-imagepolicy.conf"), "utf8");
    const policy = /^signature_policy = "([^"]+)"$/m.exec(dropIn)?.[1];
    const policyDir = /^signature_policy_dir = "([^"]+)"$/m.exec(dropIn)?.[1];
    expect(policy).toBe("/etc/crio/imagepolicy/cluster.json");
    expect(policyDir).toBe("/etc/crio/policies");
    const out = await kubectlOk(["kustomize", path.join(ROOT, "config/agent")]);
    const mounts = z
      .object({
        spec: z.object({
          template: z.object({
            spec: z.object({
              containers: z.array(
                z.object({
                  volumeMounts: z.array(
                    z.object({ mountPath: z.string(), readOnly: z.boolean().optional() }).loose(),
                  ),
                }),
              ),
            }),
          }),
        }),
      })
      .parse(parseYaml(out))
      .spec.template.spec.containers.flatMap((c) => c.volumeMounts);
    const writable = mounts.filter((m) => m.readOnly !== true).map((m) => m.mountPath);
    expect(writable.sort()).toEqual([
      "/etc/containers/registries.d",
      "/etc/crio/imagepolicy",
      "/etc/crio/policies",
      "/tmp",
    ]);
    expect(writable).toContain(path.dirname(policy ?? ""));
    expect(writable).toContain(policyDir);
  });

  it("applies with kubectl apply --server-side -k config/default", async () => {
    // Two Node objects (no kubelet behind them) for the DaemonSet and the node-bound tokens.
    for (const node of ["node-a", "node-b"]) {
      await kubectlOk(["create", "-f", "-"], {
        stdin: JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: node } }),
      });
    }
    const apply = await kubectl([
      "apply",
      "--server-side",
      "--validate=strict",
      "-k",
      path.join(ROOT, "config/default"),
    ]);
    expect(apply.code, describeResult(apply)).toBe(0);
    await kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    // Applying again changes nothing and conflicts with nothing.
    const again = await kubectl([
      "apply",
      "--server-side",
      "-k",
      path.join(ROOT, "config/default"),
    ]);
    expect(again.code, describeResult(again)).toBe(0);
  });

  it("creates the workloads' pods; the controller's meet `restricted`, the agent's miss it only by hostPath and root", async () => {
    // The Deployment (2 replicas) and the DaemonSet (one per Node) controllers create pods, which
    // passes Pod Security admission (`privileged` namespace) and Priority admission
    // (system-node-critical outside kube-system).
    const deadline = Date.now() + 120_000;
    for (;;) {
      const out = await kubectlOk(["get", "pods", "-n", NS, "-o", "name"]);
      const pods = out.split("\n").filter((l) => l !== "");
      const controllers = pods.filter((p) => p.startsWith("pod/imagepolicy-controller-"));
      const agents = pods.filter((p) => p.startsWith("pod/imagepolicy-agent-"));
      if (controllers.length === 2 && agents.length === 2) break;
      if (Date.now() > deadline) throw new Error(`pods not created: ${pods.join(", ")}`);
      await delay(500);
    }
    // A dry-run relabel to `restricted` (then `baseline`) lists every existing pod that violates it.
    const violations = async (level: string): Promise<Map<string, string>> => {
      const r = await kubectl([
        "label",
        "--dry-run=server",
        "--overwrite",
        "namespace",
        NS,
        `pod-security.kubernetes.io/enforce=${level}`,
      ]);
      expect(r.code, describeResult(r)).toBe(0);
      const found = new Map<string, string>();
      for (const line of r.stderr.split("\n")) {
        const m = podSecurityWarning.exec(line);
        if (m?.[1] !== undefined && m[2] !== undefined) found.set(m[1], m[2]);
      }
      return found;
    };
    const restricted = await violations("restricted");
    const restrictedPods = [...restricted.keys()];
    expect(restrictedPods.some((p) => p.startsWith("imagepolicy-controller-"))).toBe(false);
    expect(restrictedPods).toHaveLength(1);
    expect(restrictedPods[0]).toMatch(/^imagepolicy-agent-/);
    // Nothing but the privileges the DaemonSet justifies: not capabilities, seccomp, escalation.
    expect(restricted.get(restrictedPods[0] ?? "")).toBe(
      "restricted volume types, runAsNonRoot != true, runAsUser=0",
    );
    const baseline = await violations("baseline");
    expect([...baseline.values()]).toEqual(["hostPath volumes"]);
  });

  it.each(controllerTable)(
    "imagepolicy-controller: can-i %s %s (%s) is %s",
    async (verb, resource, scope, allowed) => {
      const r = await kubectl(canIArgs(CONTROLLER, [verb, resource, scope, allowed]));
      expect(r.stdout.trim(), describeResult(r)).toBe(allowed ? "yes" : "no");
    },
  );

  it.each(agentTable)(
    "imagepolicy-agent: can-i %s %s (%s) is %s",
    async (verb, resource, scope, allowed) => {
      const r = await kubectl(canIArgs(AGENT, [verb, resource, scope, allowed]));
      expect(r.stdout.trim(), describeResult(r)).toBe(allowed ? "yes" : "no");
    },
  );

  describe("ValidatingAdmissionPolicy imagepolicy-agent-own-node-status", () => {
    let onNodeA: string;
    let noNode: string;

    beforeAll(async () => {
      onNodeA = await impersonatedAgent("node-a");
      noNode = await impersonatedAgent(undefined);
      // The API server loads a new policy asynchronously: wait until it denies.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const probe = await kubectl(
          [`--kubeconfig=${onNodeA}`, "create", "--dry-run=server", "-f", "-"],
          { stdin: nodeStatus("node-b") },
        );
        if (probe.stderr.includes("ValidatingAdmissionPolicy")) break;
        if (Date.now() > deadline) {
          throw new Error(`the admission policy is not enforced:\n${describeResult(probe)}`);
        }
        await delay(250);
      }
      // node-b's status exists, written by someone else (the admin).
      await kubectlOk(["create", "-f", "-"], { stdin: nodeStatus("node-b") });
    });

    it("the impersonated identity carries the node-name extra as pod-bound tokens do", async () => {
      const out = await kubectlOk([`--kubeconfig=${onNodeA}`, "auth", "whoami", "-o", "json"]);
      const info = whoami.parse(JSON.parse(out)).status.userInfo;
      expect(info.username).toBe(AGENT);
      expect(info.extra?.[NODE_NAME_EXTRA]).toEqual(["node-a"]);
    });

    it("the agent on node-a cannot create the status of node-b", async () => {
      const r = await kubectl([`--kubeconfig=${onNodeA}`, "create", "-f", "-"], {
        stdin: nodeStatus("node-c"),
      });
      expect(r.code, describeResult(r)).not.toBe(0);
      expect(r.stderr).toContain(
        "the imagepolicy agent on node node-a may write only the ImagePolicyNodeStatus node-a, not node-c",
      );
    });

    it("the agent on node-a can create and update the status of node-a", async () => {
      const create = await kubectl([`--kubeconfig=${onNodeA}`, "create", "-f", "-"], {
        stdin: nodeStatus("node-a"),
      });
      expect(create.code, describeResult(create)).toBe(0);
      const status = await patchStatus(onNodeA, "node-a");
      expect(status.code, describeResult(status)).toBe(0);
      const label = await kubectl([
        `--kubeconfig=${onNodeA}`,
        "label",
        "imagepolicynodestatus",
        "node-a",
        "checked=yes",
      ]);
      expect(label.code, describeResult(label)).toBe(0);
    });

    it("the agent on node-a cannot update node-b's object or its status", async () => {
      const status = await patchStatus(onNodeA, "node-b");
      expect(status.code, describeResult(status)).not.toBe(0);
      expect(status.stderr).toContain(
        "may write only the ImagePolicyNodeStatus node-a, not node-b",
      );
      const label = await kubectl([
        `--kubeconfig=${onNodeA}`,
        "label",
        "imagepolicynodestatus",
        "node-b",
        "forged=yes",
      ]);
      expect(label.code, describeResult(label)).not.toBe(0);
      expect(label.stderr).toContain("may write only the ImagePolicyNodeStatus node-a, not node-b");
      const stored = await kubectlOk(["get", "imagepolicynodestatus", "node-b", "-o", "json"]);
      expect(stored).not.toContain("forged");
      expect(stored).not.toContain("enforcingReason");
    });

    it("the agent without a node-name claim can write no status at all", async () => {
      const status = await patchStatus(noNode, "node-a");
      expect(status.code, describeResult(status)).not.toBe(0);
      expect(status.stderr).toContain(
        "the imagepolicy agent must authenticate with a token bound to its pod or node",
      );
    });

    it("a plain ServiceAccount token (no node-name claim) is refused", async () => {
      if (plane === undefined) throw new Error("the control plane did not start");
      const plain = await plane.serviceAccountKubeconfig(NS, "imagepolicy-agent");
      const info = whoami.parse(
        JSON.parse(await kubectlOk([`--kubeconfig=${plain}`, "auth", "whoami", "-o", "json"])),
      ).status.userInfo;
      expect(info.username).toBe(AGENT);
      expect(info.extra?.[NODE_NAME_EXTRA]).toBeUndefined();
      const status = await patchStatus(plain, "node-a");
      expect(status.code, describeResult(status)).not.toBe(0);
      expect(status.stderr).toContain("must authenticate with a token bound to its pod or node");
    });

    it("a token bound to a pod on node-b (what the kubelet mounts) writes node-b only", async () => {
      // A pod assigned to node-b, as the DaemonSet's pod would be; its token is requested the way
      // the kubelet requests the projected one (TokenRequest bound to the Pod).
      await kubectlOk(["create", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "agent-token-holder", namespace: NS },
          spec: {
            serviceAccountName: "imagepolicy-agent",
            nodeName: "node-b",
            // The nodes never become Ready; keep the pod (and its token) from being evicted.
            tolerations: [{ operator: "Exists" }],
            containers: [{ name: "agent", image: IMAGE }],
          },
        }),
      });
      const token = (
        await kubectlOk([
          "create",
          "token",
          "imagepolicy-agent",
          "-n",
          NS,
          "--bound-object-kind=Pod",
          "--bound-object-name=agent-token-holder",
          "--duration=1h",
        ])
      ).trim();
      const podBound = await kubeconfigWith("agent-pod-bound", () => ({ token }));
      const info = whoami.parse(
        JSON.parse(await kubectlOk([`--kubeconfig=${podBound}`, "auth", "whoami", "-o", "json"])),
      ).status.userInfo;
      expect(info.username).toBe(AGENT);
      expect(info.extra?.[NODE_NAME_EXTRA]).toEqual(["node-b"]);
      expect(info.extra?.["authentication.kubernetes.io/pod-name"]).toEqual(["agent-token-holder"]);

      const own = await patchStatus(podBound, "node-b");
      expect(own.code, describeResult(own)).toBe(0);
      const other = await patchStatus(podBound, "node-a");
      expect(other.code, describeResult(other)).not.toBe(0);
      expect(other.stderr).toContain(
        "on node node-b may write only the ImagePolicyNodeStatus node-b",
      );
    });

    it("holds for the agent installed in another namespace (no namespace in its CEL)", async () => {
      // What an install into `ops` gives the agent there: its ServiceAccount and the agent's
      // ClusterRole. Its pod-bound token carries the node, impersonated here.
      await kubectlOk(["create", "namespace", "ops"]);
      await kubectlOk(["create", "serviceaccount", "imagepolicy-agent", "-n", "ops"]);
      await kubectlOk([
        "create",
        "clusterrolebinding",
        "imagepolicy-agent-ops",
        "--clusterrole=imagepolicy-agent",
        "--serviceaccount=ops:imagepolicy-agent",
      ]);
      const elsewhere = await kubeconfigWith("agent-elsewhere", (admin) => ({
        ...admin,
        as: "system:serviceaccount:ops:imagepolicy-agent",
        "as-user-extra": { [NODE_NAME_EXTRA]: ["node-a"] },
      }));
      const forged = await patchStatus(elsewhere, "node-b");
      expect(forged.code, describeResult(forged)).not.toBe(0);
      expect(forged.stderr).toContain(
        "may write only the ImagePolicyNodeStatus node-a, not node-b",
      );
      const own = await patchStatus(elsewhere, "node-a");
      expect(own.code, describeResult(own)).toBe(0);
    });

    it("does not restrict other identities (the admin writes any node's status)", async () => {
      const r = await patchStatus(plane?.kubeconfigPath ?? "", "node-a");
      expect(r.code, describeResult(r)).toBe(0);
    });
  });
});

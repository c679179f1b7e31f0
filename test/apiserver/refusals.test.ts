// Refusal explanations on a real API server (docs/explain.md): the operator installed from
// config/default, the real controller process with its ServiceAccount's token (so the RBAC of
// config/rbac is what it runs with), one agent reporting its node's revisions, and the kubelet's
// pull-failure Events created the way the kubelet creates them: core/v1 Events, with the node's
// own client certificate (system:node:<name>, through the Node authorizer and NodeRestriction),
// repeated by patching `count` as the kubelet's event correlator does.

import { execFile } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { KubeClient, loadKubeConfig } from "../../src/kube/client.ts";
import { CORE_EVENTS } from "../../src/refusals/record.ts";
import { cip, ip, rejecting, withKey, withScopes } from "../support/builders.ts";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";
import {
  freePort,
  startOperatorProcess,
  type OperatorProcess,
} from "../support/operatorProcess.ts";
import { waitFor } from "../support/waitFor.ts";

const execFileAsync = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const TEAM = "team";
const NODE = "node-a";
const IMAGE = "registry.example/app:v1";

let dir: string;
let cp: ControlPlane;
let kubeletConfig: string;
let kubelet: KubeClient;
let metricsPort: number;
const processes: OperatorProcess[] = [];

const clusterKey = newKey();
const teamKey = newKey();

function newKey(): { b64: string; der: string; fingerprint: string } {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const der = publicKey.export({ type: "spki", format: "der" });
  return {
    b64: Buffer.from(publicKey.export({ type: "spki", format: "pem" }).toString()).toString(
      "base64",
    ),
    der: der.toString("base64"),
    fingerprint: `sha256:${createHash("sha256").update(der).digest("hex").slice(0, 16)}`,
  };
}

async function kubectl(args: string[], stdin?: string, kubeconfig?: string): Promise<string> {
  const full = kubeconfig === undefined ? args : [`--kubeconfig=${kubeconfig}`, ...args];
  const r = await cp.kubectl(full, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const getJson = async (args: string[]): Promise<Record<string, unknown>> =>
  JSON.parse(await kubectl([...args, "-o", "json"])) as Record<string, unknown>;

const logs = async (): Promise<string> =>
  (await Promise.all(processes.map((p) => p.logTail(30)))).join("\n");

/** The controller's count of pod Events that ended as `result`. */
async function outcome(result: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${String(metricsPort)}/metrics`);
  const text = await res.text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`imagepolicy_controller_refusal_events_total{result="${result}"}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

interface Pod {
  readonly name: string;
  readonly uid: string;
}

async function createPod(name: string, image: string): Promise<Pod> {
  const manifest = stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: TEAM },
    spec: {
      nodeName: NODE,
      automountServiceAccountToken: false,
      containers: [{ name: "app", image }],
    },
  });
  // The namespace's default ServiceAccount appears shortly after the namespace.
  return waitFor(`pod ${name}`, async () => {
    const out = await kubectl(["create", "-f", "-", "-o", "jsonpath={.metadata.uid}"], manifest);
    return { name, uid: out.trim() };
  });
}

/** What the kubelet (pkg/kubelet/images) writes when CRI-O refuses the pull. */
const pullFailed = (image: string, reason: string): string =>
  `Failed to pull image "${image}": SignatureValidationFailed: image pull failed for ${image} because the signature validation failed: Source image rejected: ${reason}`;

/** Creates the kubelet's Event about `pod` with the node's credentials; returns its name. */
async function kubeletEvent(
  pod: Pod,
  reason: string,
  message: string,
  type = "Warning",
): Promise<string> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  const name = `${pod.name}.${createHash("sha256")
    .update(message + now + reason)
    .digest("hex")
    .slice(0, 16)}`;
  await kubectl(
    ["create", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: TEAM },
      involvedObject: {
        apiVersion: "v1",
        kind: "Pod",
        name: pod.name,
        namespace: TEAM,
        uid: pod.uid,
        fieldPath: "spec.containers{app}",
      },
      reason,
      message,
      type,
      source: { component: "kubelet", host: NODE },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      reportingComponent: "kubelet",
      reportingInstance: NODE,
    }),
    kubeletConfig,
  );
  return name;
}

/** The kubelet's correlator repeating an Event: count and lastTimestamp merge-patched, with no
 * read first (the Node authorizer lets a kubelet create and patch Events, not get them). */
async function repeat(event: string, count: number): Promise<void> {
  const lastTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  await kubelet.patch(CORE_EVENTS, { namespace: TEAM, name: event }, { count, lastTimestamp });
}

interface Explained {
  readonly note: string;
  readonly uid: string | undefined;
}

/** The controller's Events on `pod` (events.k8s.io/v1). */
async function explanations(pod: Pod): Promise<Explained[]> {
  const list = await getJson([
    "get",
    "events.v1.events.k8s.io",
    "-n",
    TEAM,
    "--field-selector",
    `regarding.name=${pod.name},reason=ImagePolicyRefused`,
  ]);
  const items = Array.isArray(list["items"]) ? (list["items"] as Record<string, unknown>[]) : [];
  return items.map((e) => {
    const regarding = e["regarding"] as Record<string, unknown> | undefined;
    return {
      note: typeof e["note"] === "string" ? e["note"] : "",
      uid: typeof regarding?.["uid"] === "string" ? regarding["uid"] : undefined,
    };
  });
}

async function record(pod: Pod): Promise<Record<string, unknown>> {
  const list = await getJson(["get", "imagepullrefusals", "-n", TEAM]);
  const items = Array.isArray(list["items"]) ? (list["items"] as Record<string, unknown>[]) : [];
  const mine = items.filter((i) => (i["spec"] as Record<string, unknown>)["podUID"] === pod.uid);
  if (mine.length !== 1) throw new Error(`${String(mine.length)} records for ${pod.name}`);
  return mine[0] ?? {};
}

const status = (r: Record<string, unknown>): Record<string, unknown> =>
  (r["status"] ?? {}) as Record<string, unknown>;

async function appliedRevisions(): Promise<Record<string, string>> {
  const s = await getJson(["get", "imagepolicynodestatus", NODE]);
  return ((s["status"] as Record<string, unknown> | undefined)?.["appliedRevisions"] ??
    {}) as Record<string, string>;
}

async function layerRevision(name: string): Promise<string | undefined> {
  const cm = await getJson(["get", "configmap", name, "-n", NS]);
  return (
    (cm["metadata"] as Record<string, unknown>)["annotations"] as Record<string, string> | undefined
  )?.["imagepolicy.dev/revision"];
}

/** Until the agent holds the published cluster and team layers. */
async function nodeUpToDate(): Promise<void> {
  await waitFor(
    "the node to report the published revisions",
    async () => {
      const cluster = await layerRevision("imagepolicy-layer-cluster");
      const team = await layerRevision(`imagepolicy-layer-ns-${TEAM}`);
      const applied = await appliedRevisions();
      return cluster !== undefined &&
        team !== undefined &&
        applied["cluster.json"] === cluster &&
        applied[`${TEAM}.json`] === team
        ? true
        : undefined;
    },
    { timeoutMs: 60_000, context: logs },
  );
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-refusals-"));
  cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  await kubectl(["apply", "--server-side", "-k", path.join(repo, "config/default")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  await cp.registerNode(NODE, "cri-o://1.36.3");
  kubeletConfig = await cp.clientKubeconfig(path.join(dir, "kubelet.kubeconfig"), {
    user: `system:node:${NODE}`,
    groups: ["system:nodes"],
  });
  kubelet = new KubeClient(loadKubeConfig({ kind: "file", path: kubeletConfig }));
  metricsPort = await freePort();
  processes.push(
    startOperatorProcess(
      "controller",
      "controller",
      [
        `--kubeconfig=${await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller")}`,
        `--namespace=${NS}`,
        `--metrics-addr=127.0.0.1:${String(metricsPort)}`,
        `--health-addr=127.0.0.1:${String(await freePort())}`,
      ],
      path.join(dir, "controller.log"),
    ),
    startOperatorProcess(
      "agent",
      "agent",
      [
        `--kubeconfig=${await cp.serviceAccountKubeconfig(NS, "imagepolicy-agent", { boundNode: NODE })}`,
        `--namespace=${NS}`,
        `--node-name=${NODE}`,
        `--root=${path.join(dir, "node")}`,
      ],
      path.join(dir, "agent.log"),
    ),
  );
  await kubectl(["create", "namespace", TEAM]);
  await kubectl(
    ["apply", "-f", "-"],
    [
      cip("signed-apps", withScopes("registry.example"), withKey(clusterKey.b64)),
      ip(TEAM, "team-signed", withScopes("registry.example/team"), withKey(teamKey.b64)),
    ]
      .map((o) => stringify(o))
      .join("---\n"),
  );
  await nodeUpToDate();
}, 600_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("refusal explanations on a real API server", () => {
  let pod: Pod;
  let failed: string;

  it("explains a refused pull on the pod and in an ImagePullRefusal", async () => {
    pod = await createPod("web-0", IMAGE);
    failed = await kubeletEvent(
      pod,
      "Failed",
      pullFailed(IMAGE, "A signature was required, but no signature exists"),
    );
    await kubeletEvent(pod, "Failed", "Error: ErrImagePull");
    const [event] = await waitFor(
      "the controller's Event on the pod",
      async () => {
        const e = await explanations(pod);
        return e.length > 0 ? e : undefined;
      },
      { timeoutMs: 60_000, context: logs },
    );
    expect(event?.uid).toBe(pod.uid);
    expect(event?.note).toMatch(
      /^Pull of registry\.example\/app:v1 refused by the cluster layer \(ClusterImagePolicies\): scope registry\.example of ClusterImagePolicy\/signed-apps\. Details: kubectl get imagepullrefusal web-0-[0-9a-f]{10} -n team -o yaml\. Accepted would be: a sigstore signature by key sha256:[0-9a-f]{16}, naming exactly registry\.example\/app:v1/,
    );
    expect(event?.note).toContain(clusterKey.fingerprint);

    const r = await waitFor("the record's status", async () => {
      const x = await record(pod);
      return status(x)["decidingLayer"] === undefined ? undefined : x;
    });
    expect(r["metadata"]).toMatchObject({
      ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: "web-0", uid: pod.uid }],
    });
    expect(r["spec"]).toEqual({
      podName: "web-0",
      podUID: pod.uid,
      container: "app",
      image: IMAGE,
    });
    const s = status(r);
    expect(s).toMatchObject({
      decidingLayer: "Cluster",
      category: "NoSignature",
      action: "pull",
      node: NODE,
      file: "policies/team.json",
      fileScope: "registry.example",
      cluster: {
        scope: "registry.example",
        policies: [{ kind: "ClusterImagePolicy", name: "signed-apps", generation: 1 }],
      },
    });
    // The node reported the published revisions, so the only caveat is that this simulated node
    // has no CRI-O reading the files (the agent reports enforcing=false).
    expect(s["notes"]).toEqual([
      "Node node-a reports enforcing=false: its CRI-O does not read these files, so another policy refused the image.",
    ]);
    expect((s["nodeRevisions"] as Record<string, unknown>)["cluster"]).toBe(
      (s["revisions"] as Record<string, unknown>)["cluster"],
    );
    expect((s["conditions"] as unknown[])[0]).toMatchObject({
      type: "Explained",
      status: "True",
      reason: "ClusterLayer",
    });
  });

  it("explains once however often the kubelet repeats, and again on a new revision", async () => {
    const before = await outcome("deduplicated");
    await kubeletEvent(pod, "BackOff", `Back-off pulling image "${IMAGE}"`, "Normal");
    for (let count = 2; count <= 6; count++) await repeat(failed, count);
    await waitFor(
      "five repeats deduplicated",
      async () => ((await outcome("deduplicated")) >= before + 5 ? true : undefined),
      { context: logs },
    );
    expect(await explanations(pod)).toHaveLength(1);

    await kubectl(
      ["apply", "-f", "-"],
      stringify(cip("signed-apps", withScopes("registry.example"), rejecting)),
    );
    await nodeUpToDate();
    await repeat(failed, 7);
    await waitFor(
      "a second explanation",
      async () => ((await explanations(pod)).length === 2 ? true : undefined),
      { context: logs },
    );
    const s = status(await record(pod));
    expect(s["accepts"]).toEqual(["nothing: this scope rejects every image (Reject)"]);
    expect(s["count"]).toBe(7);
    // Still one record per pod and image.
    await delay(500);
    expect(await explanations(pod)).toHaveLength(2);
  });

  it("names the namespace layer for an image only the namespace's policy covers", async () => {
    const image = "registry.example/team/api:v2";
    await kubectl(["delete", "clusterimagepolicy", "signed-apps"]);
    await nodeUpToDate();
    const api = await createPod("api-0", image);
    await kubeletEvent(
      api,
      "Failed",
      pullFailed(
        image,
        "None of the signatures were accepted, reasons: cryptographic signature verification failed: invalid signature",
      ),
    );
    const r = await waitFor(
      "the record of api-0",
      async () => {
        const x = await record(api);
        return status(x)["decidingLayer"] === undefined ? undefined : x;
      },
      { context: logs },
    );
    expect(status(r)).toMatchObject({
      decidingLayer: "Namespace",
      category: "NoSignatureAccepted",
      fileScope: "registry.example/team",
      namespace: {
        scope: "registry.example/team",
        policies: [{ kind: "ImagePolicy", name: "team-signed", namespace: TEAM }],
      },
    });
    expect(JSON.stringify(status(r)["accepts"])).toContain(teamKey.fingerprint);
  });

  it("puts no key material into records or Events", async () => {
    const everything =
      (await kubectl(["get", "imagepullrefusals", "-n", TEAM, "-o", "json"])) +
      (await kubectl(["get", "events.v1.events.k8s.io", "-n", TEAM, "-o", "json"]));
    expect(everything).toContain(clusterKey.fingerprint);
    for (const k of [clusterKey, teamKey]) {
      expect(everything).not.toContain(k.b64.slice(0, 40));
      expect(everything).not.toContain(k.der.slice(0, 40));
      expect(everything).not.toContain(k.der.slice(-40));
    }
    expect(everything).not.toContain("PUBLIC KEY");
  });

  it("kubectl imagepolicy explain reads the live cluster and the node's report", async () => {
    const { stdout } = await execFileAsync(
      path.join(cp.binDir, "kubectl"),
      [
        "imagepolicy",
        "explain",
        "--image",
        "registry.example/team/api:v2",
        "-n",
        TEAM,
        "--node",
        NODE,
      ],
      {
        env: {
          ...process.env,
          PATH: `${path.join(repo, "bin")}${path.delimiter}${process.env["PATH"] ?? ""}`,
          KUBECONFIG: cp.kubeconfigPath,
        },
      },
    );
    const applied = await appliedRevisions();
    expect(stdout).toContain(`node ${NODE}: CRI-O 1.36.3, enforcing false, files `);
    expect(stdout).toContain(`cluster.json=${applied["cluster.json"] ?? "?"}`);
    expect(stdout).toContain("namespace layer (team):\n  deciding scope: registry.example/team\n");
    expect(stdout).toContain("file CRI-O reads: policies/team.json");
    expect(stdout).toContain(`a sigstore signature by key ${teamKey.fingerprint}`);
    expect(stdout).toContain(`note: Node ${NODE} reports enforcing=false`);
    expect(stdout).not.toContain(teamKey.b64.slice(0, 40));
    expect(stdout).not.toContain(teamKey.der.slice(0, 40));
  });

  it("lets the garbage collector delete the record with its pod", async () => {
    await kubectl([
      "delete",
      "pod",
      "web-0",
      "-n",
      TEAM,
      "--grace-period=0",
      "--force",
      "--wait=false",
    ]);
    await waitFor(
      "the record of web-0 to go",
      async () => {
        const list = await getJson(["get", "imagepullrefusals", "-n", TEAM]);
        const items = Array.isArray(list["items"])
          ? (list["items"] as Record<string, unknown>[])
          : [];
        return items.some((i) => (i["spec"] as Record<string, unknown>)["podUID"] === pod.uid)
          ? undefined
          : true;
      },
      { timeoutMs: 90_000 },
    );
  });
});

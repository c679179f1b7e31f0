// The trust boundaries of docs/security.md attacked on a real API server, each attack run as the
// user who would attempt it: `alice` (the built-in `admin` role in her namespaces `alice` and
// `team-a`, plus rights on ImagePolicies there), impersonated through the admin's kubeconfig; the
// cluster admin for the mistakes a cluster admin can make; and the agents' own node-bound tokens.
//
// The operator runs as a cluster runs it: `kubectl apply -k config/default`, the controller and
// one agent per simulated node as child processes with their ServiceAccounts' tokens. Every test
// asserts the refusal, the reason visible where the attacker (or the admin) looks for it, and
// that the node files are byte for byte what they were, apart from what the test changes on
// purpose. A "barrier" (a change in namespace `barrier` that must reach every node) proves the
// controller has processed everything before it: files unchanged after the barrier means the
// attack was processed and had no effect.

import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { z } from "zod";
import { newPublicKey } from "../support/builders.ts";
import { gpgSecretPackets, opensslTextDump, publicKeyring } from "../support/keyMaterial.ts";
import {
  startControlPlane,
  type CommandResult,
  type ControlPlane,
} from "../support/controlPlane.ts";
import {
  freePort,
  startOperatorProcess,
  type OperatorProcess,
} from "../support/operatorProcess.ts";
import { parseManifest } from "../../src/agent/manifest.ts";
import { appliedRevisions } from "../../src/agent/plan.ts";
import { readPolicyInlined } from "../support/nodeFiles.ts";
import { waitFor } from "../support/waitFor.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const NS = "imagepolicy-system";
const NODES = ["node-a", "node-b"] as const;
const CLUSTER = "etc/crio/imagepolicy/cluster.json";
const POLICIES = "etc/crio/policies";
const REGISTRIES_D = "etc/containers/registries.d/imagepolicy.yaml";
const OPERATOR_IMAGE = "ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0";
const COREDNS = "registry.k8s.io/coredns/coredns:v1.11.1";
const LOOKASIDE_PREFIX = "https://sigs.example.com/";

let dir: string;
let cp: ControlPlane;
let metricsPort: number;
const processes: OperatorProcess[] = [];
const agentKubeconfigs = new Map<string, string>();

const logs = async (): Promise<string> =>
  (await Promise.all(processes.map((p) => p.logTail(30)))).join("\n");

function describeResult(r: CommandResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

async function kubectl(args: readonly string[], stdin?: string): Promise<string> {
  const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** kubectl as alice (the admin impersonating her: RBAC and admission see alice). */
function asAlice(args: readonly string[], stdin?: string): Promise<CommandResult> {
  return cp.kubectl(["--as=alice", ...args], stdin === undefined ? undefined : { stdin });
}

async function asAliceOk(args: readonly string[], stdin?: string): Promise<string> {
  const r = await asAlice(args, stdin);
  if (r.code !== 0) throw new Error(`kubectl --as=alice ${args.join(" ")}:\n${describeResult(r)}`);
  return r.stdout;
}

const root = (node: string): string => path.join(dir, "nodes", node);

/** Every file under a node's root: relative path -> bytes (base64, to compare byte for byte). */
async function nodeFiles(node: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        out.set(path.relative(root(node), p), (await readFile(p)).toString("base64"));
      }
    }
  };
  await walk(root(node));
  return out;
}

type Snapshot = ReadonlyMap<string, ReadonlyMap<string, string>>;

async function snapshot(): Promise<Snapshot> {
  return new Map(await Promise.all(NODES.map(async (n) => [n, await nodeFiles(n)] as const)));
}

/** The node files once everything before has reached the nodes (a barrier first). */
async function settled(): Promise<Snapshot> {
  await barrier();
  return snapshot();
}

/** Files the barrier and its manifest bookkeeping touch: everything else must stay. */
const BARRIER_FILES = new Set([
  `${POLICIES}/barrier.json`,
  "etc/crio/imagepolicy/.imagepolicy-manifest",
]);

function expectUnchanged(before: Snapshot, after: Snapshot, allowed: ReadonlySet<string>): void {
  for (const node of NODES) {
    const a = before.get(node) ?? new Map<string, string>();
    const b = after.get(node) ?? new Map<string, string>();
    const keys = new Set([...a.keys(), ...b.keys()]);
    for (const k of [...keys].sort()) {
      // Temporary files of the agent's atomic writes may be caught mid-write.
      if (allowed.has(k) || BARRIER_FILES.has(k) || path.basename(k).includes(".tmp")) continue;
      // Key files are named by the hash of their bytes: one may come or go with the policies
      // that name it (the policy files above must stay byte for byte), never change.
      if (k.startsWith("etc/crio/imagepolicy/keys/") && (!a.has(k) || !b.has(k))) continue;
      expect(b.get(k), `${node}: ${k} changed`).toBe(a.get(k));
    }
  }
}

// A policy file with the key files it names inlined.
const readNode = (node: string, rel: string): Promise<string | undefined> =>
  readPolicyInlined(root(node), rel);

async function onEveryNode(
  what: string,
  rel: string,
  ok: (text: string | undefined) => boolean,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `${what} (${rel} on every node)`,
    async () => {
      const texts = await Promise.all(NODES.map((n) => readNode(n, rel)));
      return texts.every(ok) ? true : undefined;
    },
    { timeoutMs, intervalMs: 100, context: logs },
  );
}

let barrierCount = 0;

/** A change that must reach every node: once it has, the controller has processed everything
 * that happened before it (one work queue, the layers recomputed as a whole). */
async function barrier(): Promise<void> {
  barrierCount += 1;
  const scope = `quay.io/barrier/b${String(barrierCount)}`;
  await kubectl(
    ["apply", "-f", "-"],
    stringify(ip("barrier", "barrier", [scope], { policyType: "Reject" })),
  );
  await onEveryNode(
    `barrier ${String(barrierCount)}`,
    `${POLICIES}/barrier.json`,
    (t) => t?.includes(`"${scope}"`) === true,
  );
}

type RootOfTrust = Record<string, unknown>;
const keyed = (keyData: string): RootOfTrust => ({
  policyType: "PublicKey",
  publicKey: { keyData },
});

function cip(name: string, scopes: string[], rootOfTrust: RootOfTrust): Record<string, unknown> {
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ClusterImagePolicy",
    metadata: { name },
    spec: { scopes, policy: { rootOfTrust } },
  };
}

function ip(
  namespace: string,
  name: string,
  scopes: string[],
  rootOfTrust: RootOfTrust,
): Record<string, unknown> {
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicy",
    metadata: { name, namespace },
    spec: { scopes, policy: { rootOfTrust } },
  };
}

const conditionsSchema = z.object({
  metadata: z.object({ generation: z.number() }).loose(),
  status: z
    .object({
      conditions: z
        .array(
          z
            .object({
              type: z.string(),
              status: z.string(),
              reason: z.string(),
              message: z.string(),
              observedGeneration: z.number().optional(),
            })
            .loose(),
        )
        .optional(),
    })
    .loose()
    .optional(),
});

interface Condition {
  readonly status: string;
  readonly reason: string;
  readonly message: string;
}

/** Waits until the object's condition `type` for its current generation satisfies `ok`. */
async function condition(
  resource: string,
  name: string,
  namespace: string | undefined,
  type: string,
  ok: (c: Condition) => boolean,
  timeoutMs = 60_000,
): Promise<Condition> {
  return waitFor(
    `${type} of ${resource} ${namespace === undefined ? "" : `${namespace}/`}${name}`,
    async () => {
      const args = ["get", resource, name, "-o", "json"];
      if (namespace !== undefined) args.push("-n", namespace);
      const o = conditionsSchema.parse(JSON.parse(await kubectl(args)));
      const c = o.status?.conditions?.find((x) => x.type === type);
      return c !== undefined && c.observedGeneration === o.metadata.generation && ok(c)
        ? c
        : undefined;
    },
    {
      timeoutMs,
      context: async () => {
        const args = ["get", resource, name, "-o", "yaml"];
        if (namespace !== undefined) args.push("-n", namespace);
        return `${(await cp.kubectl(args)).stdout}\n${await logs()}`;
      },
    },
  );
}

/** A public keyring followed by the fixture's GPG secret key. */
function keyringWithSecret(): { keyring: string; secretB64: string } {
  const secret = gpgSecretPackets();
  return {
    keyring: Buffer.concat([publicKeyring(), secret]).toString("base64"),
    secretB64: secret.subarray(0, 48).toString("base64"),
  };
}

async function metric(name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${String(metricsPort)}/metrics`);
  const text = await res.text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no metric ${name}`);
  return Number(line.split(" ")[1]);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-attacks-"));
  cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
  await kubectl(["apply", "--server-side", "-k", path.join(repo, "config/default")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  for (const node of NODES) await cp.registerNode(node, "cri-o://1.34.0");
  // alice: admin of her namespaces, and may manage ImagePolicies there (the built-in admin role
  // does not cover custom resources).
  await kubectl(
    ["apply", "-f", "-"],
    [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "alice" } },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-a" } },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-b" } },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "barrier" } },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "imagepolicy-editor" },
        rules: [{ apiGroups: ["imagepolicy.dev"], resources: ["imagepolicies"], verbs: ["*"] }],
      },
      ...["alice", "team-a"].flatMap((ns) => [
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "alice-admin", namespace: ns },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice" }],
        },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "alice-imagepolicies", namespace: ns },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: "imagepolicy-editor",
          },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice" }],
        },
      ]),
      // A kube-system pod (no kubelet runs it): its image is protected by default.
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "coredns", namespace: "kube-system" },
        spec: {
          tolerations: [{ operator: "Exists" }],
          containers: [{ name: "coredns", image: COREDNS }],
        },
      },
      // What the admins have in force before the attacks.
      cip("registry-signed", ["registry.example.com"], keyed(newPublicKey())),
      ip("team-a", "team-a-signed", ["registry.example.com/team-a"], keyed(newPublicKey())),
      ip("team-b", "team-b-signed", ["registry.example.com/team-b"], keyed(newPublicKey())),
      ip("barrier", "barrier", ["quay.io/barrier/b0"], { policyType: "Reject" }),
    ]
      .map((o) => stringify(o))
      .join("---\n"),
  );
  metricsPort = await freePort();
  const controllerKubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller");
  processes.push(
    startOperatorProcess(
      "controller",
      "controller",
      [
        `--kubeconfig=${controllerKubeconfig}`,
        `--namespace=${NS}`,
        `--operator-image=${OPERATOR_IMAGE}`,
        `--namespace-lookaside-prefix=${LOOKASIDE_PREFIX}`,
        `--metrics-addr=127.0.0.1:${String(metricsPort)}`,
        `--health-addr=127.0.0.1:${String(await freePort())}`,
      ],
      path.join(dir, "controller.log"),
    ),
  );
  for (const node of NODES) {
    const kubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-agent", {
      boundNode: node,
    });
    agentKubeconfigs.set(node, kubeconfig);
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
  for (const ns of ["team-a", "team-b", "barrier"]) {
    await onEveryNode(`${ns}.json`, `${POLICIES}/${ns}.json`, (t) => t !== undefined, 120_000);
  }
  await onEveryNode("cluster.json", CLUSTER, (t) => t?.includes("registry.example.com") === true);
}, 900_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
});

/** What each test undoes after it, passed or failed, so that one attack that succeeds (on code
 * without the rules) does not make the next ones fail for its reason. */
const undo: (() => Promise<unknown>)[] = [];
const undoDelete = (args: readonly string[], as: "admin" | "alice" = "admin"): void => {
  undo.push(() =>
    (as === "alice" ? asAlice : (a: readonly string[]) => cp.kubectl(a))([
      "delete",
      ...args,
      "--ignore-not-found",
    ]),
  );
};

describe("attacks on the trust boundaries (docs/security.md)", () => {
  afterEach(async () => {
    for (const u of undo.splice(0).reverse()) await u();
  });

  it("1. cluster trust hijack: a ClusterImagePolicy cannot read a Secret alice can replace", async () => {
    const vendorKey = newPublicKey();
    const aliceKey = newPublicKey();
    const secretIn = (namespace: string, key: string): string =>
      stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "vendor-key", namespace },
        stringData: { "cosign.pub": Buffer.from(key, "base64").toString("utf8") },
      });
    undoDelete(["clusterimagepolicy", "vendor"]);
    await kubectl(["apply", "-f", "-"], secretIn("team-a", vendorKey));
    const before = await settled();
    // The cluster admin's mistake: a key in a namespace someone else administers.
    await kubectl(
      ["apply", "-f", "-"],
      stringify(
        cip("vendor", ["registry.example.com/vendor"], {
          policyType: "PublicKey",
          publicKey: {
            keySecretRef: { name: "vendor-key", namespace: "team-a", key: "cosign.pub" },
          },
        }),
      ),
    );
    const refused = await condition(
      "clusterimagepolicy",
      "vendor",
      undefined,
      "Compiled",
      (c) => c.status === "False",
    );
    expect(refused.reason).toBe("SecretNamespaceNotAllowed");
    expect(refused.message).toContain("spec.policy.rootOfTrust.publicKey.keySecretRef.namespace");
    expect(refused.message).toContain(NS);
    // alice replaces the Secret with her own key.
    await asAliceOk(["apply", "-f", "-"], secretIn("team-a", aliceKey));
    await barrier();
    expectUnchanged(before, await snapshot(), new Set());
    for (const node of NODES) {
      const files = [...(await nodeFiles(node)).values()].map((b) =>
        Buffer.from(b, "base64").toString(),
      );
      expect(files.some((t) => t.includes(aliceKey) || t.includes(vendorKey))).toBe(false);
    }
    // The same key from the operator namespace is accepted: the rule, not the feature, refused it.
    await kubectl(["apply", "-f", "-"], secretIn(NS, vendorKey));
    await kubectl(
      ["apply", "-f", "-"],
      stringify(
        cip("vendor", ["registry.example.com/vendor"], {
          policyType: "PublicKey",
          publicKey: { keySecretRef: { name: "vendor-key", namespace: NS, key: "cosign.pub" } },
        }),
      ),
    );
    await onEveryNode(
      "the vendor key from the operator namespace",
      CLUSTER,
      (t) => t?.includes(vendorKey) === true,
    );
  });

  it("2. one namespace cannot freeze another: 12 ImagePolicies x 256 long scopes hit a quota, the rest moves on", async () => {
    const key = newPublicKey();
    // ~360 characters: a 230-character repository and a 128-character tag (the longest a
    // reference may have): 12 x 256 of them make a layer of ~1.1 MB, more than a ConfigMap holds.
    const long = (i: number, j: number): string =>
      `registry.example.com/${"a".repeat(200)}/p${String(i)}/r${String(j)}:${"t".repeat(128)}`;
    const flood = Array.from({ length: 12 }, (_, i) =>
      ip(
        "alice",
        `flood-${String(i).padStart(2, "0")}`,
        Array.from({ length: 256 }, (_, j) => long(i, j)),
        keyed(key),
      ),
    );
    undo.push(async () => {
      await asAlice(["delete", "imagepolicy", "--all", "-n", "alice"]);
      await onEveryNode("alice.json removed", `${POLICIES}/alice.json`, (t) => t === undefined);
    });
    const before = await settled();
    for (const f of flood) await asAliceOk(["apply", "-f", "-"], stringify(f));
    // Later, team-a tightens its policy (a revocation): it must reach the nodes all the same.
    const revoked = newPublicKey();
    await asAliceOk(
      ["apply", "-f", "-"],
      stringify(ip("team-a", "team-a-signed", ["registry.example.com/team-a"], keyed(revoked))),
    );
    await onEveryNode(
      "team-a's tightening",
      `${POLICIES}/team-a.json`,
      (t) => t?.includes(revoked) === true,
    );
    // Some of alice's policies are refused, naming the limit.
    const refusals: Condition[] = [];
    for (const f of flood) {
      const name = z
        .object({ metadata: z.object({ name: z.string() }).loose() })
        .loose()
        .parse(f).metadata.name;
      const c = await condition("imagepolicy", name, "alice", "Compiled", () => true);
      if (c.status === "False") refusals.push(c);
    }
    expect(refusals.length).toBeGreaterThan(0);
    expect(
      [...new Set(refusals.map((c) => c.reason))],
      refusals.map((c) => c.message).join("\n"),
    ).toEqual(["QuotaExceeded"]);
    expect(refusals[0]?.message).toMatch(
      /at most \d+ (scopes|bytes).*--namespace-max-(scopes|bytes)/,
    );
    await barrier();
    const after = await snapshot();
    // registries.d gains use-sigstore-attachments for alice's accepted scopes (her own images);
    // everything it held before stays.
    expectUnchanged(
      before,
      after,
      new Set([`${POLICIES}/team-a.json`, `${POLICIES}/alice.json`, REGISTRIES_D]),
    );
    for (const node of NODES) {
      const was = Buffer.from(before.get(node)?.get(REGISTRIES_D) ?? "", "base64").toString();
      const now = (await readNode(node, REGISTRIES_D)) ?? "";
      for (const line of was.split("\n")) expect(now).toContain(line);
    }
    // What alice did get published stays within the namespace's byte quota.
    const layer = await kubectl([
      "get",
      "configmap",
      "imagepolicy-layer-ns-alice",
      "-n",
      NS,
      "-o",
      "jsonpath={.data.layer\\.json}",
    ]);
    expect(Buffer.byteLength(layer)).toBeGreaterThan(0);
    expect(Buffer.byteLength(layer)).toBeLessThanOrEqual(262_144 + 1_024);
  });

  it("3. a namespace cannot block a cluster policy nor reach registries.d with file://", async () => {
    const pubOnly = publicKeyring().toString("base64");
    undoDelete(["imagepolicy", "local-sigs", "allowed-sigs", "-n", "team-a"], "alice");
    undoDelete(["clusterimagepolicy", "vendor-gpg"]);
    const before = await settled();
    const r = await asAlice(
      ["apply", "-f", "-"],
      stringify(
        ip("team-a", "local-sigs", ["registry.example.com/app"], {
          policyType: "GPGKey",
          gpgKey: { keyData: pubOnly, lookaside: "file:///etc/kubernetes/pki" },
        }),
      ),
    );
    if (r.code === 0) {
      const c = await condition(
        "imagepolicy",
        "local-sigs",
        "team-a",
        "Compiled",
        (x) => x.status === "False",
      );
      expect(c.reason).toBe("LookasideNotAllowed");
      expect(c.message).toContain("file://");
    } else {
      // Refused at admission (the CRD's schema); the controller's gate is covered by the unit
      // tests and by the allow-list case below.
      expect(r.stderr).toMatch(/file:\/\//);
    }
    await barrier();
    expectUnchanged(before, await snapshot(), new Set());
    // The cluster admin's later GPG policy on that registry is accepted and wins registries.d.
    await kubectl(
      ["apply", "-f", "-"],
      stringify(
        cip("vendor-gpg", ["registry.example.com/app"], {
          policyType: "GPGKey",
          gpgKey: { keyData: pubOnly, lookaside: "https://vendor.example/sigs" },
        }),
      ),
    );
    const ok = await condition(
      "clusterimagepolicy",
      "vendor-gpg",
      undefined,
      "Compiled",
      () => true,
    );
    expect(ok.status, ok.message).toBe("True");
    await onEveryNode(
      "the vendor lookaside",
      REGISTRIES_D,
      (t) => t?.includes("https://vendor.example/sigs") === true,
    );
    for (const node of NODES) expect(await readNode(node, REGISTRIES_D)).not.toContain("file://");
    // A lookaside inside the allow-list, on the same images, is refused too: the cluster policy's
    // signatures would be looked up there.
    await asAliceOk(
      ["apply", "-f", "-"],
      stringify(
        ip("team-a", "allowed-sigs", ["registry.example.com/app"], {
          policyType: "GPGKey",
          gpgKey: { keyData: pubOnly, lookaside: `${LOOKASIDE_PREFIX}alice` },
        }),
      ),
    );
    const redirected = await condition(
      "imagepolicy",
      "allowed-sigs",
      "team-a",
      "Compiled",
      (x) => x.status === "False",
    );
    expect(["LookasideNotAllowed", "ConflictingLookaside"]).toContain(redirected.reason);
    await barrier();
    for (const node of NODES)
      expect(await readNode(node, REGISTRIES_D)).not.toContain(LOOKASIDE_PREFIX);
  });

  it("4. private key material is never published: an openssl -text dump, a keyring with a secret key", async () => {
    const { dump, privateHex } = opensslTextDump();
    const { keyring, secretB64 } = keyringWithSecret();
    undoDelete(["imagepolicy", "dump", "secret-keyring", "-n", "team-a"], "alice");
    const before = await settled();
    const attempts = [
      ip(
        "team-a",
        "dump",
        ["registry.example.com/team-a/dump"],
        keyed(Buffer.from(dump).toString("base64")),
      ),
      ip("team-a", "secret-keyring", ["registry.example.com/team-a/gpg"], {
        policyType: "GPGKey",
        gpgKey: { keyData: keyring },
      }),
    ];
    for (const a of attempts) {
      const name = z
        .object({ metadata: z.object({ name: z.string() }).loose() })
        .loose()
        .parse(a).metadata.name;
      const r = await asAlice(["apply", "-f", "-"], stringify(a));
      if (r.code === 0) {
        const c = await condition(
          "imagepolicy",
          name,
          "team-a",
          "Compiled",
          (x) => x.status === "False",
        );
        expect(c.reason).toBe("InvalidKey");
        expect(c.message).toMatch(/text outside the PEM block|secret key/);
        // The reason never quotes the key material.
        expect(c.message).not.toContain(privateHex.slice(0, 20));
      } else {
        expect(r.stderr).toMatch(/private|secret|PRIVATE/i);
      }
    }
    await barrier();
    expectUnchanged(before, await snapshot(), new Set());
    const layers = await kubectl(["get", "configmaps", "-n", NS, "-o", "json"]);
    expect(layers).not.toContain(privateHex.replaceAll(":", ""));
    expect(layers).not.toContain(secretB64);
  });

  it("5. lock-out: requiring an unrelated key for pause, or rejecting a kube-system image, is refused; deleting an exception is reported", async () => {
    undoDelete([
      "clusterimagepolicy",
      "pause-signed",
      "no-coredns",
      "k8s-exception",
      "operator-exception",
      "deny-all",
    ]);
    const before = await settled();
    await kubectl(
      ["apply", "-f", "-"],
      stringify(cip("pause-signed", ["registry.k8s.io/pause"], keyed(newPublicKey()))),
    );
    const pause = await condition(
      "clusterimagepolicy",
      "pause-signed",
      undefined,
      "Compiled",
      (c) => c.status === "False",
    );
    expect(pause.reason).toBe("WouldRejectPause");
    expect(pause.message).toContain("registry.k8s.io/pause");
    await kubectl(
      ["apply", "-f", "-"],
      stringify(cip("no-coredns", ["registry.k8s.io/coredns"], { policyType: "Reject" })),
    );
    const coredns = await condition(
      "clusterimagepolicy",
      "no-coredns",
      undefined,
      "Compiled",
      (c) => c.status === "False",
    );
    expect(coredns.reason).toBe("WouldRejectProtectedImage");
    expect(coredns.message).toContain("kube-system/coredns");
    await barrier();
    expectUnchanged(before, await snapshot(), new Set());
    await kubectl(["delete", "clusterimagepolicy", "pause-signed", "no-coredns"]);

    // Default deny with exceptions for what the cluster must keep pulling: accepted.
    await kubectl(
      ["apply", "-f", "-"],
      [
        cip("k8s-exception", ["registry.k8s.io"], { policyType: "InsecureAcceptAnything" }),
        cip("operator-exception", ["ghcr.io/imagepolicy-dev"], {
          policyType: "InsecureAcceptAnything",
        }),
        cip("deny-all", ["*"], { policyType: "Reject" }),
      ]
        .map((o) => stringify(o))
        .join("---\n"),
    );
    const deny = await condition(
      "clusterimagepolicy",
      "deny-all",
      undefined,
      "Compiled",
      () => true,
    );
    expect(deny.status, deny.message).toBe("True");
    // Deleting the exception cannot be refused: the policy that now decides says so.
    await kubectl(["delete", "clusterimagepolicy", "k8s-exception"]);
    const risk = await condition(
      "clusterimagepolicy",
      "deny-all",
      undefined,
      "LockOutRisk",
      (c) => c.status === "True",
    );
    expect(risk.reason).toMatch(/WouldRejectPause|WouldRejectProtectedImage/);
    expect(risk.message).toContain("registry.k8s.io/pause");
    expect(risk.message).toContain(COREDNS);
  });

  it("6. the controller reads only referenced Secrets, and only what a namespace admin grants by name", async () => {
    undoDelete(["imagepolicy", "from-secret", "-n", "team-a"], "alice");
    undoDelete(["secrets", "--all", "-n", "alice"], "alice");
    // 40 large unreferenced Secrets in alice's namespace cost the controller nothing.
    const big = "x".repeat(100_000);
    for (let i = 0; i < 40; i++) {
      await asAliceOk([
        "create",
        "secret",
        "generic",
        `junk-${String(i)}`,
        "-n",
        "alice",
        `--from-literal=data=${big}`,
      ]);
    }
    const teamKey = newPublicKey();
    await asAliceOk(
      ["apply", "-f", "-"],
      stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "team-key", namespace: "team-a" },
        stringData: { "cosign.pub": Buffer.from(teamKey, "base64").toString("utf8") },
      }),
    );
    await asAliceOk(
      ["apply", "-f", "-"],
      stringify(
        ip("team-a", "from-secret", ["registry.example.com/team-a/secret"], {
          policyType: "PublicKey",
          publicKey: { keySecretRef: { name: "team-key", key: "cosign.pub" } },
        }),
      ),
    );
    // The install's RBAC gives the controller no Secret of team-a: it says what to do.
    const pending = await condition(
      "imagepolicy",
      "from-secret",
      "team-a",
      "Compiled",
      (c) => c.status === "False",
    );
    expect(pending.reason).toBe("SecretPending");
    expect(pending.message).toContain("team-a/team-key");
    // alice grants exactly that Secret, by name.
    await asAliceOk(
      ["apply", "-f", "-"],
      [
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "Role",
          metadata: { name: "imagepolicy-keys", namespace: "team-a" },
          rules: [
            {
              apiGroups: [""],
              resources: ["secrets"],
              resourceNames: ["team-key"],
              verbs: ["get", "list", "watch"],
            },
          ],
        },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "imagepolicy-keys", namespace: "team-a" },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "Role",
            name: "imagepolicy-keys",
          },
          subjects: [{ kind: "ServiceAccount", name: "imagepolicy-controller", namespace: NS }],
        },
      ]
        .map((o) => stringify(o))
        .join("---\n"),
    );
    await onEveryNode(
      "team-a's key from its Secret",
      `${POLICIES}/team-a.json`,
      (t) => t?.includes(teamKey) === true,
      90_000,
    );
    const accepted = await condition(
      "imagepolicy",
      "from-secret",
      "team-a",
      "Compiled",
      () => true,
    );
    expect(accepted.status, accepted.message).toBe("True");
    // One Secret watched: the referenced one; none of alice's 40.
    expect(await metric("imagepolicy_controller_secrets_watched")).toBe(1);
  });

  it("7. an agent's pod-bound token reads no Secret and writes no other node's status, wherever it is installed", async () => {
    const agentA = agentKubeconfigs.get("node-a") ?? "";
    const secrets = await cp.kubectl([`--kubeconfig=${agentA}`, "get", "secrets", "-n", NS]);
    expect(secrets.code, describeResult(secrets)).not.toBe(0);
    expect(secrets.stderr).toContain("forbidden");
    const patchStatusOf = (kubeconfig: string, node: string): Promise<CommandResult> =>
      cp.kubectl([
        `--kubeconfig=${kubeconfig}`,
        "patch",
        "imagepolicynodestatus",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status: { enforcing: true, enforcingReason: "forged" } }),
      ]);
    const forged = await patchStatusOf(agentA, "node-b");
    expect(forged.code, describeResult(forged)).not.toBe(0);
    expect(forged.stderr).toContain("may write only the ImagePolicyNodeStatus node-a, not node-b");
    // The agent as installed into another namespace (`ops`): its ServiceAccount, the agent's
    // ClusterRole, and the token the kubelet would mount into its pod on node-b.
    await kubectl(["create", "namespace", "ops"]);
    await kubectl(["create", "serviceaccount", "imagepolicy-agent", "-n", "ops"]);
    await kubectl([
      "create",
      "clusterrolebinding",
      "imagepolicy-agent-ops",
      "--clusterrole=imagepolicy-agent",
      "--serviceaccount=ops:imagepolicy-agent",
    ]);
    const elsewhere = await cp.serviceAccountKubeconfig("ops", "imagepolicy-agent", {
      boundNode: "node-b",
    });
    // node-a's agent reports its files a while after writing them (--status-delay): the last
    // test's change may still be on its way. Its report of what the manifest records comes
    // first, so that only the forged patch could change the status below.
    const statusOf = (text: string): unknown =>
      z.object({ status: z.unknown() }).loose().parse(JSON.parse(text)).status;
    await waitFor(
      "node-a's report of the files its manifest records",
      async () => {
        const manifest = parseManifest(
          await readFile(
            path.join(root("node-a"), "etc/crio/imagepolicy/.imagepolicy-manifest"),
            "utf8",
          ),
        ).manifest;
        const status = statusOf(
          await kubectl(["get", "imagepolicynodestatus", "node-a", "-o", "json"]),
        );
        const reported = z.object({ appliedRevisions: z.unknown() }).loose().parse(status);
        return isDeepStrictEqual(reported.appliedRevisions, appliedRevisions(manifest))
          ? true
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    const before = await kubectl(["get", "imagepolicynodestatus", "node-a", "-o", "json"]);
    const other = await patchStatusOf(elsewhere, "node-a");
    expect(other.code, describeResult(other)).not.toBe(0);
    expect(other.stderr).toContain("may write only the ImagePolicyNodeStatus node-b, not node-a");
    const after = await kubectl(["get", "imagepolicynodestatus", "node-a", "-o", "json"]);
    expect(after).not.toContain("forged");
    expect(statusOf(after)).toEqual(statusOf(before));
  });

  it("7. the controller serves /metrics on loopback only", async () => {
    const refused = startOperatorProcess(
      "controller on every address",
      "controller",
      [`--kubeconfig=${cp.kubeconfigPath}`, `--metrics-addr=:${String(await freePort())}`],
      path.join(dir, "controller-any-address.log"),
    );
    processes.push(refused);
    const code = await Promise.race([
      refused.exited,
      new Promise<string>((resolve) =>
        setTimeout(() => {
          resolve("still running");
        }, 20_000),
      ),
    ]);
    expect(code).toBe(2);
    expect(await refused.logTail(80)).toContain("--metrics-addr must be a loopback address");
  });
});

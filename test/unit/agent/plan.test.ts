// The agent's write order keeps every namespace file tighter than cluster.json at every instant
// (docs/design.md rule 5), checked on every intermediate state of the files with the compiler's scope
// semantics, for hand-written and random transitions.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyPlan } from "../../../src/agent/apply.ts";
import { emptyManifest, parseManifest, type Manifest } from "../../../src/agent/manifest.ts";
import { plan, type Desired, type NamespaceInput, type NodeEnv } from "../../../src/agent/plan.ts";
import { LATEST_KNOWN, parseCrioVersion } from "../../../src/compiler/crioVersion.ts";
import { parseLayer, type Layer } from "../../../src/compiler/layer.ts";
import type { Requirement } from "../../../src/compiler/requirements.ts";
import { newPublicKey } from "../../support/builders.ts";
import {
  ACCEPT,
  allowed,
  input,
  keyReq,
  layer,
  MemoryFs,
  namespaceOf,
  PATHS,
  REJECT,
  type Snapshot,
} from "./support.ts";

const K1 = newPublicKey();
const K2 = newPublicKey();
const IMAGES = [
  "reg.io/app:1",
  "reg.io/app/sub:1",
  "reg.io/other:1",
  "reg.io:5000/app:1",
  "sub.reg.io/x:1",
  "a.sub.reg.io/y:1",
  "nginx",
  "other.io/a:1",
];
const SIGNERS = [new Set<string>(), new Set([K1]), new Set([K2]), new Set([K1, K2])];
const ENV: NodeEnv = { target: LATEST_KNOWN, registries: [], otherKeys: new Map() };

/** Every namespace file present allows only what cluster.json allows. */
function checkTightenOnly(files: Snapshot, what: string): void {
  const cluster = files.get(PATHS.clusterJson);
  for (const [p, text] of files) {
    const ns = namespaceOf(p);
    if (ns === undefined || ns === "foreign") continue;
    expect(cluster, `${what}: ${ns}.json exists before cluster.json`).toBeDefined();
    for (const image of IMAGES) {
      for (const signers of SIGNERS) {
        if (allowed(text, image, signers) && !allowed(cluster ?? "", image, signers)) {
          expect.fail(
            `${what}: ${ns}.json allows ${image} signed by ${String(signers.size)} key(s), cluster.json does not`,
          );
        }
      }
    }
  }
}

interface Node {
  fs: MemoryFs;
  manifest: Manifest;
  checks: number;
}

function newNode(): Node {
  const node: Node = {
    fs: new MemoryFs((s, what) => {
      checkTightenOnly(s, what);
      node.checks++;
    }),
    manifest: emptyManifest("/etc/crio/policies"),
    checks: 0,
  };
  return node;
}

function desired(cluster: Layer, namespaces: Record<string, Layer>): Desired {
  const ns = new Map<string, NamespaceInput>();
  for (const [name, l] of Object.entries(namespaces)) ns.set(name, { ok: true, input: input(l) });
  return { cluster: input(cluster), namespaces: ns };
}

async function step(node: Node, d: Desired, env: NodeEnv = ENV): Promise<string[]> {
  const r = plan({ manifest: node.manifest, registriesD: {} }, d, env, parseLayer);
  if (!r.ok) expect.fail(r.problems.join("; "));
  const res = await applyPlan(r.plan, node.manifest, PATHS, node.fs);
  if (res.error !== undefined) expect.fail(res.error.message);
  node.manifest = res.manifest;
  return [...res.written];
}

const c1 = layer(undefined, [
  [[""], REJECT],
  [["reg.io/app"], keyReq(K1)],
  [["*.reg.io"], ACCEPT],
]);
const c2 = layer(undefined, [
  [["reg.io"], ACCEPT],
  [["reg.io/app"], keyReq(K2)],
]);
const teamA = layer("team-a", [[["reg.io"], keyReq(K1)]]);
const teamB = layer("team-b", [[["reg.io/app", "sub.reg.io"], ACCEPT]]);
const teamC = layer("team-c", [[["*.io"], keyReq(K2)]]);

describe("plan + apply", () => {
  it("writes cluster.json first, then namespace files, and nothing when nothing changed", async () => {
    const node = newNode();
    const written = await step(node, desired(c1, { "team-a": teamA, "team-b": teamB }));
    const clusterAt = written.indexOf(PATHS.clusterJson);
    expect(clusterAt).toBeGreaterThanOrEqual(0);
    expect(written.indexOf(`${PATHS.policyDir}/team-a.json`)).toBeGreaterThan(clusterAt);
    // registries.d (K1 needs sigstore attachments) before any policy.
    expect(written[0]).toBe(PATHS.registriesDFile);
    expect(written.at(-1)).toBe(PATHS.manifest);
    expect(await step(node, desired(c1, { "team-a": teamA, "team-b": teamB }))).toEqual([]);
    expect(parseManifest(node.fs.files.get(PATHS.manifest) ?? "").namespaces).toEqual({
      "team-a": `${input(c1).revision}.${input(teamA).revision}`,
      "team-b": `${input(c1).revision}.${input(teamB).revision}`,
    });
  });

  it("keeps namespace files tighter than cluster.json through a cluster change, with an intersection first", async () => {
    const node = newNode();
    await step(node, desired(c1, { "team-a": teamA, "team-b": teamB }));
    const written = await step(node, desired(c2, { "team-a": teamA, "team-b": teamB }));
    const a = `${PATHS.policyDir}/team-a.json`;
    // team-a.json is written twice (intersection, final) around cluster.json.
    const aWrites = written.flatMap((p, i) => (p === a ? [i] : []));
    expect(aWrites).toHaveLength(2);
    expect(aWrites[0]).toBeLessThan(written.indexOf(PATHS.clusterJson));
    expect(aWrites[1]).toBeGreaterThan(written.indexOf(PATHS.clusterJson));
    // Back and forth, adding and removing namespaces.
    await step(node, desired(c1, { "team-c": teamC, "team-b": teamB }));
    expect(node.fs.files.has(a)).toBe(false);
    await step(node, desired(layer(undefined, []), { "team-c": teamC }));
    expect(node.checks).toBeGreaterThan(10);
  });

  it("deletes only files it listed, never cluster.json", async () => {
    const node = newNode();
    node.fs.files.set(`${PATHS.policyDir}/foreign.json`, "{}");
    await step(node, desired(c1, { "team-a": teamA }));
    await step(node, desired(c1, {}));
    expect(node.fs.files.has(`${PATHS.policyDir}/team-a.json`)).toBe(false);
    expect(node.fs.files.has(`${PATHS.policyDir}/foreign.json`)).toBe(true);
    expect(node.fs.files.has(PATHS.clusterJson)).toBe(true);
  });

  it("after a failure midway, the next run finishes the transition, still tighten-only", async () => {
    const node = newNode();
    await step(node, desired(c1, { "team-a": teamA, "team-b": teamB }));
    node.fs.failOn = (p) => p.endsWith("team-b.json");
    const r = plan(
      { manifest: node.manifest, registriesD: {} },
      desired(c2, { "team-a": teamA, "team-b": teamB }),
      ENV,
      parseLayer,
    );
    if (!r.ok) throw new Error("plan");
    const res = await applyPlan(r.plan, node.manifest, PATHS, node.fs);
    expect(res.error?.message).toContain("injected failure");
    node.manifest = res.manifest;
    // The manifest remembers both cluster layers.
    expect(res.manifest.clusterLayers).toHaveLength(2);
    node.fs.failOn = undefined;
    // The API moved on meanwhile: a third cluster layer.
    await step(
      node,
      desired(layer(undefined, [[["reg.io"], keyReq(K2)]]), { "team-a": teamA, "team-b": teamB }),
    );
    expect(node.manifest.clusterLayers).toHaveLength(1);
  });

  it("keeps the last usable layer, or fails closed, for a namespace it cannot render", async () => {
    const node = newNode();
    const multi = layer("team-m", [[["reg.io"], keyReq(K1, K2)]]);
    await step(node, desired(c1, { "team-m": multi }));
    const old = parseCrioVersion("1.31.0"); // keyDatas needs 1.32
    const d1 = desired(c1, { "team-m": multi });
    const r1 = plan(
      { manifest: node.manifest, registriesD: {} },
      d1,
      { ...ENV, target: old },
      parseLayer,
    );
    if (!r1.ok) throw new Error("plan");
    expect(r1.plan.problems.join("\n")).toContain("keeping its file as it is");
    const d2 = desired(c2, { "team-m": multi });
    const r2 = plan(
      { manifest: node.manifest, registriesD: {} },
      d2,
      { ...ENV, target: old },
      parseLayer,
    );
    if (!r2.ok) throw new Error("plan");
    expect(r2.plan.appliedRevisions["team-m.json"]).toMatch(/\.unrendered$/);
    await applyPlan(r2.plan, node.manifest, PATHS, node.fs);
    const text = node.fs.files.get(`${PATHS.policyDir}/team-m.json`) ?? "";
    for (const image of IMAGES) expect(allowed(text, image, new Set([K1, K2]))).toBe(false);
  });

  it("refuses a cluster layer the node's CRI-O cannot parse and writes nothing", () => {
    const c = layer(undefined, [[["reg.io"], keyReq(K1, K2)]]);
    const r = plan(
      { manifest: emptyManifest("/x"), registriesD: {} },
      desired(c, {}),
      { ...ENV, target: parseCrioVersion("1.30") },
      parseLayer,
    );
    expect(r.ok).toBe(false);
  });

  it("skips a namespace whose name is not a DNS-1123 label", () => {
    const bad: Layer = { namespace: "../etc", policies: [] };
    const d: Desired = {
      cluster: input(c1),
      namespaces: new Map<string, NamespaceInput>([["../etc", { ok: true, input: input(bad) }]]),
    };
    const r = plan({ manifest: emptyManifest("/x"), registriesD: {} }, d, ENV, parseLayer);
    if (!r.ok) throw new Error("plan");
    expect(r.plan.steps.some((s) => s.kind === "write" && s.file.kind === "namespace")).toBe(false);
    expect(r.plan.problems[0]).toContain("DNS-1123");
  });
});

// Random layers over a small pool of scopes and requirements, random transitions.
const SCOPES = [
  "",
  "reg.io",
  "reg.io/app",
  "reg.io/app:1",
  "*.reg.io",
  "reg.io:5000",
  "sub.reg.io/x",
  "*.io",
  "docker.io/library/nginx",
];
const REQS: Requirement[] = [REJECT, ACCEPT, keyReq(K1), keyReq(K2), keyReq(K1, K2)];
const arbLayer = (ns: string | undefined): fc.Arbitrary<Layer> =>
  fc
    .array(
      fc.tuple(fc.subarray(SCOPES, { minLength: 1, maxLength: 3 }), fc.constantFrom(...REQS)),
      { maxLength: 4 },
    )
    .map((entries) => layer(ns, entries));
const arbState = fc.record({
  cluster: arbLayer(undefined),
  a: fc.option(arbLayer("ns-a"), { nil: undefined }),
  b: fc.option(arbLayer("ns-b"), { nil: undefined }),
});

describe("tighten-only at every instant (random transitions)", () => {
  it("holds for every state the files pass through", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbState, { minLength: 2, maxLength: 4 }), async (states) => {
        const node = newNode();
        for (const s of states) {
          const ns: Record<string, Layer> = {};
          if (s.a !== undefined) ns["ns-a"] = s.a;
          if (s.b !== undefined) ns["ns-b"] = s.b;
          await step(node, desired(s.cluster, ns));
        }
      }),
      { numRuns: 100 },
    );
  }, 120_000);
});

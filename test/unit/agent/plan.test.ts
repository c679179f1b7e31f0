// The agent's writer (plan.ts + apply.ts, driven by files.ts as the agent drives it) keeps every
// namespace file tighter than cluster.json at every instant (docs/design.md rule 5), checked on
// every intermediate state of the files with the compiler's scope semantics, for hand-written and
// random transitions, with writes that fail and processes that restart in the middle.

import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NodeFilesError } from "../../../src/agent/files.ts";
import type { LayerInput } from "../../../src/agent/layers.ts";
import { parseManifest, serializeManifest } from "../../../src/agent/manifest.ts";
import { plan, sourceRevision, type PlanInput } from "../../../src/agent/plan.ts";
import { combine, indexLayer } from "../../../src/compiler/combine.ts";
import { LATEST_KNOWN, parseCrioVersion } from "../../../src/compiler/crioVersion.ts";
import type { Layer } from "../../../src/compiler/layer.ts";
import type { Requirement } from "../../../src/compiler/requirements.ts";
import { newPublicKey } from "../../support/builders.ts";
import {
  ACCEPT,
  allowed,
  input,
  keyReq,
  layer,
  keyPathsIn,
  namespaceOf,
  PATHS,
  REJECT,
  TestNode,
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

/** Every namespace file present allows only what cluster.json allows, and cluster.json exists
 * once anything exists. */
function checkTightenOnly(files: Snapshot, what: string): void {
  const cluster = files.get(PATHS.clusterJson);
  // Every key file a policy file names is there, at every instant.
  for (const [p, text] of files) {
    if (p !== PATHS.clusterJson && namespaceOf(p) === undefined) continue;
    for (const named of keyPathsIn(text)) {
      expect(
        files.has(path.join(PATHS.keysDir, path.basename(named))),
        `${what}: ${p} names ${named}, missing`,
      ).toBe(true);
    }
  }
  for (const [p, text] of files) {
    const ns = namespaceOf(p);
    if (ns === undefined || ns === "foreign") continue;
    expect(cluster, `${what}: ${ns}.json exists without cluster.json`).toBeDefined();
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

interface Checked {
  node: TestNode;
  checks: number;
}

function newNode(): Checked {
  const c: Checked = {
    node: new TestNode((s, what) => {
      checkTightenOnly(s, what);
      c.checks++;
    }),
    checks: 0,
  };
  return c;
}

const nsFile = (ns: string): string => `${PATHS.policyDir}/${ns}.json`;

async function step(
  n: Checked,
  cluster: Layer,
  namespaces: Record<string, Layer>,
): Promise<readonly string[]> {
  const out = await n.node.apply(cluster, namespaces);
  if (out.result.error !== undefined) expect.fail(out.result.error.message);
  return out.result.written;
}

/** The files equal what the offline compiler makes of the same layers. */
function expectCompiled(n: Checked, cluster: Layer, namespaces: Record<string, Layer>): void {
  const render = (...layers: Layer[]): string => {
    const r = combine(layers.map(indexLayer), LATEST_KNOWN);
    if (!r.ok) throw new Error(r.problems.join("; "));
    return r.text;
  };
  expect(n.node.fs.policy(PATHS.clusterJson)).toBe(render(cluster));
  for (const [ns, l] of Object.entries(namespaces)) {
    expect(n.node.fs.policy(nsFile(ns)), ns).toBe(render(cluster, l));
  }
  const present = [...n.node.fs.files.keys()].flatMap((p) => {
    const ns = namespaceOf(p);
    return ns === undefined || ns === "foreign" ? [] : [ns];
  });
  expect(present.sort()).toEqual(Object.keys(namespaces).sort());
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
    const n = newNode();
    await n.node.files.load();
    const written = await step(n, c1, { "team-a": teamA, "team-b": teamB });
    const clusterAt = written.indexOf(PATHS.clusterJson);
    expect(clusterAt).toBeGreaterThanOrEqual(0);
    expect(written.indexOf(nsFile("team-a"))).toBeGreaterThan(clusterAt);
    // registries.d (K1 needs sigstore attachments) before any policy.
    expect(written[0]).toBe(PATHS.registriesDFile);
    expect(written.at(-1)).toBe(PATHS.manifest);
    expect(await step(n, c1, { "team-a": teamA, "team-b": teamB })).toEqual([]);
    // A restarted process reads the manifest and writes nothing either.
    await n.node.restart();
    expect(await step(n, c1, { "team-a": teamA, "team-b": teamB })).toEqual([]);
    expect(parseManifest(n.node.fs.files.get(PATHS.manifest) ?? "").manifest.namespaces).toEqual({
      "team-a": `${input(c1).revision}.${input(teamA).revision}`,
      "team-b": `${input(c1).revision}.${input(teamB).revision}`,
    });
    expectCompiled(n, c1, { "team-a": teamA, "team-b": teamB });
  });

  it("a namespace change writes that namespace's file alone (and the manifest)", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA, "team-b": teamB, "team-c": teamC });
    const teamA2 = layer("team-a", [[["reg.io"], keyReq(K2)]]);
    const out = await n.node.apply(c1, { "team-a": teamA2, "team-b": teamB, "team-c": teamC });
    expect(out.result.error).toBeUndefined();
    // Its file, then the manifest once: a file listed with its identity is not marked first.
    expect(out.result.written).toEqual([nsFile("team-a"), PATHS.manifest]);
    // It looked at that namespace alone, not at the two whose files are final.
    expect(out.plan.looked).toBe(1);
    expectCompiled(n, c1, { "team-a": teamA2, "team-b": teamB, "team-c": teamC });
    // Nothing moved: nothing looked at. A cluster change, or a restart, looks at every file.
    const again = await n.node.apply(c1, { "team-a": teamA2, "team-b": teamB, "team-c": teamC });
    expect([again.plan.looked, again.result.written]).toEqual([0, []]);
    const moved = await n.node.apply(c2, { "team-a": teamA2, "team-b": teamB, "team-c": teamC });
    expect(moved.plan.looked).toBe(3);
    await n.node.restart();
    const restarted = await n.node.apply(c2, {
      "team-a": teamA2,
      "team-b": teamB,
      "team-c": teamC,
    });
    expect([restarted.plan.looked, restarted.result.written]).toEqual([3, []]);
    // A namespace that came or went: every file is looked at.
    const gone = await n.node.apply(c2, { "team-a": teamA2, "team-b": teamB });
    expect(gone.plan.looked).toBe(2);
    expect(gone.result.removed).toEqual([nsFile("team-c")]);
  });

  it("after a stop between a replaced file and the manifest, a new process rewrites the file", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA, "team-b": teamB });
    const listed = parseManifest(n.node.fs.files.get(PATHS.manifest) ?? "").manifest;
    expect(Object.keys(listed.identities)).toEqual(["team-a", "team-b"]);
    // The file is replaced, then the manifest write fails: the manifest on disk still lists the
    // old revision, with the identity of the old file.
    const teamA2 = layer("team-a", [[["reg.io"], keyReq(K2)]]);
    n.node.fs.failOn = (p) => p === PATHS.manifest;
    const failed = await n.node.apply(c1, { "team-a": teamA2, "team-b": teamB });
    n.node.fs.failOn = undefined;
    expect(failed.result.error?.message).toContain("injected failure");
    expect(failed.result.written.filter((p) => !p.startsWith(PATHS.keysDir))).toEqual([
      nsFile("team-a"),
    ]);
    expect(n.node.fs.files.get(PATHS.manifest)).toBe(serializeManifest(listed));
    // The new process counts that file as being replaced (never as the old revision, which it
    // no longer holds), and rewrites it even when the layer went back to that revision.
    await n.node.restart();
    expect(n.node.files.manifest.namespaces).toEqual({
      "team-a": "",
      "team-b": listed.namespaces["team-b"],
    });
    const back = await n.node.apply(c1, { "team-a": teamA, "team-b": teamB });
    expect(back.result.error).toBeUndefined();
    expect(back.result.written).toContain(nsFile("team-a"));
    // (MemoryFs identifies a file by its bytes: the manifest on disk is right again as it is.)
    expect(parseManifest(n.node.fs.files.get(PATHS.manifest) ?? "").manifest).toEqual(listed);
    expectCompiled(n, c1, { "team-a": teamA, "team-b": teamB });
  });

  it("lists a new namespace file in the manifest before writing it", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA });
    const out = await n.node.apply(c1, { "team-a": teamA, "team-c": teamC });
    expect(out.result.error).toBeUndefined();
    const policyFiles = (p: string): boolean =>
      p === PATHS.manifest || path.dirname(p) === PATHS.policyDir;
    expect(out.result.written.filter(policyFiles)).toEqual([
      PATHS.manifest,
      nsFile("team-c"),
      PATHS.manifest,
    ]);
    expectCompiled(n, c1, { "team-a": teamA, "team-c": teamC });
  });

  it("a namespace change that moves what registries.d needs looks at every namespace", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA, "team-b": teamB });
    const before = n.node.fs.files.get(PATHS.registriesDFile);
    const teamA2 = layer("team-a", [[["a.sub.reg.io"], keyReq(K1)]]);
    const out = await n.node.apply(c1, { "team-a": teamA2, "team-b": teamB });
    expect(out.plan.looked).toBe(2);
    expect(out.result.written).toContain(PATHS.registriesDFile);
    expect(n.node.fs.files.get(PATHS.registriesDFile)).not.toEqual(before);
    expectCompiled(n, c1, { "team-a": teamA2, "team-b": teamB });
  });

  it("after a reconcile with a problem, the next looks at every namespace again", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA, "team-b": teamB });
    const broken = { unusable: "bad JSON", lastGood: teamA };
    const first = await n.node.apply(c1, { "team-a": broken, "team-b": teamB });
    expect(first.plan.looked).toBe(1);
    expect(first.problems.length).toBeGreaterThan(0);
    const second = await n.node.apply(c1, { "team-a": broken, "team-b": teamB });
    expect(second.plan.looked).toBe(2);
    expectCompiled(n, c1, { "team-a": teamA, "team-b": teamB });
  });

  it("a cluster change that replaces a key writes an intersection before cluster.json", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA, "team-b": teamB });
    const written = await step(n, c2, { "team-a": teamA, "team-b": teamB });
    const aWrites = written.flatMap((p, i) => (p === nsFile("team-a") ? [i] : []));
    expect(aWrites).toHaveLength(2);
    expect(aWrites[0]).toBeLessThan(written.indexOf(PATHS.clusterJson));
    expect(aWrites[1]).toBeGreaterThan(written.indexOf(PATHS.clusterJson));
    expectCompiled(n, c2, { "team-a": teamA, "team-b": teamB });
    // Back and forth, adding and removing namespaces.
    await step(n, c1, { "team-c": teamC, "team-b": teamB });
    expect(n.node.fs.files.has(nsFile("team-a"))).toBe(false);
    await step(n, layer(undefined, []), { "team-c": teamC });
    expectCompiled(n, layer(undefined, []), { "team-c": teamC });
    expect(n.checks).toBeGreaterThan(10);
  });

  it("a cluster change that only tightens writes each file once, before cluster.json", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c2, { "team-a": teamA });
    const tighter = layer(undefined, [
      [["reg.io"], ACCEPT],
      [["reg.io/app"], keyReq(K2)],
      [["reg.io/other"], REJECT],
    ]);
    const written = await step(n, tighter, { "team-a": teamA });
    const aWrites = written.flatMap((p, i) => (p === nsFile("team-a") ? [i] : []));
    expect(aWrites).toHaveLength(1);
    expect(aWrites[0]).toBeLessThan(written.indexOf(PATHS.clusterJson));
    // And loosening back: once, after cluster.json.
    const back = await step(n, c2, { "team-a": teamA });
    const again = back.flatMap((p, i) => (p === nsFile("team-a") ? [i] : []));
    expect(again).toHaveLength(1);
    expect(again[0]).toBeGreaterThan(back.indexOf(PATHS.clusterJson));
    expectCompiled(n, c2, { "team-a": teamA });
  });

  it("deletes only files it listed, never cluster.json", async () => {
    const n = newNode();
    n.node.fs.files.set(nsFile("foreign"), "{}");
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA });
    await step(n, c1, {});
    expect(n.node.fs.files.has(nsFile("team-a"))).toBe(false);
    expect(n.node.fs.files.has(nsFile("foreign"))).toBe(true);
    expect(n.node.fs.files.has(PATHS.clusterJson)).toBe(true);
  });

  it("after a failure midway and a restart, finishes the transition, still tighten-only", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA, "team-b": teamB });
    n.node.fs.failOn = (p) => p.endsWith("team-b.json");
    const out = await n.node.apply(c2, { "team-a": teamA, "team-b": teamB });
    expect(out.result.error?.message).toContain("injected failure");
    // The manifest on disk remembers both cluster layers, and keeps their texts.
    const m = parseManifest(n.node.fs.files.get(PATHS.manifest) ?? "").manifest;
    expect(m.clusterLayers).toHaveLength(2);
    n.node.fs.failOn = undefined;
    await n.node.restart();
    // The API moved on meanwhile: a third cluster layer.
    const c3 = layer(undefined, [[["reg.io"], keyReq(K2)]]);
    await step(n, c3, { "team-a": teamA, "team-b": teamB });
    expect(n.node.files.manifest.clusterLayers).toHaveLength(1);
    expectCompiled(n, c3, { "team-a": teamA, "team-b": teamB });
    // Old layer texts are gone.
    expect([...n.node.fs.files.keys()].filter((p) => p.includes("cluster-layer"))).toHaveLength(1);
  });

  it("rewrites a listed file that disappeared, and restores a missing cluster.json", async () => {
    const n = newNode();
    await n.node.files.load();
    await step(n, c1, { "team-a": teamA });
    n.node.fs.files.delete(nsFile("team-a"));
    n.node.fs.files.delete(PATHS.clusterJson);
    await n.node.restart();
    const written = await step(n, c1, { "team-a": teamA });
    expect(written).toContain(nsFile("team-a"));
    expect(written).toContain(PATHS.clusterJson);
    expectCompiled(n, c1, { "team-a": teamA });
  });

  it("without a cluster layer, writes the last one it held, else accept-all", async () => {
    const n = newNode();
    await n.node.files.load();
    expect(await n.node.files.ensureClusterFile(LATEST_KNOWN)).toBeDefined();
    const acceptAll = combine([indexLayer(layer(undefined, []))], LATEST_KNOWN);
    expect(acceptAll.ok && n.node.fs.policy(PATHS.clusterJson) === acceptAll.text).toBe(true);
    await step(n, c1, { "team-a": teamA });
    n.node.fs.files.delete(PATHS.clusterJson);
    await n.node.restart();
    await n.node.files.ensureClusterFile(LATEST_KNOWN);
    const c = combine([indexLayer(c1)], LATEST_KNOWN);
    expect(c.ok && n.node.fs.policy(PATHS.clusterJson) === c.text).toBe(true);
  });

  it("reports a registries.d conflict on every reconcile, not only the one that found it", async () => {
    const n = newNode();
    await n.node.files.load();
    const keyring = Buffer.from([0x99, 0x01, 0x0d, 0xff]).toString("base64");
    const gpg = (ns: string, url: string): Layer =>
      layer(ns, [[["gpg.reg.io"], { kind: "gpg", keyring, lookaside: url }]]);
    const namespaces = {
      "team-a": gpg("team-a", "https://a.example/sigs"),
      "team-b": gpg("team-b", "https://b.example/sigs"),
    };
    const outs = [];
    for (let i = 0; i < 3; i++) outs.push(await n.node.apply(c1, namespaces));
    expect(outs[2]?.result.written).toEqual([]);
    for (const out of outs) {
      expect(out.problems.join("\n")).toContain("needs two lookaside URLs");
    }
  });

  it("keeps the last usable layer, or fails closed, for a namespace it cannot render", async () => {
    const n = newNode();
    await n.node.files.load();
    const multi = layer("team-m", [[["reg.io"], keyReq(K1, K2)]]);
    await step(n, c1, { "team-m": multi });
    const old = parseCrioVersion("1.31.0"); // keyDatas needs 1.32
    // A layer that is unusable (not unrenderable) keeps the file while the cluster stays.
    const kept = await n.node.apply(c1, { "team-m": { unusable: "broken" } }, old);
    expect(kept.problems.join("\n")).toContain("keeping its file as it is");
    // The cluster changes: the layer does not render for this CRI-O, so the file rejects all.
    const out = await n.node.apply(c2, { "team-m": multi }, old);
    expect(out.result.error).toBeUndefined();
    // Reported short: the file is built on the cluster revision cluster.json reports.
    expect(n.node.files.applied()["team-m.json"]).toBe("unrendered");
    const text = n.node.fs.files.get(nsFile("team-m")) ?? "";
    for (const image of IMAGES) expect(allowed(text, image, new Set([K1, K2]))).toBe(false);
  });

  it("refuses a cluster layer the node's CRI-O cannot parse and writes nothing", async () => {
    const n = newNode();
    await n.node.files.load();
    const c = layer(undefined, [[["reg.io"], keyReq(K1, K2)]]);
    await expect(n.node.apply(c, {}, parseCrioVersion("1.30"))).rejects.toThrow(NodeFilesError);
    expect(n.node.fs.writes).toEqual([]);
  });

  it("skips a namespace whose name is not a DNS-1123 label", async () => {
    const n = newNode();
    await n.node.files.load();
    const bad: Layer = { namespace: "../etc", policies: [] };
    const out = await n.node.apply(c1, { "../etc": bad });
    expect(out.result.written.some((p) => namespaceOf(p) !== undefined)).toBe(false);
    expect(out.problems.join("\n")).toContain("DNS-1123");
  });
});

// Random layers over a small pool of scopes and requirements, random transitions, random write
// failures followed by a restart of the process.
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
  /** Fail the n-th write of this transition, then restart (0: no failure). */
  failAt: fc.nat({ max: 8 }),
});

describe("tighten-only at every instant (random transitions, failures and restarts)", () => {
  it("holds for every state the files pass through, and the files converge", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbState, { minLength: 2, maxLength: 4 }), async (states) => {
        const n = newNode();
        await n.node.files.load();
        for (const s of states) {
          const ns: Record<string, Layer> = {};
          if (s.a !== undefined) ns["ns-a"] = s.a;
          if (s.b !== undefined) ns["ns-b"] = s.b;
          if (s.failAt > 0) {
            let writes = 0;
            n.node.fs.failOn = () => ++writes === s.failAt;
            await n.node.apply(s.cluster, ns);
            n.node.fs.failOn = undefined;
            await n.node.restart();
          }
          await step(n, s.cluster, ns);
          expectCompiled(n, s.cluster, ns);
        }
      }),
      { numRuns: 150 },
    );
  }, 180_000);
});

describe("plan with `only`", () => {
  // NodeFiles passes `only` when every other file is final (files.ts #changedOnly): the plan must
  // then be the one it makes looking at every namespace.
  const C = "c1";
  const NAMES = ["a", "b", "c", "d", "e", "f", "Bad_Name"];
  const arbInput: fc.Arbitrary<LayerInput> = fc.oneof(
    fc
      .constantFrom("r1", "r2")
      .map((r): LayerInput => ({ ok: true, layer: { text: "", revision: r } })),
    fc.option(fc.constantFrom("r1", "r2"), { nil: undefined }).map((r): LayerInput => ({
      ok: false,
      reason: "bad",
      ...(r === undefined ? {} : { lastGood: { text: "", revision: r } }),
    })),
  );
  const arbOnFile = fc.option(fc.constantFrom("", `${C}.r1`, `${C}.r2`, "c0.r1"), {
    nil: undefined,
  });
  const arbCase = fc.record({
    entries: fc.array(
      fc.record({
        changed: fc.boolean(),
        want: fc.option(arbInput, { nil: undefined }),
        onFile: arbOnFile,
        identified: fc.boolean(),
      }),
      { minLength: NAMES.length, maxLength: NAMES.length },
    ),
    clusterLayers: fc.constantFrom([C], ["c0", C]),
  });

  it("makes the plan it makes looking at every namespace, when the others are final", () => {
    fc.assert(
      fc.property(arbCase, ({ entries, clusterLayers }) => {
        const namespaces = new Map<string, LayerInput>();
        const recorded: Record<string, string> = {};
        const identities: Record<string, string> = {};
        const only = new Set<string>();
        entries.forEach((e, i) => {
          const ns = NAMES[i] ?? "";
          if (!e.changed) {
            // Final: a usable layer, recorded as written on this cluster layer.
            if (ns === "Bad_Name") return;
            const want: LayerInput = { ok: true, layer: { text: "", revision: `r${String(i)}` } };
            namespaces.set(ns, want);
            recorded[ns] = sourceRevision(C, { kind: "layer", revision: `r${String(i)}` });
            if (e.identified) identities[ns] = `id-${String(i)}`;
            return;
          }
          only.add(ns);
          if (e.want !== undefined) namespaces.set(ns, e.want);
          if (e.onFile !== undefined) recorded[ns] = e.onFile;
          if (e.identified && e.onFile !== undefined && e.onFile !== "") {
            identities[ns] = `id-${String(i)}`;
          }
        });
        const input: PlanInput = {
          manifest: {
            version: 2,
            policyDir: "/etc/crio/policies",
            clusterLayers,
            namespaces: recorded,
            identities,
            registriesD: "",
          },
          clusterFilePresent: true,
          cluster: C,
          namespaces,
          relation: "unknown",
          registriesD: { current: {}, union: {}, desired: {}, inputs: "" },
        };
        const all = plan(input);
        const some = plan({ ...input, only });
        expect({ steps: some.steps, problems: some.problems }).toEqual({
          steps: all.steps,
          problems: all.problems,
        });
      }),
      { numRuns: 500 },
    );
  });
});

// Property test with the real evaluator: random policy sets over the fixture images. For every
// generated set, every namespace file and every image:
//   - every emitted document passes the strict parser;
//   - tighten-only (docs/design.md rule 5): allowed by <namespace>.json  =>  allowed by cluster.json;
//   - exact AND across layers (rule 3): allowed by <namespace>.json  <=>  allowed by cluster.json
//     AND allowed by the namespace layer compiled alone.
// Bounded (numRuns) so the suite stays in minutes; the seed is printed on failure by fast-check.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { AnyImagePolicy, PolicySpec } from "../../src/api/types.ts";
import { compileAll, outputFiles } from "../../src/compiler/compile.ts";
import { LATEST_KNOWN } from "../../src/compiler/crioVersion.ts";
import { secretLookupFrom } from "../../src/compiler/validate.ts";
import { parsePolicyJson } from "../../src/policyjson/parse.ts";
import { imageNames, type EvaluatorEnvironment } from "./environment.ts";
import { evaluateAll } from "./harness.ts";

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? "30");
const NAMESPACES = ["team-a", "team-b"] as const;

type Trust = PolicySpec["policy"];

function trusts(env: EvaluatorEnvironment): Trust[] {
  const key = (k: string): Trust => ({
    rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: k } },
  });
  return [
    { rootOfTrust: { policyType: "Reject" } },
    { rootOfTrust: { policyType: "InsecureAcceptAnything" } },
    key(env.keys.a),
    key(env.keys.b),
    key(env.keys.c),
    { ...key(env.keys.a), signedIdentity: { matchPolicy: "MatchRepository" } },
    { ...key(env.keys.cosign), signedIdentity: { matchPolicy: "MatchRepository" } },
    {
      rootOfTrust: {
        policyType: "PublicKey",
        publicKey: { keyData: env.keys.a, additionalKeys: [{ keyData: env.keys.b }] },
      },
    },
  ];
}

function scopePool(env: EvaluatorEnvironment): string[] {
  const r = env.registry;
  return [
    "*",
    "*.0.0.1",
    "*.0.1",
    "*.1",
    r,
    env.registryLocalhost,
    "127.0.0.1",
    `${r}/signed`,
    `${r}/signed/app`,
    `${r}/signed/app:v1`,
    `${r}/signed/team`,
    `${r}/unsigned`,
    `${r}/wrong/app`,
    `${r}/cosign/app`,
    `${r}/base`,
    `${env.registryLocalhost}/signed/app`,
  ];
}

interface GeneratedPolicy {
  readonly namespace: (typeof NAMESPACES)[number] | null;
  readonly scopes: string[];
  readonly trust: number;
}

function policySetArbitrary(
  scopeCount: number,
  trustCount: number,
): fc.Arbitrary<GeneratedPolicy[]> {
  return fc.array(
    fc.record({
      namespace: fc.constantFrom(null, null, ...NAMESPACES),
      scopes: fc
        .uniqueArray(fc.nat({ max: scopeCount - 1 }), { minLength: 1, maxLength: 3 })
        .map((idx) => idx.map(String)),
      trust: fc.nat({ max: trustCount - 1 }),
    }),
    { minLength: 1, maxLength: 7 },
  );
}

function toObjects(
  set: readonly GeneratedPolicy[],
  scopes: readonly string[],
  trustList: readonly Trust[],
  asCluster: boolean,
): AnyImagePolicy[] {
  return set.map((p, i): AnyImagePolicy => {
    const spec = {
      scopes: p.scopes.map((s) => scopes[Number(s)] ?? "*"),
      policy: trustList[p.trust] ?? { rootOfTrust: { policyType: "Reject" } },
    };
    return p.namespace === null || asCluster
      ? {
          apiVersion: "imagepolicy.dev/v1alpha1",
          kind: "ClusterImagePolicy",
          metadata: { name: `p${i}` },
          spec: spec as Extract<AnyImagePolicy, { kind: "ClusterImagePolicy" }>["spec"],
        }
      : {
          apiVersion: "imagepolicy.dev/v1alpha1",
          kind: "ImagePolicy",
          metadata: { name: `p${i}`, namespace: p.namespace },
          spec: spec,
        };
  });
}

async function writeTree(root: string, files: [string, string][]): Promise<void> {
  for (const [rel, text] of files) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), text);
  }
}

describe("tighten-only, checked with the real evaluator", () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "imagepolicy-property-"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it(`holds for ${NUM_RUNS} random policy sets`, async () => {
    const env = inject("evaluator");
    const scopes = scopePool(env);
    const trustList = trusts(env);
    const noSecrets = secretLookupFrom([]);
    let run = 0;
    let evaluations = 0;
    await fc.assert(
      fc.asyncProperty(policySetArbitrary(scopes.length, trustList.length), async (set) => {
        const dir = path.join(work, String(run++));
        const result = compileAll(
          toObjects(set, scopes, trustList, false),
          noSecrets,
          LATEST_KNOWN,
        );
        expect(result.diagnostics).toEqual([]);
        const files = result.files;
        if (files === undefined) throw new Error("nothing compiled");
        const produced = outputFiles(files);
        for (const [rel, text] of produced) if (rel.endsWith(".json")) parsePolicyJson(text);
        await writeTree(path.join(dir, "node"), produced);

        // Each namespace layer alone, compiled as a cluster layer: its own verdicts.
        const alone = new Map<string, string>();
        for (const ns of files.namespaceJson.keys()) {
          const only = set.filter((p) => p.namespace === ns);
          const r = compileAll(toObjects(only, scopes, trustList, true), noSecrets, LATEST_KNOWN);
          if (r.files === undefined) throw new Error(`namespace ${ns} alone did not compile`);
          const root = path.join(dir, `alone-${ns}`);
          await writeTree(root, outputFiles(r.files));
          alone.set(ns, root);
        }

        const regD = path.join(dir, "node", "registries.d");
        const docs = [
          { name: "cluster", policy: path.join(dir, "node", "cluster.json"), regD },
          ...[...files.namespaceJson.keys()].flatMap((ns) => [
            { name: ns, policy: path.join(dir, "node", "policies", `${ns}.json`), regD },
            {
              name: `${ns}-alone`,
              policy: path.join(alone.get(ns) ?? "", "cluster.json"),
              regD: path.join(alone.get(ns) ?? "", "registries.d"),
            },
          ]),
        ];
        const cases = docs.flatMap((d) => imageNames.map((image) => ({ d, image })));
        const verdicts = await evaluateAll(
          cases.map(({ d, image }) => ({
            policyPath: d.policy,
            registriesDDir: d.regD,
            image: env.images[image],
          })),
        );
        evaluations += verdicts.length;
        const allowed = new Map<string, boolean>();
        cases.forEach(({ d, image }, i) =>
          allowed.set(`${d.name} ${image}`, verdicts[i]?.allowed === true),
        );
        for (const ns of files.namespaceJson.keys()) {
          for (const image of imageNames) {
            const inNs = allowed.get(`${ns} ${image}`);
            const inCluster = allowed.get(`cluster ${image}`);
            const inAlone = allowed.get(`${ns}-alone ${image}`);
            const context = `${ns} ${image}: ns=${String(inNs)} cluster=${String(inCluster)} alone=${String(inAlone)}`;
            if (inNs === true) expect(inCluster, `tighten-only: ${context}`).toBe(true);
            expect(inNs, `AND across layers: ${context}`).toBe(
              inCluster === true && inAlone === true,
            );
          }
        }
        await rm(dir, { recursive: true, force: true });
      }),
      { numRuns: NUM_RUNS, endOnFailure: true },
    );
    console.log(`property test: ${NUM_RUNS} policy sets, ${evaluations} real evaluations`);
    expect(evaluations).toBeGreaterThanOrEqual(NUM_RUNS * imageNames.length);
  });
});

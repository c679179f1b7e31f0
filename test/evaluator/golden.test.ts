// Golden cases, one directory per behaviour under test/golden/. Each holds:
//   policies.yaml    the input (policies and Secrets), with ${PLACEHOLDERS} for the fixture
//                    registry and keys, which differ per machine
//   expected/        the files the compiler must write, with the same placeholders put back
//   matrix.yaml      (namespace, image) -> ALLOW | DENY, checked with the real containers-image
//                    evaluator using CRI-O's file choice: policies/<namespace>.json if it exists,
//                    else cluster.json
//   crio-version     optional target CRI-O version (default: the newest known)
// expected/ is regenerated only by hack/update-golden.sh (UPDATE_GOLDEN=1); CI compares.

import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { readManifests } from "../../src/cli/manifests.ts";
import { indexLayer, type ScopeIndex } from "../../src/compiler/combine.ts";
import { compileAll, outputFiles, renderFiles } from "../../src/compiler/compile.ts";
import { LATEST_KNOWN, parseCrioVersion } from "../../src/compiler/crioVersion.ts";
import { formatDiagnostic } from "../../src/compiler/diagnostics.ts";
import { parseLayer } from "../../src/compiler/layer.ts";
import { secretLookupFrom, type SecretLookup } from "../../src/compiler/validate.ts";
import { plan } from "../../src/controller/plan.ts";
import { parsePolicyJson } from "../../src/policyjson/parse.ts";
import { imageNames } from "./environment.ts";
import { evaluateAll } from "./harness.ts";
import { placeholdersFor, substitute, unsubstitute } from "./placeholders.ts";

const goldenRoot = path.resolve(import.meta.dirname, "..", "golden");
const update = process.env.UPDATE_GOLDEN === "1";

const matrixSchema = z.array(
  z.strictObject({
    image: z.enum(imageNames),
    namespace: z.string().optional(),
    expect: z.enum(["ALLOW", "DENY"]),
    why: z.string().optional(),
  }),
);

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(path.join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** The files a node renders from the layers the controller's plan() publishes for `objects`
 * (nothing published before, no install limits: every lookaside prefix allowed, no protected
 * image, quotas no golden case reaches), read back from the layer texts as an agent reads them. */
function filesThroughPlan(
  objects: readonly unknown[],
  secrets: SecretLookup,
  target: ReturnType<typeof parseCrioVersion>,
): { files: [string, string][]; refusals: string[] } {
  const p = plan({
    objects,
    secrets,
    target,
    publishedCluster: undefined,
    publishedNamespaces: new Map(),
    operatorNamespace: "imagepolicy-system",
    protectedImages: [],
    quota: { maxPolicies: 10_000, maxScopes: 100_000, maxBytes: 1_000_000 },
    namespaceLookasidePrefixes: [""],
  });
  const refusals = [...p.outcomes.values()].flatMap((o) =>
    o.refusals.map((r) => `${o.ref.kind} ${o.ref.name}: ${r.reason}: ${r.message}`),
  );
  const namespaces = new Map<string, ScopeIndex>();
  for (const [ns, layer] of p.namespaces) namespaces.set(ns, indexLayer(parseLayer(layer.text)));
  const files = renderFiles(indexLayer(parseLayer(p.cluster.text)), namespaces, target);
  return { files: outputFiles(files), refusals };
}

const cases = (await readdir(goldenRoot, { withFileTypes: true }))
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

describe("golden cases", () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "imagepolicy-golden-"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("has cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(15);
  });

  it.each(cases)("%s", async (name) => {
    const env = inject("evaluator");
    const placeholders = placeholdersFor(env);
    const dir = path.join(goldenRoot, name);
    const out = path.join(work, name);
    await mkdir(out, { recursive: true });

    const input = substitute(await readFile(path.join(dir, "policies.yaml"), "utf8"), placeholders);
    await writeFile(path.join(out, "policies.yaml"), input);
    const crioFile = path.join(dir, "crio-version");
    const target = existsSync(crioFile)
      ? parseCrioVersion(await readFile(crioFile, "utf8"))
      : LATEST_KNOWN;
    const manifests = await readManifests([path.join(out, "policies.yaml")]);
    const result = compileAll(manifests.policies, secretLookupFrom(manifests.secrets), target);
    const problems = [...manifests.diagnostics, ...result.diagnostics].map(formatDiagnostic);
    expect(problems).toEqual([]);
    const files = result.files;
    if (files === undefined) throw new Error("no files compiled");

    // Output files: strict-parse every policy, compare with expected/.
    const nodeRoot = path.join(out, "node");
    const produced = new Map(outputFiles(files));
    for (const [rel, text] of produced) {
      if (rel.endsWith(".json")) parsePolicyJson(text);
      await mkdir(path.dirname(path.join(nodeRoot, rel)), { recursive: true });
      await writeFile(path.join(nodeRoot, rel), text);
    }
    const expectedDir = path.join(dir, "expected");
    if (update) {
      await rm(expectedDir, { recursive: true, force: true });
      for (const [rel, text] of produced) {
        await mkdir(path.dirname(path.join(expectedDir, rel)), { recursive: true });
        await writeFile(path.join(expectedDir, rel), unsubstitute(text, placeholders));
      }
    }
    expect(await listFiles(expectedDir)).toEqual([...produced.keys()].sort());
    for (const [rel, text] of produced) {
      const expected = await readFile(path.join(expectedDir, rel), "utf8");
      expect(unsubstitute(text, placeholders), `${name}/expected/${rel}`).toBe(expected);
    }
    // The controller's plan() publishes layers that render to the very same bytes.
    const viaPlan = filesThroughPlan(
      manifests.policies,
      secretLookupFrom(manifests.secrets),
      target,
    );
    expect(viaPlan.refusals).toEqual([]);
    expect(new Map(viaPlan.files)).toEqual(produced);

    // Byte-identical for identical input (docs/design.md rule 6).
    const again = compileAll(manifests.policies, secretLookupFrom(manifests.secrets), target);
    expect(again.files).toEqual(files);

    // The matrix, with the real evaluator.
    const matrix = matrixSchema.parse(
      parseYaml(await readFile(path.join(dir, "matrix.yaml"), "utf8")) ?? [],
    );
    const rows = matrix.map((row) => {
      const nsFile = row.namespace === undefined ? undefined : `policies/${row.namespace}.json`;
      const file = nsFile !== undefined && produced.has(nsFile) ? nsFile : "cluster.json";
      return { row, file };
    });
    const results = await evaluateAll(
      rows.map(({ row, file }) => ({
        policyPath: path.join(nodeRoot, file),
        registriesDDir: path.join(nodeRoot, "registries.d"),
        image: env.images[row.image],
      })),
    );
    const got = rows.map(({ row, file }, i) => ({
      ...row,
      file,
      expect: results[i]?.allowed === true ? "ALLOW" : "DENY",
    }));
    const want = rows.map(({ row, file }) => ({ ...row, file }));
    expect(got, results.map((r) => r.output).join("\n")).toEqual(want);
  });
});

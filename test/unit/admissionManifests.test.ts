// The CLI against the corpus of test/crd-manifests, without an API server: `imagepolicy validate`
// admits every valid manifest and refuses every invalid one with the message its first line
// announces; every CEL rule of the API is exercised by some invalid manifest; and whatever the
// schema admits, the compiler accepts (the scope and identity patterns against the compiler's own
// parsers, property-tested). test/apiserver/crdAdmission.test.ts runs the same corpus through a
// real kube-apiserver and the CLI side by side and fails on any disagreement.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  REFERENCE_REGEX,
  REPOSITORY_PREFIX_REGEX,
  REPOSITORY_REGEX,
  SCOPE_REGEX,
} from "../../src/api/patterns.ts";
import { clusterImagePolicy, imagePolicy, imagePolicyNodeStatus } from "../../src/api/policy.ts";
import { check, toJson, type Node } from "../../src/api/schema.ts";
import type { Io } from "../../src/cli/io.ts";
import { run } from "../../src/cli/main.ts";
import {
  parseExactReference,
  parseIdentityPrefix,
  parseRepositoryName,
  parseScope,
} from "../../src/compiler/scopes.ts";
import { CORPUS, INVALID, VALID } from "../crd-manifests/corpus.ts";

interface Problem {
  readonly kind: string;
  readonly field: string;
  readonly reason: string;
  readonly message: string;
  readonly admission?: string;
}

async function validate(file: string): Promise<{ code: number; problems: Problem[] }> {
  const stdout: string[] = [];
  const io: Io = { out: (l) => stdout.push(l), err: (l) => stdout.push(l) };
  const code = await run(["validate", "-f", file, "-o", "json"], io);
  const parsed: unknown = JSON.parse(stdout.join("\n"));
  const problems =
    typeof parsed === "object" &&
    parsed !== null &&
    "problems" in parsed &&
    Array.isArray(parsed.problems)
      ? parsed.problems.filter(
          (p): p is Problem =>
            typeof p === "object" && p !== null && "field" in p && "message" in p && "reason" in p,
        )
      : [];
  return { code, problems };
}

describe("imagepolicy validate on the corpus", () => {
  it.each(VALID.map((c) => c.file))("admits %s", async (file) => {
    const c = VALID.find((x) => x.file === file);
    const { problems } = await validate(c?.absolute ?? file);
    expect(problems.filter((p) => p.admission !== undefined)).toEqual([]);
    // The corpus holds no Secrets: a reference to one is the only thing left to the compiler.
    expect(problems.filter((p) => p.reason !== "SecretNotFound")).toEqual([]);
  });

  it.each(INVALID.map((c) => c.file))("refuses %s as announced", async (file) => {
    const c = INVALID.find((x) => x.file === file);
    const { code, problems } = await validate(c?.absolute ?? file);
    expect(code).toBe(1);
    const admission = problems.filter((p) => p.admission !== undefined);
    expect(admission.length).toBeGreaterThan(0);
    const text = admission.map((p) => `${p.field}: ${p.message}`).join("\n");
    expect(c?.expect, "first line # expect: ...").toBeDefined();
    expect(text).toContain(c?.expect);
  });
});

const ROOTS: Readonly<Record<string, Node<unknown>>> = {
  ClusterImagePolicy: clusterImagePolicy,
  ImagePolicy: imagePolicy,
  ImagePolicyNodeStatus: imagePolicyNodeStatus,
};

function rootOf(doc: unknown): Node<unknown> | undefined {
  if (typeof doc !== "object" || doc === null || !("kind" in doc)) return undefined;
  return typeof doc.kind === "string" ? ROOTS[doc.kind] : undefined;
}

describe("the corpus covers the API's rules", () => {
  it("every CEL rule fails in at least one invalid manifest, and none in a valid one", () => {
    const failed = new Set<string>();
    for (const c of CORPUS) {
      for (const doc of c.documents) {
        const root = rootOf(doc);
        const json = toJson(doc);
        if (root === undefined || json === undefined) continue;
        const r = check(root, json);
        const rules = r.ok ? [] : r.errors.flatMap((e) => (e.rule === undefined ? [] : [e.rule]));
        if (c.verdict === "valid") expect(rules, c.file).toEqual([]);
        for (const rule of rules) failed.add(rule);
      }
    }
    const all = new Set(Object.values(ROOTS).flatMap((r) => r.allRules()));
    // A transition rule runs on updates only; crdAdmission.test.ts updates a node status for it.
    all.delete("self == oldSelf");
    expect([...all].filter((r) => !failed.has(r)).sort()).toEqual([]);
  });
});

describe("whatever the schema admits, the compiler accepts", () => {
  const cases: readonly [string, string, (s: string) => { ok: boolean }][] = [
    ["scope", SCOPE_REGEX, parseScope],
    ["exactRepository.repository", REPOSITORY_REGEX, parseRepositoryName],
    ["remapIdentity prefixes", REPOSITORY_PREFIX_REGEX, parseIdentityPrefix],
    ["exactReference.reference", REFERENCE_REGEX, parseExactReference],
  ];
  it.each(cases)("%s", (_name, pattern, parse) => {
    // The schema also bounds each of these at 512 characters.
    const admitted = fc.stringMatching(new RegExp(pattern)).filter((s) => s.length <= 512);
    fc.assert(
      fc.property(admitted, (s) => parse(s).ok),
      { numRuns: 3000 },
    );
  });
});

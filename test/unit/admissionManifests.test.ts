// The CRD schema is the first gate (test/apiserver/crdAdmission.test.ts applies these manifests
// to a real API server); the strict parser plus the compiler's validate stage is the second, for
// files no API server has seen (the CLI). Both must refuse every invalid manifest.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseObject } from "../../src/api/parse.ts";
import type { AnyImagePolicy, Secret } from "../../src/api/types.ts";
import { compileAll } from "../../src/compiler/compile.ts";
import { LATEST_KNOWN } from "../../src/compiler/crioVersion.ts";
import { secretLookupFrom } from "../../src/compiler/validate.ts";

const root = path.join(import.meta.dirname, "..", "crd-manifests");

function load(file: string): { problems: string[]; policies: AnyImagePolicy[] } {
  const problems: string[] = [];
  const policies: AnyImagePolicy[] = [];
  const secrets: Secret[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true })) {
    const parsed = parseObject(doc.toJS());
    if (!parsed.ok) problems.push(...parsed.diagnostics.map((d) => `${d.field}: ${d.message}`));
    else if (parsed.kind === "policy") policies.push(parsed.policy);
    else if (parsed.kind === "secret") secrets.push(parsed.secret);
  }
  const result = compileAll(policies, secretLookupFrom(secrets), LATEST_KNOWN);
  problems.push(...result.diagnostics.map((d) => `${d.field}: ${d.reason}: ${d.message}`));
  return { problems, policies };
}

const files = (dir: string): string[] =>
  readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith(".yaml"))
    .sort();

// Manifests about ImagePolicyNodeStatus have no second gate: only agents write them.
const policyOnly = (f: string): boolean => !f.startsWith("nodestatus");

describe("second gate: strict parser + validate", () => {
  it.each(files("valid").filter(policyOnly))("accepts valid/%s", (f) => {
    const { problems } = load(path.join(root, "valid", f));
    // OpenShift's documented examples carry placeholder key data ("keyData"), which the CRD
    // cannot tell from a key but the compiler refuses, as a status condition would say.
    // Secrets referenced by keySecretRef are not part of these admission manifests.
    const openshiftPlaceholders = f.startsWith("openshift-");
    const real = problems.filter(
      (p) => !(openshiftPlaceholders && p.includes("InvalidKey")) && !p.includes("SecretNotFound"),
    );
    expect(real).toEqual([]);
  });

  it.each(files("invalid").filter(policyOnly))("refuses invalid/%s", (f) => {
    const { problems } = load(path.join(root, "invalid", f));
    expect(problems.length).toBeGreaterThan(0);
  });
});

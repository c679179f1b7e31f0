// The CRDs of crds/ in a real kube-apiserver: every manifest of test/crd-manifests/valid is
// accepted, every manifest of test/crd-manifests/invalid is refused with the message its first
// line announces (`# expect: <substring>`), the samples apply with kustomize, and kubectl explain
// and kubectl get show what the schema says.
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import {
  startControlPlane,
  type CommandResult,
  type ControlPlane,
} from "../support/controlPlane.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

function yamlFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => path.join(dir, f));
}

const valid = yamlFiles("test/crd-manifests/valid");
const invalid = yamlFiles("test/crd-manifests/invalid");

/** The namespaces the manifests and samples live in. */
function namespacesOf(files: readonly string[]): string[] {
  const found = new Set<string>();
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(path.join(ROOT, file), "utf8"))) {
      const ns: unknown = doc.getIn(["metadata", "namespace"]);
      if (typeof ns === "string") found.add(ns);
    }
  }
  return [...found].sort();
}

function expectation(file: string): string {
  const first = readFileSync(path.join(ROOT, file), "utf8").split("\n", 1)[0] ?? "";
  const match = /^# expect: (.+)$/.exec(first);
  if (match?.[1] === undefined) throw new Error(`${file}: first line is not "# expect: ..."`);
  return match[1];
}

function describeResult(r: CommandResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe("CRD admission (real kube-apiserver)", () => {
  let dir: string;
  let plane: ControlPlane | undefined;
  const kubectl = (
    args: readonly string[],
    options?: { readonly stdin?: string },
  ): Promise<CommandResult> => {
    if (plane === undefined) throw new Error("the control plane did not start");
    return plane.kubectl(args, options);
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-crd-admission-"));
    plane = await startControlPlane({ dir, crdDir: path.join(ROOT, "crds") });
    const samples = yamlFiles("config/samples");
    for (const ns of namespacesOf([...valid, ...invalid, ...samples])) {
      const r = await kubectl(["create", "namespace", ns]);
      expect(r.code, describeResult(r)).toBe(0);
    }
  });

  afterAll(async () => {
    await plane?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(valid)("accepts %s", async (file) => {
    const r = await kubectl([
      "apply",
      "--server-side",
      "--validate=strict",
      "-f",
      path.join(ROOT, file),
    ]);
    expect(r.code, describeResult(r)).toBe(0);
  });

  it.each(invalid)("refuses %s with its expected message", async (file) => {
    const r = await kubectl(["create", "--validate=strict", "-f", path.join(ROOT, file)]);
    expect(r.code, describeResult(r)).not.toBe(0);
    expect(r.stderr).toContain(expectation(file));
  });

  it("applies config/samples with kustomize", async () => {
    const r = await kubectl([
      "apply",
      "--server-side",
      "--validate=strict",
      "-k",
      path.join(ROOT, "config/samples"),
    ]);
    expect(r.code, describeResult(r)).toBe(0);
    const get = await kubectl(["get", "cip", "-o", "name"]);
    expect(get.stdout).toContain("clusterimagepolicy.imagepolicy.dev/default-deny");
    expect(get.stdout).toContain("clusterimagepolicy.imagepolicy.dev/system-exceptions");
  });

  it("keeps ImagePolicyNodeStatus.spec.nodeName immutable", async () => {
    const name = "immutable-node";
    const create = await kubectl(["create", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "imagepolicy.dev/v1alpha1",
        kind: "ImagePolicyNodeStatus",
        metadata: { name },
        spec: { nodeName: name },
      }),
    });
    expect(create.code, describeResult(create)).toBe(0);
    const patch = await kubectl([
      "patch",
      "ipns",
      name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { nodeName: "other-node" } }),
    ]);
    expect(patch.code, describeResult(patch)).not.toBe(0);
    expect(patch.stderr).toContain("nodeName is immutable");
  });

  it("lists policies by short name and category with the printer columns", async () => {
    const wide = await kubectl(["get", "cip", "-o", "wide"]);
    expect(wide.code, describeResult(wide)).toBe(0);
    expect(wide.stdout.split("\n")[0]).toMatch(/^NAME\s+SCOPES\s+TYPE\s+READY\s+ROLLOUT\s+AGE$/);
    const imgpol = await kubectl(["get", "imgpol", "-A"]);
    expect(imgpol.code, describeResult(imgpol)).toBe(0);
    expect(imgpol.stdout.split("\n")[0]).toMatch(
      /^NAMESPACE\s+NAME\s+TYPE\s+READY\s+ROLLOUT\s+AGE$/,
    );
    const ipns = await kubectl(["get", "ipns"]);
    expect(ipns.stdout.split("\n")[0]).toMatch(/^NAME\s+RUNTIME\s+ENFORCING\s+READY\s+AGE$/);
    // The category is `imagepolicy-all`, not `imagepolicy`: kubectl expands categories before
    // singular names, so a category named like ImagePolicy's singular would hide the kind.
    const category = await kubectl(["get", "imagepolicy-all", "-A", "-o", "name"]);
    expect(category.code, describeResult(category)).toBe(0);
    expect(category.stdout).toContain("clusterimagepolicy.imagepolicy.dev/reject-star");
    expect(category.stdout).toContain("imagepolicy.imagepolicy.dev/team-a-images");
    expect(category.stdout).toContain("imagepolicynodestatus.imagepolicy.dev/worker-1");
    const singular = await kubectl(["get", "imagepolicy", "-A", "-o", "name"]);
    expect(singular.stdout).not.toContain("clusterimagepolicy");
    expect(singular.stdout).toContain("imagepolicy.imagepolicy.dev/team-a-images");
    const plural = await kubectl(["get", "imagepolicies", "-A", "-o", "name"]);
    expect(plural.stdout).not.toContain("clusterimagepolicy");
  });

  it("explains the API with the schema's descriptions", async () => {
    // The OpenAPI document is republished shortly after a CRD changes: retry for a while.
    let last: CommandResult | undefined;
    for (let i = 0; i < 60; i++) {
      last = await kubectl(["explain", "clusterimagepolicy.spec.policy.rootOfTrust"]);
      if (last.code === 0 && last.stdout.includes("policyType selects the root of trust")) break;
      await delay(500);
    }
    expect(last?.code, last && describeResult(last)).toBe(0);
    expect(last?.stdout).toContain("rootOfTrust says what makes an image in the scopes acceptable");
    expect(last?.stdout).toContain("policyType selects the root of trust");
  });
});

// The CRDs of crds/ in a real kube-apiserver: every manifest of test/crd-manifests/valid is
// accepted, every manifest of test/crd-manifests/invalid is refused with the message its first
// line announces (`# expect: <substring>`), the samples apply with kustomize, and kubectl explain
// and kubectl get show what the schema says.
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { ApiException, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type { Io } from "../../src/cli/io.ts";
import { run } from "../../src/cli/main.ts";
import { CORPUS, type CorpusFile } from "../crd-manifests/corpus.ts";
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

// ---------------------------------------------------------------------------------------------
// The two sides of the disagreement test.

const PLURALS: Readonly<Record<string, string>> = {
  ClusterImagePolicy: "clusterimagepolicies",
  ImagePolicy: "imagepolicies",
  ImagePolicyNodeStatus: "imagepolicynodestatuses",
};

/** One object's verdict: admitted, or refused with these field errors ("<path>: <message>"). */
interface Verdict {
  readonly admitted: boolean;
  readonly errors: readonly string[];
}

function record(v: unknown): Readonly<Record<string, unknown>> {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v))
    : {};
}

function text(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

interface ObjectId {
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

function idOf(doc: unknown): ObjectId | undefined {
  const o = record(doc);
  const kind = text(o.kind);
  const md = record(o.metadata);
  if (kind === undefined || PLURALS[kind] === undefined) return undefined;
  const namespace = kind === "ImagePolicy" ? text(md.namespace) : undefined;
  return {
    kind,
    name: text(md.name) ?? "<unnamed>",
    ...(namespace === undefined ? {} : { namespace }),
  };
}

/** The API server's Status for a refused create, as field errors. A strict-decoding refusal
 * (unknown fields) is a BadRequest whose message lists the fields. */
function statusErrors(body: unknown): string[] {
  const status = record(typeof body === "string" ? (JSON.parse(body) as unknown) : body);
  const causes = record(status.details).causes;
  if (Array.isArray(causes) && causes.length > 0) {
    return causes.map((c) => {
      const cause = record(c);
      const field = text(cause.field) ?? "";
      return `${field === "<nil>" ? "" : field}: ${text(cause.message) ?? ""}`;
    });
  }
  const message = text(status.message) ?? "";
  const unknown = [...message.matchAll(/unknown field "([^"]+)"/g)].map(
    (m) => `${m[1] ?? ""}: unknown field "${m[1] ?? ""}"`,
  );
  return unknown.length > 0 ? unknown : [`?: ${message}`];
}

async function serverVerdict(api: CustomObjectsApi, doc: unknown): Promise<Verdict> {
  const id = idOf(doc);
  const plural = id === undefined ? undefined : PLURALS[id.kind];
  if (id === undefined || plural === undefined) throw new Error("not an object of this API");
  const common = {
    group: "imagepolicy.dev",
    version: "v1alpha1",
    plural,
    body: doc,
    dryRun: "All",
    fieldValidation: "Strict",
  };
  try {
    if (id.namespace === undefined) await api.createClusterCustomObject(common);
    else await api.createNamespacedCustomObject({ ...common, namespace: id.namespace });
    return { admitted: true, errors: [] };
  } catch (e) {
    if (!(e instanceof ApiException))
      throw new Error("the API server did not answer", { cause: e });
    return { admitted: false, errors: statusErrors(e.body).sort() };
  }
}

/** `imagepolicy validate -o json` on a file: each object's admission verdict. */
async function cliVerdicts(file: string): Promise<Map<string, Verdict>> {
  const stdout: string[] = [];
  const io: Io = { out: (l) => stdout.push(l), err: (l) => stdout.push(l) };
  await run(["validate", "-f", file, "-o", "json"], io);
  const problems = record(JSON.parse(stdout.join("\n")) as unknown).problems;
  const out = new Map<string, string[]>();
  for (const p of Array.isArray(problems) ? problems : []) {
    const r = record(p);
    if (r.admission === undefined) continue; // the compiler's own judgements
    const key = JSON.stringify([r.kind, r.namespace ?? null, r.name]);
    out.set(key, [...(out.get(key) ?? []), `${text(r.field) ?? ""}: ${text(r.message) ?? ""}`]);
  }
  return new Map([...out].map(([k, errors]) => [k, { admitted: false, errors: errors.sort() }]));
}

const keyOf = (id: ObjectId): string => JSON.stringify([id.kind, id.namespace ?? null, id.name]);

describe("CRD admission (real kube-apiserver)", () => {
  let dir: string;
  let plane: ControlPlane | undefined;
  let api: CustomObjectsApi | undefined;
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
    const kc = new KubeConfig();
    kc.loadFromFile(plane.kubeconfigPath);
    api = kc.makeApiClient(CustomObjectsApi);
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

  // The corpus size is reported in docs/api.md; a shrinking corpus fails here.
  it("the corpus holds at least 100 manifests", () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(100);
  });

  // Before the kubectl tests below, which create the valid objects for real: a dry-run create of
  // an existing name would fail.
  it.each(CORPUS.map((c): [string, CorpusFile] => [c.file, c]))(
    "API server and CLI agree on %s",
    async (_file, c) => {
      if (api === undefined) throw new Error("the control plane did not start");
      const cli = await cliVerdicts(c.absolute);
      let objects = 0;
      for (const doc of c.documents) {
        const id = idOf(doc);
        if (id === undefined) continue;
        objects++;
        const server = await serverVerdict(api, doc);
        const local = cli.get(keyOf(id)) ?? { admitted: true, errors: [] };
        expect(local, `${c.file}: ${keyOf(id)}`).toEqual(server);
        if (c.verdict === "valid") expect(server.admitted, c.file).toBe(true);
        else expect(server.errors.join("\n"), c.file).toContain(c.expect);
      }
      expect(objects, `${c.file} holds no object of this API`).toBeGreaterThan(0);
    },
  );

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

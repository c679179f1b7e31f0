// The CRDs in crds/ without an API server: they are what hack/gen-crds.ts writes, parse strictly,
// follow the structural habits (every field described, every list and string bounded, so that the
// apiserver's CEL cost estimator accepts the rules), and the two policy CRDs share one spec. The
// regular expressions of the CEL rules are checked here with JavaScript's engine, whose syntax
// agrees with RE2 for the constructs they use. test/apiserver/crdAdmission.test.ts applies the
// manifests of test/crd-manifests to a real kube-apiserver.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, parseDocument } from "yaml";
import { renderCrds } from "../../hack/gen-crds.ts";
import {
  DNS1123_SUBDOMAIN_REGEX,
  REFERENCE_REGEX,
  REPOSITORY_PREFIX_REGEX,
  REPOSITORY_REGEX,
  SCOPE_REGEX,
} from "../../src/api/patterns.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CRD_FILES = [
  "crds/imagepolicy.dev_clusterimagepolicies.yaml",
  "crds/imagepolicy.dev_imagepolicies.yaml",
  "crds/imagepolicy.dev_imagepolicynodestatuses.yaml",
  "crds/imagepolicy.dev_imagepullrefusals.yaml",
] as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function field(o: Json | undefined, ...keys: string[]): Json | undefined {
  let cur = o;
  for (const k of keys) {
    if (!isObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** Parses one YAML document strictly: duplicate keys and any other error or warning fail. */
function parseStrict(file: string): Json {
  const doc = parseDocument(readFileSync(path.join(ROOT, file), "utf8"), { uniqueKeys: true });
  expect(doc.errors.map((e) => e.message)).toEqual([]);
  expect(doc.warnings.map((e) => e.message)).toEqual([]);
  return doc.toJS() as Json;
}

function openAPISchema(crd: Json): JsonObject {
  const versions = field(crd, "spec", "versions");
  if (!Array.isArray(versions) || versions.length !== 1) throw new Error("expected one version");
  const schema = field(versions[0], "schema", "openAPIV3Schema");
  if (!isObject(schema)) throw new Error("no openAPIV3Schema");
  return schema;
}

/** Every sub-schema with its path (properties, items, additionalProperties). */
function* walk(schema: JsonObject, at: string): Generator<[string, JsonObject]> {
  yield [at, schema];
  const props = schema.properties;
  if (isObject(props)) {
    for (const [name, sub] of Object.entries(props)) {
      if (isObject(sub)) yield* walk(sub, `${at}.${name}`);
    }
  }
  if (isObject(schema.items)) yield* walk(schema.items, `${at}[]`);
  if (isObject(schema.additionalProperties)) {
    yield* walk(schema.additionalProperties, `${at}{}`);
  }
}

const crds = new Map<string, Json>(CRD_FILES.map((f) => [f, parseStrict(f)]));

describe("crds/", () => {
  it("is exactly what hack/gen-crds.ts writes (run `npm exec -- node hack/gen-crds.ts`)", async () => {
    const rendered = await renderCrds(ROOT);
    expect([...rendered.keys()].sort()).toEqual([...CRD_FILES].sort());
    for (const [file, text] of rendered) {
      expect(readFileSync(path.join(ROOT, file), "utf8"), file).toBe(text);
    }
  });

  it.each(CRD_FILES)("%s: names, scope, status subresource and printer columns", (file) => {
    const crd = crds.get(file);
    expect(field(crd, "apiVersion")).toBe("apiextensions.k8s.io/v1");
    expect(field(crd, "spec", "group")).toBe("imagepolicy.dev");
    expect(field(crd, "spec", "names", "categories")).toEqual(["imagepolicy-all"]);
    const kind = field(crd, "spec", "names", "kind");
    const expected: Record<string, { short: string; scope: string; columns: string[] }> = {
      ClusterImagePolicy: {
        short: "cip",
        scope: "Cluster",
        columns: ["Scopes", "Type", "Ready", "Rollout", "Age"],
      },
      ImagePolicy: {
        short: "imgpol",
        scope: "Namespaced",
        columns: ["Scopes", "Type", "Ready", "Rollout", "Age"],
      },
      ImagePolicyNodeStatus: {
        short: "ipns",
        scope: "Cluster",
        columns: ["Runtime", "Enforcing", "Ready", "Age"],
      },
      ImagePullRefusal: {
        short: "ipr",
        scope: "Namespaced",
        columns: ["Pod", "Image", "Layer", "Scope", "Reason", "Age"],
      },
    };
    const want = typeof kind === "string" ? expected[kind] : undefined;
    if (want === undefined) throw new Error(`unexpected kind ${JSON.stringify(kind)}`);
    expect(field(crd, "spec", "names", "shortNames")).toEqual([want.short]);
    expect(field(crd, "spec", "scope")).toBe(want.scope);
    const versions = field(crd, "spec", "versions");
    expect(Array.isArray(versions) && versions.length).toBe(1);
    const version = Array.isArray(versions) ? versions[0] : undefined;
    expect(field(version, "name")).toBe("v1alpha1");
    expect(field(version, "served")).toBe(true);
    expect(field(version, "storage")).toBe(true);
    expect(field(version, "subresources", "status")).toEqual({});
    const columns = field(version, "additionalPrinterColumns");
    expect(Array.isArray(columns) && columns.map((c) => field(c, "name"))).toEqual(want.columns);
    const ready = Array.isArray(columns) ? columns.find((c) => field(c, "name") === "Ready") : null;
    if (want.columns.includes("Ready")) {
      expect(field(ready, "jsonPath")).toBe('.status.conditions[?(@.type=="Ready")].status');
    }
  });

  it.each(CRD_FILES)("%s: every field described, every list and string bounded", (file) => {
    const problems: string[] = [];
    for (const [at, s] of walk(openAPISchema(crds.get(file) ?? null), "")) {
      // The apiserver forbids anything but `type: object` on metadata.
      if (at === ".metadata") {
        expect(s).toEqual({ type: "object" });
        continue;
      }
      if (typeof s.description !== "string" || s.description.length < 10) {
        problems.push(`${at}: no description`);
      }
      switch (s.type) {
        case "array":
          if (typeof s.maxItems !== "number") problems.push(`${at}: array without maxItems`);
          break;
        case "string":
          if (
            typeof s.maxLength !== "number" &&
            !Array.isArray(s.enum) &&
            s.format !== "date-time"
          ) {
            problems.push(`${at}: string without maxLength, enum or date-time format`);
          }
          break;
        case "integer":
          if (s.format !== "int32" && s.format !== "int64") problems.push(`${at}: integer size`);
          break;
        case "object":
          if (isObject(s.additionalProperties) && typeof s.maxProperties !== "number") {
            problems.push(`${at}: map without maxProperties`);
          }
          break;
        case "boolean":
          break;
        default:
          problems.push(`${at}: no type`);
      }
      const rules = s["x-kubernetes-validations"];
      if (rules !== undefined) {
        if (!Array.isArray(rules)) problems.push(`${at}: x-kubernetes-validations not a list`);
        else {
          for (const r of rules) {
            if (typeof field(r, "rule") !== "string" || typeof field(r, "message") !== "string") {
              problems.push(`${at}: CEL rule without rule or message`);
            }
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("conditions are a list map keyed by type, in status of every CRD", () => {
    for (const crd of crds.values()) {
      const c = field(openAPISchema(crd), "properties", "status", "properties", "conditions");
      expect(field(c, "x-kubernetes-list-type")).toBe("map");
      expect(field(c, "x-kubernetes-list-map-keys")).toEqual(["type"]);
      expect(field(c, "items", "required")).toEqual([
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
      ]);
    }
  });

  it("ClusterImagePolicy and ImagePolicy share one spec, except keySecretRef.namespace and file:// lookasides", () => {
    const specOf = (file: string): Json =>
      field(openAPISchema(crds.get(file) ?? null), "properties", "spec") ?? null;
    const cluster = specOf("crds/imagepolicy.dev_clusterimagepolicies.yaml");
    const namespaced = specOf("crds/imagepolicy.dev_imagepolicies.yaml");
    const refs: string[] = [];
    // Removes namespace from every keySecretRef schema, recording where it was, and the lookaside
    // (compared below).
    const strip = (v: Json, at: string): Json => {
      if (Array.isArray(v)) return v.map((x, i) => strip(x, `${at}[${i}]`));
      if (!isObject(v)) return v;
      const out: JsonObject = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === "lookaside") continue;
        if (k === "keySecretRef" && isObject(x) && isObject(x.properties)) {
          refs.push(at);
          const { namespace: _ns, ...properties } = x.properties;
          const required = Array.isArray(x.required)
            ? x.required.filter((r) => r !== "namespace")
            : [];
          out[k] = strip({ ...x, properties, required }, `${at}.${k}`);
        } else {
          out[k] = strip(x, `${at}.${k}`);
        }
      }
      return out;
    };
    expect(
      field(
        cluster,
        "properties",
        "policy",
        "properties",
        "rootOfTrust",
        "properties",
        "publicKey",
        "properties",
        "keySecretRef",
        "required",
      ),
    ).toEqual(["name", "namespace", "key"]);
    expect(
      field(
        namespaced,
        "properties",
        "policy",
        "properties",
        "rootOfTrust",
        "properties",
        "publicKey",
        "properties",
        "keySecretRef",
        "properties",
        "namespace",
      ),
    ).toBeUndefined();
    expect(strip(namespaced, "")).toEqual(strip(cluster, ""));
    expect(refs.length).toBe(4); // publicKey and additionalKeys[], in both CRDs
    const lookasideRule = (spec: Json): Json | undefined =>
      field(
        field(
          spec,
          ...["properties", "policy", "properties", "rootOfTrust", "properties", "gpgKey"],
          ...["properties", "lookaside", "x-kubernetes-validations"],
        ),
      );
    const ruleText = (spec: Json): string => {
      const rules = lookasideRule(spec);
      return Array.isArray(rules)
        ? rules.map((r) => JSON.stringify(field(r, "rule") ?? null)).join("\n")
        : "";
    };
    expect(ruleText(cluster)).toContain("self.startsWith('file://')");
    expect(ruleText(namespaced)).not.toContain("file://");
  });
});

describe("scope regular expression", () => {
  const scope = new RegExp(SCOPE_REGEX);
  it.each([
    "*",
    "*.example.com",
    "*.0.0.1",
    "*.io",
    "registry.example.com",
    "registry.example.com:5000",
    "registry.example.com/team",
    "registry.example.com/team/app",
    "registry.example.com/team/app:1.0",
    "registry.example.com/team/app:latest",
    `registry.example.com/team/app@sha256:${"a".repeat(64)}`,
    "registry.example.com:65535/a/b-c/d__e.f/g--h",
    "10.0.0.5:5000/team/app",
    "127.0.0.1",
    "localhost",
    "localhost:5000/app",
    "registry:5000/app",
    "busybox",
    "busybox:1.36",
    "library/busybox",
    "user/repo:tag",
    `busybox@sha256:${"0".repeat(64)}`,
  ])("accepts %s", (s) => {
    expect(scope.test(s)).toBe(true);
  });
  it.each([
    "",
    " ",
    "registry.example.com/my app",
    " registry.example.com",
    "Registry.example.com",
    "registry.example.com/Team",
    "registry.*.example.com",
    "*example.com",
    "example.*",
    "**",
    "*.example.com:5000",
    "*.example.com/team",
    "registry.example.com:0/app",
    "registry.example.com:65536/app",
    "registry.example.com:05000/app",
    `registry.example.com/app:1.0@sha256:${"a".repeat(64)}`,
    "registry.example.com:latest",
    "registry.example.com/app:",
    "registry.example.com/app@sha256:abc",
    `registry.example.com/app@sha256:${"A".repeat(64)}`,
    `registry.example.com/app:${"t".repeat(129)}`,
    "registry.example.com//app",
    "registry.example.com/app/",
    "-registry.example.com",
    "registry.example.com/-app",
    "https://registry.example.com",
  ])("refuses %j", (s) => {
    expect(scope.test(s)).toBe(false);
  });
});

describe("identity regular expressions", () => {
  it("repository prefix: fully qualified, no tag or digest", () => {
    const re = new RegExp(REPOSITORY_PREFIX_REGEX);
    for (const ok of [
      "example.com",
      "mirror-example.com",
      "localhost:5000",
      "reg.io/a/b",
      "reg:5000/x",
    ]) {
      expect(re.test(ok), ok).toBe(true);
    }
    for (const bad of [
      "busybox",
      "test-remap-prefix",
      "library/busybox",
      "reg.io/a:1",
      "reg.io/a@sha256:" + "a".repeat(64),
      "Reg.io/a",
      "",
    ]) {
      expect(re.test(bad), bad).toBe(false);
    }
  });
  it("repository: a host and at least one path component", () => {
    const re = new RegExp(REPOSITORY_REGEX);
    for (const ok of ["reg.io/a/b", "reg:5000/x", "localhost/app"]) {
      expect(re.test(ok), ok).toBe(true);
    }
    for (const bad of ["example.com", "localhost:5000", "busybox", "reg.io/a:1"]) {
      expect(re.test(bad), bad).toBe(false);
    }
  });
  it("reference: fully qualified with a tag or digest", () => {
    const re = new RegExp(REFERENCE_REGEX);
    expect(re.test("reg.io/a:1")).toBe(true);
    expect(re.test(`reg.io/a@sha256:${"a".repeat(64)}`)).toBe(true);
    expect(re.test("reg.io/a")).toBe(false);
    expect(re.test("reg.io:1")).toBe(false);
  });
  it("DNS-1123 subdomain", () => {
    const re = new RegExp(DNS1123_SUBDOMAIN_REGEX);
    expect(re.test("team-signing-key")).toBe(true);
    expect(re.test("a.b")).toBe(true);
    expect(re.test("Team_Key")).toBe(false);
  });
});

describe("test/crd-manifests and config/samples", () => {
  const dir = (d: string): string[] =>
    readdirSync(path.join(ROOT, d))
      .filter((f) => f.endsWith(".yaml"))
      .sort()
      .map((f) => `${d}/${f}`);
  const valid = dir("test/crd-manifests/valid");
  const invalid = dir("test/crd-manifests/invalid");
  const samples = dir("config/samples");

  it.each([...valid, ...invalid, ...samples])("%s parses strictly", (file) => {
    const docs = parseAllDocuments(readFileSync(path.join(ROOT, file), "utf8"), {
      uniqueKeys: true,
    });
    const list = Array.isArray(docs) ? docs : [docs];
    expect(list.length).toBeGreaterThan(0);
    for (const d of list) {
      expect(d.errors.map((e) => e.message)).toEqual([]);
      expect(d.warnings.map((e) => e.message)).toEqual([]);
    }
  });

  it.each(invalid)("%s starts with an # expect: line", (file) => {
    const first = readFileSync(path.join(ROOT, file), "utf8").split("\n", 1)[0] ?? "";
    expect(first).toMatch(/^# expect: \S/);
  });

  it("every scope of the valid manifests and samples matches the scope expression", () => {
    const scope = new RegExp(SCOPE_REGEX);
    for (const file of [...valid, ...samples]) {
      for (const d of parseAllDocuments(readFileSync(path.join(ROOT, file), "utf8"))) {
        const scopes = field(d.toJS() as Json, "spec", "scopes");
        if (!Array.isArray(scopes)) continue;
        for (const s of scopes)
          expect(typeof s === "string" && scope.test(s), `${file}: ${JSON.stringify(s)}`).toBe(
            true,
          );
      }
    }
  });
});

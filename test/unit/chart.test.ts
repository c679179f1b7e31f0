// The Helm chart against the kustomize install it is generated from (hack/gen-chart.ts), with
// real helm (hack/tools/helm.sh) and kubectl's kustomize (hack/tools/control-plane.sh):
// - the chart is what the script writes from today's config/ (drift);
// - `helm lint --strict` passes;
// - `helm template` with default values renders the kustomize objects, object for object, apart
//   from the CRDs' helm.sh/resource-policy annotation (crds.keep); with crds.keep=false exactly;
// - each value changes what it must and nothing else: the namespace everywhere it is named, the
//   image everywhere it runs and in --operator-image, resources, the flags;
// - values.schema.json refuses bad values with a message naming the value.
// test/apiserver/helm.test.ts installs the chart on a real API server.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { chartInput, chartOnDisk } from "../../hack/gen-chart.ts";
import { isJsonObject, toJson, type Json, type JsonObject } from "../../hack/chart/json.ts";
import { CHART_DIR, renderChart, type ChartInput } from "../../hack/chart/render.ts";
import { runTool, runToolOk, toolBin } from "../support/tools.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CHART = path.join(ROOT, CHART_DIR);
const NS = "imagepolicy-system";
const KEEP = "helm.sh/resource-policy";
const LONG = 120_000;

let helm: string;
let input: ChartInput;
let kustomized: JsonObject[];
let dir: string;

function objects(text: string): JsonObject[] {
  const out: JsonObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    expect(doc.errors).toEqual([]);
    const v = toJson(doc.toJS());
    if (v === null) continue;
    if (!isJsonObject(v)) throw new Error(`not an object: ${JSON.stringify(v)}`);
    out.push(v);
  }
  return out;
}

function str(o: Json | undefined, ...keys: string[]): string | undefined {
  let cur = o;
  for (const k of keys) cur = isJsonObject(cur) ? cur[k] : undefined;
  return typeof cur === "string" ? cur : undefined;
}

const key = (o: JsonObject): string =>
  [
    str(o, "apiVersion"),
    str(o, "kind"),
    str(o, "metadata", "namespace"),
    str(o, "metadata", "name"),
  ]
    .map((p) => p ?? "")
    .join("/");

function byKey(list: readonly JsonObject[]): Map<string, JsonObject> {
  const m = new Map(list.map((o) => [key(o), o]));
  expect(m.size).toBe(list.length);
  return m;
}

function withoutKeepAnnotation(o: JsonObject): JsonObject {
  const copy = structuredClone(o);
  const metadata = copy["metadata"];
  if (!isJsonObject(metadata)) return copy;
  const annotations = metadata["annotations"];
  if (isJsonObject(annotations)) {
    const { [KEEP]: _, ...rest } = annotations;
    const { annotations: _all, ...others } = metadata;
    copy["metadata"] = Object.keys(rest).length === 0 ? others : { ...others, annotations: rest };
  }
  return copy;
}

async function template(...args: string[]): Promise<JsonObject[]> {
  return objects(await runToolOk(helm, ["template", "imagepolicy-operator", CHART, ...args]));
}

const workload = (list: readonly JsonObject[], kind: string): JsonObject => {
  const found = list.find((o) => str(o, "kind") === kind);
  if (found === undefined) throw new Error(`no ${kind}`);
  return found;
};

function container(o: JsonObject): JsonObject {
  const spec = o["spec"];
  const tpl = isJsonObject(spec) ? spec["template"] : undefined;
  const podSpec = isJsonObject(tpl) ? tpl["spec"] : undefined;
  const containers = isJsonObject(podSpec) ? podSpec["containers"] : undefined;
  const [first] = Array.isArray(containers) ? containers : [];
  if (!isJsonObject(first)) throw new Error("no container");
  return first;
}

const args = (o: JsonObject): Json | undefined => container(o)["args"];

beforeAll(async () => {
  helm = path.join(await toolBin("helm.sh"), "helm");
  input = await chartInput();
  kustomized = objects(input.kustomizeOutput);
  dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-chart-"));
}, 3_600_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("charts/imagepolicy-operator", () => {
  it(
    "is what hack/gen-chart.ts writes from today's config/ (run it after changing config/)",
    async () => {
      const want = await renderChart(input);
      const have = await chartOnDisk();
      expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [file, text] of want) expect(have.get(file), file).toBe(text);
    },
    LONG,
  );

  it(
    "passes helm lint --strict",
    async () => {
      const out = await runToolOk(helm, ["lint", "--strict", CHART]);
      expect(out).toContain("1 chart(s) linted, 0 chart(s) failed");
    },
    LONG,
  );

  it(
    "renders the kustomize objects with default values, plus the CRDs' keep annotation",
    async () => {
      const rendered = byKey(await template());
      const want = byKey(kustomized);
      expect([...rendered.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [k, o] of rendered) {
        const isCrd = str(o, "kind") === "CustomResourceDefinition";
        expect(str(o, "metadata", "annotations", KEEP), k).toBe(isCrd ? "keep" : undefined);
        expect(withoutKeepAnnotation(o), k).toEqual(want.get(k));
      }
      // Argument order matters to nobody but is kept anyway.
      expect(args(workload([...rendered.values()], "Deployment"))).toEqual(
        args(workload(kustomized, "Deployment")),
      );
    },
    LONG,
  );

  it(
    "renders exactly the kustomize objects with crds.keep=false",
    async () => {
      const rendered = byKey(await template("--set", "crds.keep=false"));
      expect(rendered).toEqual(byKey(kustomized));
    },
    LONG,
  );

  it(
    "moves everything that names the namespace when namespace.name changes",
    async () => {
      const rendered = await template("--set", "namespace.name=policy-ops");
      expect(rendered.length).toBe(kustomized.length);
      for (const o of rendered) {
        if (str(o, "kind") === "CustomResourceDefinition") continue;
        expect(JSON.stringify(o), key(o)).not.toMatch(
          /(?<![a-z0-9-])imagepolicy-system(?![a-z0-9-])/,
        );
      }
      const nsObject = rendered.find((o) => str(o, "kind") === "Namespace");
      expect(str(nsObject, "metadata", "name")).toBe("policy-ops");
      // Every object kustomize puts in the operator namespace is now in policy-ops; others stay.
      const original = byKey(kustomized);
      for (const o of rendered) {
        const before = [...original.values()].find(
          (b) =>
            str(b, "kind") === str(o, "kind") &&
            str(b, "metadata", "name") === str(o, "metadata", "name"),
        );
        const ns = str(before, "metadata", "namespace");
        expect(str(o, "metadata", "namespace"), key(o)).toBe(ns === NS ? "policy-ops" : ns);
      }
      // The bindings grant the ServiceAccounts of the new namespace.
      for (const o of rendered.filter((b) => str(b, "kind")?.endsWith("Binding") === true)) {
        const subjects = o["subjects"];
        if (!Array.isArray(subjects)) continue;
        for (const s of subjects) expect(str(s, "namespace"), key(o)).toBe("policy-ops");
      }
      // Nothing else changed: with the namespace named back, the objects are kustomize's.
      for (const o of rendered) {
        const back = toJson(JSON.parse(JSON.stringify(o).replaceAll("policy-ops", NS)));
        if (!isJsonObject(back)) throw new Error("not an object");
        expect(withoutKeepAnnotation(back), key(back)).toEqual(original.get(key(back)));
      }
    },
    LONG,
  );

  it(
    "grants the protected-pods Role in every protected namespace the values name",
    async () => {
      const grants = (list: readonly JsonObject[]): string[] =>
        list
          .filter((o) => str(o, "metadata", "name") === "imagepolicy-controller-protected-pods")
          .map((o) => `${str(o, "kind") ?? ""} ${str(o, "metadata", "namespace") ?? ""}`)
          .sort();
      const rendered = await template(
        "--set",
        "controller.flags.protectedNamespace={kube-system,calico-system}",
        "--set",
        "namespace.name=policy-ops",
      );
      expect(grants(rendered)).toEqual([
        "Role calico-system",
        "Role kube-system",
        "RoleBinding calico-system",
        "RoleBinding kube-system",
      ]);
      expect(args(workload(rendered, "Deployment"))).toEqual(
        expect.arrayContaining([
          "--protected-namespace=kube-system",
          "--protected-namespace=calico-system",
        ]),
      );
      for (const o of rendered.filter((b) => str(b, "kind") === "RoleBinding")) {
        const subjects = o["subjects"];
        for (const sub of Array.isArray(subjects) ? subjects : []) {
          expect(str(sub, "namespace"), key(o)).toBe("policy-ops");
        }
      }
      // An empty list passes no flag (the controller's default, kube-system, applies): the grant
      // follows config/'s list.
      const empty = await template("--set", "controller.flags.protectedNamespace=null");
      expect(grants(empty)).toEqual(["Role kube-system", "RoleBinding kube-system"]);
    },
    LONG,
  );

  it(
    "leaves the Namespace out with namespace.create=false, the CRDs with crds.install=false",
    async () => {
      const noNs = await template("--set", "namespace.create=false");
      expect(noNs.filter((o) => str(o, "kind") === "Namespace")).toEqual([]);
      expect(noNs.length).toBe(kustomized.length - 1);
      const noCrds = await template("--set", "crds.install=false");
      expect(noCrds.filter((o) => str(o, "kind") === "CustomResourceDefinition")).toEqual([]);
      expect(noCrds.length).toBe(
        kustomized.filter((o) => str(o, "kind") !== "CustomResourceDefinition").length,
      );
    },
    LONG,
  );

  it(
    "puts the image in every container and in the controller's --operator-image",
    async () => {
      const digest = `sha256:${"ab".repeat(32)}`;
      for (const [set, want] of [
        [["--set", "image.tag=v9.9.9"], "ghcr.io/imagepolicy-dev/imagepolicy-operator:v9.9.9"],
        [
          [
            "--set",
            "image.repository=mirror.example.com/ops/imagepolicy",
            "--set",
            `image.digest=${digest}`,
          ],
          `mirror.example.com/ops/imagepolicy@${digest}`,
        ],
      ] as const) {
        const rendered = await template(...set);
        const deployment = workload(rendered, "Deployment");
        expect(container(deployment)["image"]).toBe(want);
        expect(container(workload(rendered, "DaemonSet"))["image"]).toBe(want);
        const env = container(deployment)["env"];
        expect(
          Array.isArray(env) ? env.find((e) => str(e, "name") === "OPERATOR_IMAGE") : undefined,
        ).toEqual({
          name: "OPERATOR_IMAGE",
          value: want,
        });
        expect(JSON.stringify(rendered)).not.toContain("imagepolicy-operator:v0.1.0");
      }
    },
    LONG,
  );

  it(
    "passes resources and flags from values, numbers without an exponent, null as no flag",
    async () => {
      const values = path.join(dir, "values.yaml");
      await writeFile(
        values,
        [
          "controller:",
          "  resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {memory: 1Gi}}",
          "  flags:",
          "    pauseImage: registry.example.com/pause:3.10",
          "    logLevel: debug",
          "    crioVersion: '1.33'",
          "agent:",
          "  flags:",
          "    probeInterval: 1000000",
          "",
        ].join("\n"),
      );
      const rendered = await template("-f", values, "--set", "agent.flags.logLevel=warn");
      const deployment = workload(rendered, "Deployment");
      expect(container(deployment)["resources"]).toEqual({
        requests: { cpu: "200m", memory: "256Mi" },
        limits: { memory: "1Gi" },
      });
      expect(args(deployment)).toEqual([
        "controller",
        "--namespace=$(POD_NAMESPACE)",
        "--operator-image=$(OPERATOR_IMAGE)",
        "--pause-image=registry.example.com/pause:3.10",
        "--protected-namespace=kube-system",
        "--namespace-max-policies=256",
        "--namespace-max-scopes=1024",
        "--namespace-max-bytes=262144",
        "--metrics-addr=127.0.0.1:8080",
        "--health-addr=:8081",
        "--crio-version=1.33",
        "--log-level=debug",
      ]);
      const agentArgs = args(workload(rendered, "DaemonSet"));
      expect(agentArgs).toContain("--probe-interval=1000000");
      expect(agentArgs).toContain("--log-level=warn");
      // null removes a flag config/ passes: the command's own default applies.
      const noPause = await template("--set", "controller.flags.pauseImage=null");
      expect(JSON.stringify(args(workload(noPause, "Deployment")))).not.toContain("--pause-image");
    },
    LONG,
  );

  it(
    "offers a repeatable flag as a list, one flag per item, passed twice when config/ does",
    async () => {
      // A controller documenting a repeatable flag that config/ passes twice: the generator must
      // keep both as the default list, and a list value gives one argument per item.
      const usage = `${input.usages.get("controller") ?? ""}
  --extra-image REF            an image (repeatable)`;
      const kustomizeOutput = input.kustomizeOutput.replace(
        "- --pause-image=registry.k8s.io/pause:3.10",
        "- --pause-image=registry.k8s.io/pause:3.10\n        - --extra-image=a.example/x:1\n        - --extra-image=b.example/y:2",
      );
      expect(kustomizeOutput).not.toBe(input.kustomizeOutput);
      const files = await renderChart({
        ...input,
        kustomizeOutput,
        usages: new Map([...input.usages, ["controller", usage]]),
      });
      const chart = path.join(dir, "repeatable");
      for (const [file, text] of files) {
        const target = path.join(chart, path.relative(CHART_DIR, file));
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, text);
      }
      const render = async (...set: string[]): Promise<Json | undefined> =>
        args(
          workload(objects(await runToolOk(helm, ["template", "x", chart, ...set])), "Deployment"),
        );
      const extra = (a: Json | undefined): Json[] =>
        Array.isArray(a)
          ? a.filter((x) => typeof x === "string" && x.startsWith("--extra-image"))
          : [];
      expect(extra(await render())).toEqual([
        "--extra-image=a.example/x:1",
        "--extra-image=b.example/y:2",
      ]);
      expect(extra(await render("--set", "controller.flags.extraImage={c.example/z:3}"))).toEqual([
        "--extra-image=c.example/z:3",
      ]);
      expect(extra(await render("--set", "controller.flags.extraImage=null"))).toEqual([]);
      const one = await runTool(helm, [
        "template",
        "x",
        chart,
        "--set",
        "controller.flags.extraImage=c.example/z:3",
      ]);
      expect(one.code).not.toBe(0);
      expect(one.stderr).toContain("extraImage");
    },
    LONG,
  );

  it(
    "refuses values the schema does not allow, naming the value",
    async () => {
      for (const [set, names] of [
        ["namespace.name=Not_A_Namespace", "namespace/name"],
        ["image.digest=latest", "image/digest"],
        ["controller.flags.noSuchFlag=1", "noSuchFlag"],
        ["agent.resources.requests=oops", "agent/resources/requests"],
      ] as const) {
        const r = await runTool(helm, ["template", "x", CHART, "--set", set]);
        expect(r.code, set).not.toBe(0);
        expect(r.stderr, set).toContain(names);
      }
    },
    LONG,
  );
});

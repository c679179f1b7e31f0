// The Helm chart charts/imagepolicy-operator, rendered from what `kubectl kustomize
// config/default` outputs, so kustomize and Helm install the same objects from one source
// (docs/operate.md, "Helm"). Pure: the caller runs kustomize and reads the files.
//
// Every object of the kustomize output becomes one template, the object verbatim except for the
// places a value may change, which are found in the output rather than listed by hand, so that a
// change to config/ reaches the chart when hack/gen-chart.ts runs again:
// - the operator's namespace (the one Namespace object): every string of every non-CRD object that
//   names it as a whole word (metadata.namespace, RoleBinding subjects, a ServiceAccount user name
//   in CEL, ...) -> .Values.namespace.name; the Namespace object itself -> .Values.namespace.create;
// - the image: every string equal to the image of the workloads (the containers and the
//   controller's OPERATOR_IMAGE) -> .Values.image;
// - each workload container's resources -> .Values.<command>.resources, where <command> is the
//   container's first argument (controller, agent);
// - each flag the command documents in its usage text -> .Values.<command>.flags.<camelCase>,
//   except the flags bound to the pod itself (FIXED_FLAGS, host paths): default = the value
//   config/ passes, or null (not passed: the command's own default applies);
// - an object in a namespace config/ passes to a flag of PER_NAMESPACE_FLAGS (the controller's
//   --protected-namespace: its Role and RoleBinding to list pods there): one copy per item of
//   that flag's value, its metadata.namespace the item;
// - the CRDs: .Values.crds.install, and .Values.crds.keep adds `helm.sh/resource-policy: keep`
//   (the one difference from kustomize with default values: Helm then never deletes the CRDs, and
//   with them every policy, on uninstall).
// With default values, `helm template` renders the kustomize output object for object
// (test/unit/chart.test.ts).

import { format } from "prettier";
import { parseAllDocuments, stringify } from "yaml";
import { isJsonObject, objectAt, stringAt, toJson, type Json, type JsonObject } from "./json.ts";
import type { FlagComments } from "./comments.ts";
import { parseUsage, type FlagDoc } from "./usage.ts";

export const CHART_NAME = "imagepolicy-operator";
export const CHART_DIR = `charts/${CHART_NAME}`;
const HELPER = CHART_NAME;

export interface ChartInput {
  /** `kubectl kustomize config/default`. */
  readonly kustomizeOutput: string;
  /** command -> its usage text (`imagepolicy controller --help`). */
  readonly usages: ReadonlyMap<string, string>;
  /** The comments config/ writes above each flag. */
  readonly flagComments: FlagComments;
  /** package.json's version: the chart's version. */
  readonly version: string;
  readonly description: string;
}

export class ChartError extends Error {
  override readonly name = "ChartError";
}

/** Flags that stay as config/ writes them, whatever the values: each is bound to the pod. */
const FIXED_FLAGS: ReadonlyMap<string, string> = new Map([
  ["kubeconfig", "the pod runs with its ServiceAccount's in-cluster credentials"],
  ["namespace", "the pod's own namespace ($(POD_NAMESPACE))"],
  ["node-name", "the pod's node ($(NODE_NAME))"],
  ["operator-image", "the image the pod runs ($(OPERATOR_IMAGE), from .Values.image)"],
  ["identity", "leader election needs a distinct identity per replica (its host name)"],
  ["metrics-addr", "bound to the container's ports"],
  ["health-addr", "bound to the container's probes"],
]);

/** Repeatable flags naming namespaces where the workload needs objects of its own (RBAC): an
 * object config/ puts in one of the namespaces it passes is rendered once per item of the value,
 * so the grants follow the value. With an empty list the flag is not passed and the command's
 * default applies; the objects then follow config/'s list. */
const PER_NAMESPACE_FLAGS: ReadonlyMap<string, string> = new Map([
  ["protected-namespace", "the controller lists the pods of each protected namespace"],
]);

/** A flag whose usage metavar is a host path is bound to the pod's hostPath mounts. */
const HOST_PATH_METAVARS = new Set(["PATH", "DIR"]);

/** Placeholders in the serialised YAML, replaced by template actions afterwards. Letters only, so
 * the YAML writer keeps them plain and whole. */
const P = {
  namespace: "ZZIPNAMESPACEZZ",
  image: "ZZIPIMAGEZZ",
  keep: "ZZIPKEEPZZ",
  rangeNamespace: "ZZIPRANGENSZZ",
  args: (i: number) => `ZZIPARGS${"X".repeat(i + 1)}ZZ`,
  resources: (i: number) => `ZZIPRESOURCES${"X".repeat(i + 1)}ZZ`,
};
const ANY_PLACEHOLDER = /ZZIP[A-Z]*ZZ/;

interface ValueFlag {
  readonly doc: FlagDoc;
  readonly key: string;
  /** From config/: a string, a list for a repeatable flag, or null when config/ passes none. */
  readonly default: string | readonly string[] | null;
  readonly comment: string | undefined;
}

interface Workload {
  readonly command: string;
  readonly container: string;
  readonly kind: string;
  readonly name: string;
  readonly resources: JsonObject;
  readonly flags: readonly ValueFlag[];
}

interface Parsed {
  readonly objects: readonly JsonObject[];
  readonly namespace: string;
  readonly image: { readonly repository: string; readonly tag: string; readonly digest: string };
  readonly imageRef: string;
  readonly workloads: readonly Workload[];
}

/** Chart files, by path relative to the repository root, in a stable order. */
export async function renderChart(input: ChartInput): Promise<Map<string, string>> {
  const parsed = parse(input);
  const files = new Map<string, string>();
  files.set(`${CHART_DIR}/Chart.yaml`, await yaml(chartYaml(input, parsed)));
  files.set(`${CHART_DIR}/values.yaml`, await yaml(valuesYaml(parsed)));
  files.set(
    `${CHART_DIR}/values.schema.json`,
    await format(JSON.stringify(valuesSchema(parsed)), { parser: "json" }),
  );
  files.set(`${CHART_DIR}/templates/_helpers.tpl`, HELPERS);
  files.set(`${CHART_DIR}/templates/NOTES.txt`, NOTES);
  const names = new Set<string>();
  for (const obj of parsed.objects) {
    const base = `${(stringAt(obj, "kind") ?? "").toLowerCase()}-${stringAt(obj, "metadata", "name") ?? ""}`;
    let name = base;
    for (let n = 2; names.has(name); n++) name = `${base}-${n}`;
    names.add(name);
    files.set(`${CHART_DIR}/templates/${name}.yaml`, template(obj, parsed));
  }
  return files;
}

async function yaml(text: string): Promise<string> {
  return format(text, { parser: "yaml", printWidth: 100 });
}

function parse(input: ChartInput): Parsed {
  const objects: JsonObject[] = [];
  for (const [i, doc] of parseAllDocuments(input.kustomizeOutput).entries()) {
    if (doc.errors.length > 0) {
      throw new ChartError(`kustomize output, document ${i}: ${doc.errors[0]?.message ?? ""}`);
    }
    const obj = toJson(doc.toJS(), `document ${i}`);
    if (obj === null) continue;
    if (!isJsonObject(obj)) throw new ChartError(`kustomize output, document ${i}: not an object`);
    if (ANY_PLACEHOLDER.test(JSON.stringify(obj))) {
      throw new ChartError(
        `kustomize output, document ${i}: contains a placeholder of this script`,
      );
    }
    objects.push(obj);
  }
  const namespaces = objects.filter((o) => stringAt(o, "kind") === "Namespace");
  const [nsObject, ...more] = namespaces;
  const namespace = stringAt(nsObject, "metadata", "name");
  if (namespace === undefined || more.length > 0) {
    throw new ChartError("config/default must create exactly one Namespace, the operator's");
  }
  const workloads: Workload[] = [];
  const images = new Set<string>();
  for (const obj of objects) {
    const containers = objectAt(obj, "spec", "template", "spec")?.["containers"];
    if (!Array.isArray(containers)) continue;
    for (const c of containers) {
      const image = stringAt(c, "image");
      if (image !== undefined) images.add(image);
      const workload = workloadOf(obj, c, input);
      if (workload !== undefined) workloads.push(workload);
    }
  }
  const [imageRef, ...otherImages] = [...images];
  if (imageRef === undefined || otherImages.length > 0) {
    throw new ChartError(`one image runs every container, found: ${[...images].join(", ")}`);
  }
  const commands = workloads.map((w) => w.command);
  if (new Set(commands).size !== commands.length) {
    throw new ChartError(`two containers run the same command: ${commands.join(", ")}`);
  }
  for (const command of input.usages.keys()) {
    if (!commands.includes(command)) {
      throw new ChartError(`no container of config/default runs ${command}`);
    }
  }
  return { objects, namespace, image: splitImage(imageRef), imageRef, workloads };
}

function splitImage(ref: string): Parsed["image"] {
  const at = ref.indexOf("@");
  if (at >= 0) return { repository: ref.slice(0, at), tag: "", digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) {
    return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1), digest: "" };
  }
  throw new ChartError(`the image ${ref} has neither a tag nor a digest`);
}

export function camelCase(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function workloadOf(obj: JsonObject, container: Json, input: ChartInput): Workload | undefined {
  if (!isJsonObject(container)) return undefined;
  const args = container["args"];
  const [command, ...rest] = Array.isArray(args) ? args : [];
  if (typeof command !== "string") return undefined;
  const usage = input.usages.get(command);
  if (usage === undefined) return undefined;
  const where = `${stringAt(obj, "kind") ?? ""} ${stringAt(obj, "metadata", "name") ?? ""}`;
  const docs = parseUsage(usage);
  const passed = new Map<string, string[]>();
  for (const arg of rest) {
    const m = typeof arg === "string" ? /^--([a-z0-9-]+)=(.*)$/s.exec(arg) : null;
    if (m === null) {
      throw new ChartError(`${where}: argument ${JSON.stringify(arg)} is not --flag=value`);
    }
    const [, name = "", value = ""] = m;
    if (!docs.some((d) => d.name === name)) {
      throw new ChartError(`${where}: ${command} documents no --${name}`);
    }
    passed.set(name, [...(passed.get(name) ?? []), value]);
  }
  const flags: ValueFlag[] = [];
  for (const doc of docs) {
    if (FIXED_FLAGS.has(doc.name) || HOST_PATH_METAVARS.has(doc.metavar)) continue;
    const values = passed.get(doc.name);
    if (values?.some((v) => v.includes("$("))) continue;
    if (values !== undefined && values.length > 1 && !doc.repeatable) {
      throw new ChartError(`${where}: --${doc.name} is passed twice but is not repeatable`);
    }
    flags.push({
      doc,
      key: camelCase(doc.name),
      default:
        values === undefined
          ? doc.repeatable
            ? []
            : null
          : doc.repeatable
            ? values
            : (values[0] ?? null),
      comment: input.flagComments.get(command)?.get(doc.name),
    });
  }
  const resources = container["resources"];
  return {
    command,
    container: stringAt(container, "name") ?? command,
    kind: stringAt(obj, "kind") ?? "",
    name: stringAt(obj, "metadata", "name") ?? "",
    resources: isJsonObject(resources) ? resources : {},
    flags,
  };
}

// ---------------------------------------------------------------------------------------------
// Templates

const GENERATED = `{{- /* Generated by hack/gen-chart.ts from config/default: do not edit, change config/ and run it again. */ -}}\n`;

/** Go template actions start with "{{": text that holds it must print it literally. */
function escapeTemplate(text: string): string {
  return text.replaceAll("{{", '{{ "{{" }}');
}

function template(source: JsonObject, parsed: Parsed): string {
  const kind = stringAt(source, "kind");
  const isCrd = kind === "CustomResourceDefinition";
  let obj: JsonObject = structuredClone(source);
  /** placeholder -> the template lines replacing `<prefix><key>: <placeholder>`, given the prefix
   * (indentation, and "- " when the key opens a list item) and the key's column. */
  const blocks = new Map<string, (prefix: string, column: number) => string>();
  let createdAnnotations = false;
  if (isCrd) {
    const metadata = objectAt(obj, "metadata");
    if (metadata === undefined) throw new ChartError("a CRD without metadata");
    const annotations = metadata["annotations"];
    createdAnnotations = !isJsonObject(annotations);
    metadata["annotations"] = {
      ...(isJsonObject(annotations) ? annotations : {}),
      [P.keep]: "keep",
    };
  } else {
    const replaced = replaceStrings(obj, parsed);
    if (!isJsonObject(replaced)) throw new ChartError("an object became something else");
    obj = replaced;
    workloadPlaceholders(obj, parsed, blocks);
  }
  const perNamespace = perNamespaceFlag(source, parsed);
  if (perNamespace !== undefined) {
    const metadata = objectAt(obj, "metadata");
    if (metadata === undefined) throw new ChartError("a namespaced object without metadata");
    metadata["namespace"] = P.rangeNamespace;
  }
  const serialised = escapeTemplate(
    stringify(obj, { lineWidth: 0, aliasDuplicateObjects: false }),
  ).split("\n");
  const lines: string[] = [];
  for (const line of serialised) {
    const keep = new RegExp(`^( *)${P.keep}: keep$`).exec(line);
    if (keep !== null) {
      const indent = keep[1] ?? "";
      if (createdAnnotations) {
        const parent = lines.pop() ?? "";
        const parentIndent = /^ */.exec(parent)?.[0] ?? "";
        lines.push(
          `${parentIndent}{{- if .Values.crds.keep }}`,
          parent,
          `${indent}helm.sh/resource-policy: keep`,
          `${parentIndent}{{- end }}`,
        );
      } else {
        lines.push(
          `${indent}{{- if .Values.crds.keep }}`,
          `${indent}helm.sh/resource-policy: keep`,
          `${indent}{{- end }}`,
        );
      }
      continue;
    }
    const block = /^( *(?:- )?)([a-zA-Z]+): (ZZIP(?:ARGS|RESOURCES)X+ZZ)$/.exec(line);
    if (block !== null) {
      const [, prefix = "", key = "", placeholder = ""] = block;
      const render = blocks.get(placeholder);
      if (render === undefined) throw new ChartError(`no block for ${line}`);
      lines.push(`${prefix}${key}:`, render(prefix, prefix.length));
      continue;
    }
    lines.push(line);
  }
  let text = lines.join("\n");
  // Inside a range (perNamespace) "." is the item: the root is "$", which means the root anywhere.
  const root = perNamespace === undefined ? "." : "$";
  text = text.replaceAll(P.namespace, `{{ ${root === "." ? "" : root}.Values.namespace.name }}`);
  text = text.replaceAll(P.image, `{{ include "${HELPER}.image" ${root} | toJson }}`);
  text = text.replaceAll(P.rangeNamespace, "{{ $ns }}");
  const left = ANY_PLACEHOLDER.exec(text);
  if (left !== null) throw new ChartError(`placeholder ${left[0]} left in a ${kind ?? ""}`);
  if (isCrd) return `${GENERATED}{{- if .Values.crds.install }}\n${text}{{- end }}\n`;
  if (kind === "Namespace" && stringAt(source, "metadata", "name") === parsed.namespace) {
    return `${GENERATED}{{- if .Values.namespace.create }}\n${text}{{- end }}\n`;
  }
  if (perNamespace !== undefined) {
    const { workload, flag } = perNamespace;
    const list = `.Values.${workload.command}.flags.${flag.key}`;
    const fallback = `(list ${(Array.isArray(flag.default) ? flag.default : []).map((n) => JSON.stringify(n)).join(" ")})`;
    return (
      `${GENERATED}{{- /* One per item of ${list}: ${PER_NAMESPACE_FLAGS.get(flag.doc.name) ?? ""}. */ -}}\n` +
      `{{- range $ns := (${list} | default ${fallback}) }}\n---\n${text}{{- end }}\n`
    );
  }
  return `${GENERATED}${text}`;
}

/** The workload flag of PER_NAMESPACE_FLAGS whose config/ value holds the object's namespace. */
function perNamespaceFlag(
  obj: JsonObject,
  parsed: Parsed,
): { readonly workload: Workload; readonly flag: ValueFlag } | undefined {
  const ns = stringAt(obj, "metadata", "namespace");
  if (ns === undefined || ns === parsed.namespace) return undefined;
  for (const workload of parsed.workloads) {
    for (const flag of workload.flags) {
      if (
        PER_NAMESPACE_FLAGS.has(flag.doc.name) &&
        Array.isArray(flag.default) &&
        flag.default.includes(ns)
      ) {
        return { workload, flag };
      }
    }
  }
  return undefined;
}

/** Every string naming the namespace as a whole word, or equal to the image, gets a placeholder. */
function replaceStrings(value: Json, parsed: Parsed): Json {
  if (typeof value === "string") {
    if (value === parsed.imageRef) return P.image;
    return value.replace(namespaceWord(parsed.namespace, "g"), P.namespace);
  }
  if (Array.isArray(value)) return value.map((v) => replaceStrings(v, parsed));
  if (isJsonObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      if (namespaceWord(parsed.namespace, "").test(k)) {
        throw new ChartError(`a key names the namespace (${k}): not supported`);
      }
      out[k] = replaceStrings(v, parsed);
    }
    return out;
  }
  return value;
}

/** The namespace as a whole word: not inside a longer DNS label. */
function namespaceWord(namespace: string, flags: string): RegExp {
  return new RegExp(`(?<![a-z0-9-])${namespace}(?![a-z0-9-])`, flags);
}

function workloadPlaceholders(
  obj: JsonObject,
  parsed: Parsed,
  blocks: Map<string, (prefix: string, column: number) => string>,
): void {
  const containers = objectAt(obj, "spec", "template", "spec")?.["containers"];
  if (!Array.isArray(containers)) return;
  for (const [i, c] of containers.entries()) {
    if (!isJsonObject(c)) continue;
    const args = c["args"];
    const command = Array.isArray(args) ? args[0] : undefined;
    const workload = parsed.workloads.find((w) => w.command === command);
    if (workload === undefined || !Array.isArray(args)) continue;
    const values = `.Values.${workload.command}`;
    blocks.set(P.args(i), (_, column) => {
      const item = " ".repeat(column + 2);
      const flagLine = (f: ValueFlag): string =>
        `${item}{{- include "${HELPER}.flag" (list ${JSON.stringify(f.doc.name)} ${values}.flags.${f.key}) | nindent ${item.length} }}`;
      const out: string[] = [];
      const done = new Set<string>();
      for (const a of args) {
        const name = typeof a === "string" ? /^--([a-z0-9-]+)=/.exec(a)?.[1] : undefined;
        const flag = workload.flags.find((f) => f.doc.name === name);
        if (flag === undefined) {
          out.push(`${item}- ${escapeTemplate(JSON.stringify(a))}`);
        } else if (!done.has(flag.doc.name)) {
          done.add(flag.doc.name);
          out.push(flagLine(flag));
        }
      }
      for (const f of workload.flags) if (!done.has(f.doc.name)) out.push(flagLine(f));
      return out.join("\n");
    });
    c["args"] = P.args(i);
    blocks.set(P.resources(i), (_, column) => {
      const item = " ".repeat(column + 2);
      return `${item}{{- toYaml ${values}.resources | nindent ${item.length} }}`;
    });
    c["resources"] = P.resources(i);
  }
}

const HELPERS = `{{- /* Generated by hack/gen-chart.ts: do not edit. */ -}}

{{- /* The operator's image: repository@digest when a digest is set, else repository:tag. */ -}}
{{- define "${HELPER}.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- /* (list NAME VALUE): the container arguments for one flag, one "--NAME=item" line per item.
Nothing for null or an empty list (the command's own default applies); whole numbers without an
exponent (values.yaml numbers arrive as float64). */ -}}
{{- define "${HELPER}.flag" -}}
{{- $name := index . 0 -}}
{{- $value := index . 1 -}}
{{- $items := list -}}
{{- if kindIs "slice" $value -}}
{{- $items = $value -}}
{{- else if not (kindIs "invalid" $value) -}}
{{- $items = list $value -}}
{{- end -}}
{{- $lines := list -}}
{{- range $items -}}
{{- $text := toString . -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- $text = printf "%d" (int64 .) -}}
{{- end -}}
{{- $lines = append $lines (printf "- %s" (printf "--%s=%s" $name $text | toJson)) -}}
{{- end -}}
{{- join "\\n" $lines -}}
{{- end -}}
`;

const NOTES = `imagepolicy-operator is installed in namespace {{ .Values.namespace.name }}; nothing is enforced yet.

CRI-O fails every pull on a node whose signature_policy names a missing file. So, node by node:
1. wait until the node's ImagePolicyNodeStatus shows cluster.json applied:
   kubectl get imagepolicynodestatuses
2. only then install the CRI-O drop-in (config/crio/10-imagepolicy.conf) and restart CRI-O.
The whole procedure, and the reverse order for uninstalling, is in docs/install.md.
`;

// ---------------------------------------------------------------------------------------------
// Chart.yaml, values.yaml, values.schema.json

function chartYaml(input: ChartInput, parsed: Parsed): string {
  return stringify({
    apiVersion: "v2",
    name: CHART_NAME,
    description: input.description,
    type: "application",
    version: input.version,
    appVersion: parsed.image.tag === "" ? input.version : parsed.image.tag,
    // ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) is GA since 1.30.
    kubeVersion: ">=1.30.0-0",
  });
}

function comment(text: string, indent: string): string {
  return `${text
    .split("\n")
    .map((l) => `${indent}#${l === "" ? "" : ` ${l}`}`)
    .join("\n")}\n`;
}

function scalar(value: Json | readonly string[]): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

function valuesYaml(parsed: Parsed): string {
  const { image, namespace } = parsed;
  let out = comment(
    [
      "Values of the imagepolicy-operator chart, generated by hack/gen-chart.ts from config/default",
      "and the commands' usage texts: do not edit; change config/ or the flags and run it again.",
      "With these defaults `helm template` renders what `kubectl kustomize config/default` renders,",
      "object for object, plus the CRDs' helm.sh/resource-policy annotation (crds.keep).",
      "Read docs/install.md before installing: CRI-O must be pointed at the files only afterwards.",
    ].join("\n"),
    "",
  );
  out += "\n";
  out += comment(
    "The one image that runs the controller, the agent and the CLI. The controller receives the\n" +
      "final reference as --operator-image and refuses any policy set that would reject it.",
    "",
  );
  out += "image:\n";
  out += `  repository: ${scalar(image.repository)}\n`;
  out += comment("Used when digest is empty.", "  ");
  out += `  tag: ${scalar(image.tag)}\n`;
  out += comment("sha256:<64 hex digits>. When set, the image is repository@digest.", "  ");
  out += `  digest: ${scalar(image.digest)}\n\n`;
  out += "namespace:\n";
  out += comment(
    "The operator's namespace: the layer ConfigMaps, the controller's Lease and both workloads.\n" +
      "Everything that names it follows this value: the namespaced objects, the RoleBindings'\n" +
      "subjects, the admission policy's ServiceAccount user name.",
    "  ",
  );
  out += `  name: ${scalar(namespace)}\n`;
  out += comment(
    "Create the Namespace, labelled pod-security.kubernetes.io/enforce=privileged (the agent's\n" +
      "hostPath mounts). `helm install` keeps its release record in the namespace given with\n" +
      "--namespace, which must then be another one (e.g. default); or create and label the namespace\n" +
      "yourself, set this to false and install the release into it.",
    "  ",
  );
  out += "  create: true\n\n";
  out += "crds:\n";
  out += comment("Install the CustomResourceDefinitions (upgraded with the chart).", "  ");
  out += "  install: true\n";
  out += comment(
    "Annotate them helm.sh/resource-policy: keep, so `helm uninstall` leaves them, and every\n" +
      "ClusterImagePolicy, ImagePolicy and ImagePolicyNodeStatus, in place.",
    "  ",
  );
  out += "  keep: true\n";
  for (const w of parsed.workloads) {
    out += `\n${comment(`The ${w.container} container of ${w.kind} ${w.name} (imagepolicy ${w.command}).`, "")}`;
    out += `${w.command}:\n`;
    out += comment("Its requests and limits.", "  ");
    out += `  resources:\n${indentLines(stringify(w.resources).trimEnd(), "    ")}\n`;
    out += comment(
      `Flags of \`imagepolicy ${w.command}\`. null, or an empty list, passes nothing: the command's\n` +
        "own default applies. A repeatable flag takes a list, one flag per item.",
      "  ",
    );
    out += "  flags:\n";
    for (const f of w.flags) {
      const what = `--${f.doc.name}${f.doc.metavar === "" ? "" : ` ${f.doc.metavar}`}: ${f.doc.description}`;
      out += comment(f.comment === undefined ? what : `${what}\n${f.comment}`, "    ");
      const value = f.default;
      out += `    ${f.key}:${Array.isArray(value) && value.length > 0 ? `\n${indentLines(scalar(value), "      ")}` : ` ${scalar(value)}`}\n`;
    }
  }
  return out;
}

function indentLines(text: string, indent: string): string {
  return text
    .split("\n")
    .map((l) => `${indent}${l}`)
    .join("\n");
}

const DNS_LABEL = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
const REPOSITORY =
  "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$";
const TAG = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
const DIGEST = "^(sha256:[a-f0-9]{64})?$";

function valuesSchema(parsed: Parsed): JsonObject {
  const object = (properties: JsonObject, required = Object.keys(properties)): JsonObject => ({
    type: "object",
    additionalProperties: false,
    required,
    properties,
  });
  const quantities: JsonObject = {
    type: "object",
    additionalProperties: { type: ["string", "number"] },
  };
  const workloads: JsonObject = {};
  for (const w of parsed.workloads) {
    const flags: JsonObject = {};
    for (const f of w.flags) {
      const description = `--${f.doc.name}: ${f.doc.description}`;
      flags[f.key] = f.doc.repeatable
        ? { description, type: ["array", "null"], items: { type: ["string", "number"] } }
        : { description, type: ["string", "number", "null"] };
    }
    workloads[w.command] = object({
      resources: {
        type: "object",
        additionalProperties: false,
        properties: { requests: quantities, limits: quantities, claims: { type: "array" } },
      },
      // Not required: Helm deletes a key whose value is null (the flag is then not passed).
      flags: object(flags, []),
    });
  }
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    ...object({
      image: object({
        repository: { type: "string", pattern: REPOSITORY },
        tag: { type: "string", pattern: TAG },
        digest: { type: "string", pattern: DIGEST },
      }),
      namespace: object({
        name: { type: "string", pattern: DNS_LABEL },
        create: { type: "boolean" },
      }),
      crds: object({ install: { type: "boolean" }, keep: { type: "boolean" } }),
      ...workloads,
    }),
  };
}

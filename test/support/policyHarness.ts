// Applying policies with kubectl and waiting until a node has written them: what every end-to-end
// suite needs (test/e2e with a CRI-O of its own, test/node with a real kubelet, and
// hack/kind-e2e.ts on a kind cluster). Everything goes through a kubectl function, so the same
// code drives a local control plane and a kind cluster.
//
// "Converged" means: the controller has processed every policy that was applied (its current
// generation is in its layer ConfigMap, or it carries a refusal condition), no deleted policy is
// left in a layer, and the node's agent reports exactly the published revisions, i.e. the files
// on that node hold them (docs/internals.md).
import { parseAllDocuments, stringify } from "yaml";
import { z } from "zod";
import { parseLayer, type Layer } from "../../src/compiler/layer.ts";
import { waitFor as waitUntil } from "./waitFor.ts";

export class PolicyHarnessError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export const OPERATOR_NAMESPACE = "imagepolicy-system";

// ---------------------------------------------------------------------------------------------
// Policy objects, as a user writes them (YAML for kubectl).

export type RootOfTrust =
  | { readonly policyType: "Reject" | "InsecureAcceptAnything" }
  | { readonly policyType: "PublicKey"; readonly publicKey: { readonly keyData: string } };

export type SignedIdentity =
  | { readonly matchPolicy: "MatchRepoDigestOrExact" | "MatchRepository" }
  | {
      readonly matchPolicy: "RemapIdentity";
      readonly remapIdentity: { readonly prefix: string; readonly signedPrefix: string };
    };

export interface PolicyRef {
  readonly kind: "ClusterImagePolicy" | "ImagePolicy";
  readonly name: string;
  readonly namespace?: string;
}

export const cip = (name: string): PolicyRef => ({ kind: "ClusterImagePolicy", name });
export const ip = (namespace: string, name: string): PolicyRef => ({
  kind: "ImagePolicy",
  name,
  namespace,
});
export const reject: RootOfTrust = { policyType: "Reject" };
export const acceptAnything: RootOfTrust = { policyType: "InsecureAcceptAnything" };
export const publicKey = (keyData: string): RootOfTrust => ({
  policyType: "PublicKey",
  publicKey: { keyData },
});

export function policy(
  ref: PolicyRef,
  scopes: readonly string[],
  rootOfTrust: RootOfTrust,
  signedIdentity?: SignedIdentity,
): string {
  return stringify({
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: ref.kind,
    metadata: {
      name: ref.name,
      ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    },
    spec: {
      scopes,
      policy: { rootOfTrust, ...(signedIdentity === undefined ? {} : { signedIdentity }) },
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster back.

const conditionSchema = z.looseObject({
  type: z.string(),
  status: z.string(),
  reason: z.string().optional(),
  message: z.string().optional(),
});
export const policyObjectSchema = z.looseObject({
  kind: z.string(),
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    generation: z.number(),
  }),
  status: z
    .looseObject({
      observedGeneration: z.number().optional(),
      conditions: z.array(conditionSchema).optional(),
      rollout: z
        .looseObject({
          display: z.string().optional(),
          nodesApplied: z.number().optional(),
          nodesEnforcing: z.number().optional(),
          nodesTotal: z.number().optional(),
        })
        .optional(),
    })
    .optional(),
});
export type PolicyObject = z.infer<typeof policyObjectSchema>;
export const nodeStatusSchema = z.looseObject({
  spec: z.looseObject({ nodeName: z.string() }).optional(),
  status: z
    .looseObject({
      enforcing: z.boolean().optional(),
      enforcingReason: z.string().optional(),
      appliedRevisions: z.record(z.string(), z.string()).optional(),
      lastError: z.string().optional(),
      runtime: z
        .looseObject({ name: z.string().optional(), version: z.string().optional() })
        .optional(),
    })
    .optional(),
});
export type NodeStatus = z.infer<typeof nodeStatusSchema>;
const layerConfigMapSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  data: z.looseObject({ "layer.json": z.string() }).optional(),
});
type LayerConfigMap = z.infer<typeof layerConfigMapSchema>;
const listOf = <T extends z.ZodType>(item: T) => z.looseObject({ items: z.array(item) });
const manifestDocSchema = z.looseObject({
  kind: z.enum(["ClusterImagePolicy", "ImagePolicy"]),
  metadata: z.looseObject({ name: z.string(), namespace: z.string().optional() }),
});

const revisionOf = (cm: LayerConfigMap): string =>
  cm.metadata.annotations?.["imagepolicy.dev/revision"] ?? "";

/** The file -> revision map an agent reports once it has applied every published layer. */
export function expectedRevisions(
  cms: readonly LayerConfigMap[],
): Record<string, string> | undefined {
  const cluster = cms.find((c) => c.metadata.name === "imagepolicy-layer-cluster");
  if (cluster === undefined) return undefined;
  const want: Record<string, string> = { "cluster.json": revisionOf(cluster) };
  for (const cm of cms) {
    const ns = cm.metadata.labels?.["imagepolicy.dev/namespace"];
    // Reported short: the namespace revision, on cluster.json's (docs/internals.md).
    if (ns !== undefined) want[`${ns}.json`] = revisionOf(cm);
  }
  return want;
}

export function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** The policy objects a multi-document YAML holds. */
export function refsOf(yaml: string): PolicyRef[] {
  return parseAllDocuments(yaml).map((doc) => {
    const m = manifestDocSchema.parse(doc.toJS());
    return {
      kind: m.kind,
      name: m.metadata.name,
      ...(m.metadata.namespace === undefined ? {} : { namespace: m.metadata.namespace }),
    };
  });
}

/** Runs kubectl against the cluster; resolves with stdout, rejects on a non-zero exit. */
export type Kubectl = (args: readonly string[], stdin?: string) => Promise<string>;

export interface PolicyHarnessOptions {
  readonly kubectl: Kubectl;
  /** The node whose agent must have applied a change before it counts as converged. */
  readonly node: string;
  /** Logs and state added to a timeout's message. */
  readonly diagnostics: () => Promise<string>;
  /** Default wait (default 90 s). */
  readonly timeoutMs?: number;
}

export interface PolicyHarness {
  readonly kubectl: Kubectl;
  waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs?: number): Promise<T>;
  nodeStatus(node?: string): Promise<NodeStatus | undefined>;
  policyObject(ref: PolicyRef): Promise<PolicyObject | undefined>;
  /** See the header. */
  converged(present: readonly PolicyRef[], absent: readonly PolicyRef[]): Promise<boolean>;
  /** kubectl apply (server-side), then waits until converged; returns the time it took. */
  applyAndWait(...docs: string[]): Promise<number>;
  /** kubectl delete, then waits until converged; returns the time it took. */
  deleteAndWait(...refs: PolicyRef[]): Promise<number>;
}

export function createPolicyHarness(opts: PolicyHarnessOptions): PolicyHarness {
  const { kubectl } = opts;
  const getJson = async <T>(schema: z.ZodType<T>, args: readonly string[]): Promise<T> =>
    schema.parse(JSON.parse(await kubectl([...args, "-o", "json"])));
  const waitFor = <T>(
    what: string,
    probe: () => Promise<T | undefined>,
    timeoutMs = opts.timeoutMs ?? 90_000,
  ): Promise<T> =>
    waitUntil(what, probe, { timeoutMs, intervalMs: 200, context: opts.diagnostics });

  const layerConfigMaps = async (): Promise<LayerConfigMap[]> =>
    (
      await getJson(listOf(layerConfigMapSchema), [
        "get",
        "configmaps",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/managed-by=imagepolicy-operator",
      ])
    ).items;

  const nodeStatus = async (node = opts.node): Promise<NodeStatus | undefined> => {
    const list = await getJson(listOf(nodeStatusSchema), [
      "get",
      "imagepolicynodestatuses",
      "--field-selector",
      `metadata.name=${node}`,
    ]);
    return list.items[0];
  };

  const policies = async (): Promise<PolicyObject[]> =>
    (await getJson(listOf(policyObjectSchema), ["get", "clusterimagepolicies,imagepolicies", "-A"]))
      .items;
  const find = (all: readonly PolicyObject[], ref: PolicyRef): PolicyObject | undefined =>
    all.find(
      (o) =>
        o.kind === ref.kind &&
        o.metadata.name === ref.name &&
        o.metadata.namespace === ref.namespace,
    );
  const policyObject = async (ref: PolicyRef): Promise<PolicyObject | undefined> =>
    find(await policies(), ref);

  const layerOf = (
    cms: readonly LayerConfigMap[],
    namespace: string | undefined,
  ): Layer | undefined => {
    const name =
      namespace === undefined ? "imagepolicy-layer-cluster" : `imagepolicy-layer-ns-${namespace}`;
    const data = cms.find((c) => c.metadata.name === name)?.data?.["layer.json"];
    return data === undefined ? undefined : parseLayer(data);
  };

  const converged = async (
    present: readonly PolicyRef[],
    absent: readonly PolicyRef[],
  ): Promise<boolean> => {
    const [cms, all] = await Promise.all([layerConfigMaps(), policies()]);
    for (const ref of present) {
      const o = find(all, ref);
      if (o === undefined) return false;
      const generation = o.metadata.generation;
      if (o.status?.observedGeneration !== generation) return false;
      const compiled = o.status.conditions?.find((c) => c.type === "Compiled")?.status;
      if (compiled === "True") {
        const entry = layerOf(cms, ref.namespace)?.policies.find((p) => p.name === ref.name);
        if (entry?.generation !== generation) return false;
      }
    }
    for (const ref of absent) {
      if (layerOf(cms, ref.namespace)?.policies.some((p) => p.name === ref.name) === true) {
        return false;
      }
    }
    const want = expectedRevisions(cms);
    const got = (await nodeStatus())?.status?.appliedRevisions;
    return want !== undefined && got !== undefined && sameRecord(want, got);
  };

  const applyAndWait = async (...docs: string[]): Promise<number> => {
    const yaml = docs.join("---\n");
    const start = Date.now();
    await kubectl(["apply", "--server-side", "--field-manager=e2e", "-f", "-"], yaml);
    const refs = refsOf(yaml);
    await waitFor(`the node to apply ${refs.map((r) => r.name).join(", ")}`, async () =>
      (await converged(refs, [])) ? true : undefined,
    );
    return Date.now() - start;
  };

  const deleteAndWait = async (...refs: PolicyRef[]): Promise<number> => {
    const start = Date.now();
    for (const ref of refs) {
      await kubectl([
        "delete",
        ref.kind === "ClusterImagePolicy" ? "clusterimagepolicy" : "imagepolicy",
        ref.name,
        ...(ref.namespace === undefined ? [] : ["-n", ref.namespace]),
      ]);
    }
    await waitFor(`the node to drop ${refs.map((r) => r.name).join(", ")}`, async () =>
      (await converged([], refs)) ? true : undefined,
    );
    return Date.now() - start;
  };

  return {
    kubectl,
    waitFor,
    nodeStatus,
    policyObject,
    converged,
    applyAndWait,
    deleteAndWait,
  };
}

// ---------------------------------------------------------------------------------------------
// CRI-O's answers

/** The gRPC `desc = ...` of crictl's last error line: the text CRI-O returned. */
export function crioReason(output: string): string {
  // crictl prints it inside a quoted log field: `\"` is an escaped quote.
  const all = [...output.matchAll(/desc = ((?:[^"\\\n]|\\.)*)/g)];
  const text = all.at(-1)?.[1];
  return text === undefined ? output.trim() : text.replace(/\\(.)/g, "$1").trim();
}

/** A parse error of a policy file CRI-O read (containers/image: "invalid policy in ..."). */
export const POLICY_PARSE_ERROR =
  /invalid policy|InvalidPolicyFormat|unexpected end of JSON|invalid character .* looking for/i;

export const SIGNATURE_REQUIRED = "A signature was required, but no signature exists";

// The large fixture as a world the benchmarks edit (bench/agent.ts, bench/propagation.ts,
// bench/faults.ts): the policy objects, the layers the controller publishes for them (its own
// plan() and layerConfigMap(), so the ConfigMaps are byte for byte the controller's), and
// deterministic edits that change one namespace's layer or the cluster layer.

import type { AnyImagePolicy, ClusterImagePolicy, ImagePolicy } from "../src/api/types.ts";
import { compileAll } from "../src/compiler/compile.ts";
import type { CrioVersion } from "../src/compiler/crioVersion.ts";
import { secretLookupFrom } from "../src/compiler/validate.ts";
import { layerConfigMap } from "../src/controller/layerConfigMaps.ts";
import { plan, type Plan } from "../src/controller/plan.ts";
import type { KubeObject } from "../src/kube/index.ts";
import { layerConfigMapName } from "../src/layerConfigMap.ts";
import { BenchError, generateFixture, Rng } from "./fixture.ts";

export const OPERATOR_NAMESPACE = "imagepolicy-system";

/** A layer ConfigMap to apply, or the name of one to delete. */
export type LayerChange =
  | { readonly kind: "apply"; readonly configMap: KubeObject; readonly name: string }
  | { readonly kind: "delete"; readonly name: string };

export interface Published {
  /** ConfigMap name -> layer.json text. */
  readonly texts: ReadonlyMap<string, string>;
  /** "cluster.json" and "<ns>.json" -> the revision string a node reports once current. */
  readonly revisions: Readonly<Record<string, string>>;
  readonly plan: Plan;
}

/** What the controller publishes for `objects`: its plan on top of what is published now. */
export function publish(
  objects: readonly AnyImagePolicy[],
  target: CrioVersion,
  previous: Plan | undefined,
): Published {
  const p = plan({
    objects,
    secrets: secretLookupFrom([]),
    target,
    publishedCluster: previous?.cluster.layer,
    publishedNamespaces: new Map(
      [...(previous?.namespaces.entries() ?? [])].map(([ns, l]) => [ns, l.layer] as const),
    ),
    operatorNamespace: OPERATOR_NAMESPACE,
    protectedImages: [],
    // The controller's defaults (--namespace-max-policies, -scopes, -bytes).
    quota: { maxPolicies: 256, maxScopes: 1024, maxBytes: 262_144 },
    namespaceLookasidePrefixes: [],
  });
  const refused = [...p.outcomes.values()].filter((o) => o.refusals.length > 0);
  if (refused.length > 0) {
    throw new BenchError(
      `the controller's plan refuses ${refused.length} objects, e.g. ${JSON.stringify(refused[0])}`,
    );
  }
  const texts = new Map<string, string>([[layerConfigMapName(undefined), p.cluster.text]]);
  const revisions: Record<string, string> = { "cluster.json": p.cluster.revision };
  for (const [ns, l] of p.namespaces) {
    texts.set(layerConfigMapName(ns), l.text);
    revisions[`${ns}.json`] = l.revision; // as reported: short, on cluster.json's revision
  }
  return { texts, revisions, plan: p };
}

/** The ConfigMap writes that move the API from `before` to `after`. */
export function layerChanges(before: Published | undefined, after: Published): LayerChange[] {
  const out: LayerChange[] = [];
  const layers = [
    [undefined, after.plan.cluster] as const,
    ...[...after.plan.namespaces].map(([ns, l]) => [ns, l] as const),
  ];
  for (const [ns, l] of layers) {
    const name = layerConfigMapName(ns);
    if (before?.texts.get(name) === l.text) continue;
    out.push({
      kind: "apply",
      name,
      configMap: layerConfigMap(OPERATOR_NAMESPACE, ns, l.text, l.revision),
    });
  }
  for (const name of before?.texts.keys() ?? []) {
    if (!after.texts.has(name)) out.push({ kind: "delete", name });
  }
  return out;
}

/** An image the cluster layer of `p` accepts without a signature (a repository scope of an
 * accepting policy): what the controller's --pause-image protects in the benchmarks, so that its
 * lock-out check (docs/design.md "No lock-out") refuses nothing of the fixture. */
export function acceptedImage(p: Published): string {
  for (const policy of p.plan.cluster.layer.policies) {
    if (policy.requirement.kind !== "accept") continue;
    const scope = policy.scopes.find(
      (s) => s.includes("/") && !s.includes(":") && !s.includes("@"),
    );
    if (scope !== undefined) return `${scope}/bench-pause:1`;
  }
  throw new BenchError("the fixture accepts no repository scope");
}

/** The files a node must hold for `objects`: the offline compiler's output. */
export function expectedFiles(
  objects: readonly AnyImagePolicy[],
  target: CrioVersion,
): ReadonlyMap<string, string> {
  const r = compileAll(objects, secretLookupFrom([]), target);
  if (r.files === undefined) {
    throw new BenchError(`the fixture does not compile: ${JSON.stringify(r.diagnostics[0])}`);
  }
  const out = new Map<string, string>([["cluster.json", r.files.clusterJson]]);
  for (const [ns, text] of r.files.namespaceJson) out.set(`${ns}.json`, text);
  return out;
}

/** The fixture's objects and a stream of deterministic edits of them. */
export class World {
  objects: AnyImagePolicy[];
  #last: AnyImagePolicy | undefined;
  readonly #rng: Rng;
  readonly #keys: readonly string[];

  /** With `namespaces`, only the ImagePolicies of that many namespaces are kept (the cluster
   * layer stays whole): a smaller world for tests. */
  constructor(seed: number, options: { readonly namespaces?: number } = {}) {
    const f = generateFixture(seed);
    const keep = new Set(
      [
        ...new Set(
          f.objects.flatMap((o) => (o.kind === "ImagePolicy" ? [o.metadata.namespace] : [])),
        ),
      ]
        .sort()
        .slice(0, options.namespaces ?? Infinity),
    );
    this.objects = f.objects.filter(
      (o) => o.kind === "ClusterImagePolicy" || keep.has(o.metadata.namespace),
    );
    this.#rng = new Rng(seed ^ 0x0bad5eed);
    this.#keys = f.keyData;
  }

  /** Another key for one ImagePolicy of `namespace` (its layer alone changes). Returns the
   * namespace. */
  editNamespace(namespace?: string): string {
    const ips = this.objects.filter(
      (o): o is ImagePolicy =>
        o.kind === "ImagePolicy" &&
        (namespace === undefined || o.metadata.namespace === namespace) &&
        o.spec.policy.rootOfTrust.policyType === "PublicKey",
    );
    if (ips.length === 0) throw new BenchError(`no key policy in ${namespace ?? "any namespace"}`);
    const target = this.#rng.pick(ips);
    this.#replace(target, this.#withOtherKey(target));
    return target.metadata.namespace;
  }

  /** Another key for one ClusterImagePolicy (the cluster layer changes). Returns its name. */
  editCluster(): string {
    const cips = this.objects.filter(
      (o): o is ClusterImagePolicy =>
        o.kind === "ClusterImagePolicy" && o.spec.policy.rootOfTrust.policyType === "PublicKey",
    );
    const target = this.#rng.pick(cips);
    this.#replace(target, this.#withOtherKey(target));
    return target.metadata.name;
  }

  #withOtherKey<T extends AnyImagePolicy>(o: T): T {
    const trust = o.spec.policy.rootOfTrust;
    if (trust.policyType !== "PublicKey" || !("keyData" in trust.publicKey)) {
      throw new BenchError(`${o.metadata.name} has no inline public key`);
    }
    const current = trust.publicKey.keyData;
    const others = this.#keys.filter((k) => k !== current);
    const keyData = this.#rng.pick(others);
    return {
      ...o,
      metadata: { ...o.metadata, generation: (o.metadata.generation ?? 1) + 1 },
      spec: {
        ...o.spec,
        policy: {
          ...o.spec.policy,
          rootOfTrust: { ...trust, publicKey: { ...trust.publicKey, keyData } },
        },
      },
    };
  }

  /** The object the last edit made. */
  lastEdited(): AnyImagePolicy {
    if (this.#last === undefined) throw new BenchError("no edit yet");
    return this.#last;
  }

  #replace(old: AnyImagePolicy, next: AnyImagePolicy): void {
    const i = this.objects.indexOf(old);
    if (i < 0) throw new BenchError("object not in the world");
    this.objects[i] = next;
    this.#last = next;
  }
}

// A refusal and what was in force, in; which layer, scope and policies refused the image and
// what would have been accepted, out (pure). Key material appears as fingerprints only
// (src/compiler/fingerprint.ts).
//
// Which layer decided: CRI-O reads one file per pull, and for a namespace with ImagePolicies that
// file is the AND of the cluster layer's decision and the namespace layer's (docs/design.md rule
// 3). CRI-O's reason does not say which requirement failed, so the layer is named only when the
// requirements say it: the one that rejects, or the only one that requires anything, or the
// cluster layer when the namespace adds no requirement of its own; otherwise "Both", with both
// layers' requirements listed. "None" when the published files accept the image: the node
// decided on another revision, or the policy changed since.

import type { ObjectRef } from "../api/types.ts";
import { supports, formatCrioVersion, type CrioVersion } from "../compiler/crioVersion.ts";
import {
  describeAcceptance,
  explain,
  type Acceptance,
  type LayerDecision,
} from "../compiler/explain.ts";
import { canonicalJson } from "../canonicalJson.ts";
import {
  CLUSTER_FILE,
  appliedNamespaceRevision,
  namespaceFileKey,
  namespaceFileRevision,
} from "../nodeStatus.ts";
import type { PublishedLayer } from "./layers.ts";
import type { Refusal } from "./parse.ts";

/** What the node's agent reports (ImagePolicyNodeStatus), as far as an explanation needs it. */
export interface NodeReport {
  readonly name: string;
  readonly crioVersion?: CrioVersion;
  readonly enforcing?: boolean;
  readonly appliedRevisions: Readonly<Record<string, string>>;
}

export type DecidingLayer = "Cluster" | "Namespace" | "Both" | "None";

export interface PolicyView {
  readonly kind: "ClusterImagePolicy" | "ImagePolicy";
  readonly name: string;
  readonly namespace?: string;
  readonly generation?: number;
}

export interface LayerView {
  /** "*" for the scope of every image. */
  readonly scope: string;
  readonly policies: readonly PolicyView[];
  readonly accepts: readonly string[];
}

export interface RefusalExplanation {
  readonly decidingLayer: DecidingLayer;
  readonly file: string;
  /** The deciding scope of the file ("*" for every image, "" when none matches). */
  readonly fileScope: string;
  readonly accepts: readonly string[];
  readonly cluster?: LayerView;
  readonly namespace?: LayerView;
  readonly revisions: { readonly cluster: string; readonly namespace?: string };
  readonly nodeRevisions?: { readonly cluster?: string; readonly namespace?: string };
  readonly hint?: string;
  readonly notes: readonly string[];
  /** One paragraph for the Event on the pod. */
  readonly summary: string;
}

export interface RefusalInput {
  readonly refusal: Refusal;
  readonly cluster: PublishedLayer;
  /** The published layer of the pod's namespace, if it has one. */
  readonly namespace: PublishedLayer | undefined;
  readonly node: NodeReport | undefined;
  /** Where the full record is (`kubectl get imagepullrefusal <name>`), for the summary. */
  readonly recordName: string;
}

/** Lists longer than this are cut (the record's schema bounds them at 16). */
export const MAX_LISTED = 16;

const scopeText = (s: string): string => (s === "" ? "*" : s);

function policyView(ref: ObjectRef, layer: PublishedLayer): PolicyView {
  const generation = layer.generations.get(ref.name);
  return {
    kind: ref.kind === "ImagePolicy" ? "ImagePolicy" : "ClusterImagePolicy",
    name: ref.name,
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    ...(generation === undefined ? {} : { generation }),
  };
}

function layerView(d: LayerDecision, layer: PublishedLayer, image: string): LayerView {
  return {
    scope: scopeText(d.scope),
    policies: d.sources.slice(0, MAX_LISTED).map((r) => policyView(r, layer)),
    accepts: d.accepts.slice(0, MAX_LISTED).map((a) => describeAcceptance(a, image)),
  };
}

const imposes = (accepts: readonly Acceptance[] | undefined): boolean =>
  accepts?.some((a) => a.kind !== "anything") === true;
const rejects = (accepts: readonly Acceptance[] | undefined): boolean =>
  accepts?.some((a) => a.kind === "nothing") === true;

function decidingLayer(
  file: readonly Acceptance[],
  cluster: readonly Acceptance[] | undefined,
  namespace: readonly Acceptance[] | undefined,
): DecidingLayer {
  if (!imposes(file)) return "None";
  if (rejects(cluster)) return "Cluster";
  if (rejects(namespace)) return "Namespace";
  const c = imposes(cluster);
  const n = imposes(namespace);
  if (c && !n) return "Cluster";
  if (n && !c) return "Namespace";
  if (!c && !n) return "None";
  const clusterKeys = new Set((cluster ?? []).map((a) => canonicalJson(a)));
  return (namespace ?? []).every((a) => a.kind === "anything" || clusterKeys.has(canonicalJson(a)))
    ? "Cluster"
    : "Both";
}

function hintFor(r: Refusal, accepts: readonly Acceptance[]): string | undefined {
  const sigstore = accepts.some(
    (a) => a.kind === "sigstoreKey" || a.kind === "fulcio" || a.kind === "pki",
  );
  switch (r.category) {
    case "NoSignature":
      return sigstore
        ? "No signature of the image was found: sign it (cosign sign, or skopeo copy --sign-by-sigstore-private-key) in the registry the node pulls from; sigstore signatures are found only for scopes whose requirements need them (the agent writes use-sigstore-attachments for those)."
        : "No signature of the image was found at the lookaside the policy names: publish its GPG signature there.";
    case "InvalidSignature":
    case "NoSignatureAccepted":
      return "Signatures exist, but none verifies with the trusted keys or certificates: compare the fingerprints above with the key that signed the image.";
    case "IdentityNotAccepted":
      return "A signature verifies but names another image: with the default identity (matchRepoDigestOrExact) a pull by tag needs a signature naming that tag; cosign signs the repository, so pull by digest or use matchPolicy MatchRepository.";
    case "RejectedByPolicy":
      return "The deciding scope rejects every image: an exception needs a more specific scope whose policy accepts it (in the layer that rejects).";
    case "Other":
      return undefined;
    default: {
      const _exhaustive: never = r.category;
      return _exhaustive;
    }
  }
}

const LAYER_TEXT: Record<DecidingLayer, string> = {
  Cluster: "the cluster layer (ClusterImagePolicies)",
  Namespace: "the namespace layer (ImagePolicies of this namespace)",
  Both: "the cluster and namespace layers together",
  None: "no published policy (the published files accept it now)",
};

function describePolicies(v: LayerView | undefined): string {
  if (v === undefined) return "";
  const names = v.policies.map((p) => `${p.kind}/${p.name}`).join(", ");
  return `scope ${v.scope} of ${names}`;
}

/** What a node's report says about how far the published layers explain its decisions, and
 * whether its CRI-O read the namespace's file; shared with `imagepolicy explain --live`. */
export function nodeNotes(
  ns: string,
  cluster: PublishedLayer,
  namespace: PublishedLayer | undefined,
  node: NodeReport | undefined,
  nodeName: string | undefined,
): { readonly notes: string[]; readonly usesNamespace: boolean } {
  const notes: string[] = [];
  const oldCrio =
    node?.crioVersion !== undefined && !supports(node.crioVersion, "namespaceFiles")
      ? node.crioVersion
      : undefined;
  const readsNamespaceFiles = oldCrio === undefined;
  const nsFile = namespaceFileKey(ns);
  let usesNamespace = namespace !== undefined && readsNamespaceFiles;
  if (namespace !== undefined && oldCrio !== undefined) {
    notes.push(
      `CRI-O ${formatCrioVersion(oldCrio)} on node ${nodeName ?? "?"} reads only cluster.json: per-namespace files need CRI-O 1.27.1 or newer, so this namespace's ImagePolicies do not apply there.`,
    );
  }
  if (node === undefined) {
    notes.push(
      nodeName === undefined
        ? "No node named: this explains the published revision."
        : `Node ${nodeName} has no ImagePolicyNodeStatus: this explains the published revision.`,
    );
    return { notes, usesNamespace };
  }
  const applied = node.appliedRevisions;
  const clusterApplied = applied[CLUSTER_FILE];
  if (clusterApplied !== cluster.revision) {
    notes.push(
      clusterApplied === undefined
        ? `Node ${node.name} reports no cluster.json: it may not run the agent's files yet.`
        : `Node ${node.name} holds cluster.json at revision ${clusterApplied}, not the published ${cluster.revision}: it may have decided on an older policy.`,
    );
  }
  const nsApplied = appliedNamespaceRevision(applied, ns);
  if (namespace !== undefined && readsNamespaceFiles) {
    const want = namespaceFileRevision(cluster.revision, namespace.revision);
    if (nsApplied === undefined) {
      usesNamespace = false;
      notes.push(
        `Node ${node.name} has not written policies/${nsFile} yet: CRI-O read cluster.json, so this namespace's ImagePolicies did not apply.`,
      );
    } else if (nsApplied !== want) {
      notes.push(
        `Node ${node.name} holds policies/${nsFile} at revision ${nsApplied}, not the published ${want}: it may have decided on an older policy.`,
      );
    }
  } else if (namespace === undefined && nsApplied !== undefined) {
    notes.push(
      `Node ${node.name} still holds policies/${nsFile} (revision ${nsApplied}) although this namespace has no ImagePolicy published: CRI-O read that file.`,
    );
  }
  if (node.enforcing === false) {
    notes.push(
      `Node ${node.name} reports enforcing=false: its CRI-O does not read these files, so another policy refused the image.`,
    );
  }
  return { notes, usesNamespace };
}

export function explainRefusal(input: RefusalInput): RefusalExplanation {
  const { refusal, cluster, namespace, node } = input;
  const ns = refusal.pod.namespace;
  const { notes, usesNamespace } = nodeNotes(
    ns,
    cluster,
    namespace,
    node,
    node?.name ?? refusal.node,
  );

  const image = refusal.reference;
  const e = explain(image, cluster.index, usesNamespace ? namespace?.index : undefined);
  const layer = decidingLayer(
    e.accepts,
    e.cluster?.accepts,
    usesNamespace ? e.namespace?.accepts : undefined,
  );
  if (layer === "None") {
    notes.push(
      `The published policy accepts ${image} unconditionally now: the node refused it under another revision, or the policies changed since.`,
    );
  } else if (refusal.category === "RejectedByPolicy" && !rejects(e.accepts)) {
    notes.push(
      "CRI-O says the image is rejected by policy, but the published policy does not reject it outright: the node decided on another revision.",
    );
  }
  const clusterView = e.cluster === null ? undefined : layerView(e.cluster, cluster, image);
  const namespaceView =
    usesNamespace && e.namespace !== null && namespace !== undefined
      ? layerView(e.namespace, namespace, image)
      : undefined;
  const accepts = e.accepts.slice(0, MAX_LISTED).map((a) => describeAcceptance(a, image));
  const hint = hintFor(refusal, e.accepts);

  const deciding =
    layer === "Cluster"
      ? describePolicies(clusterView)
      : layer === "Namespace"
        ? describePolicies(namespaceView)
        : layer === "Both"
          ? `${describePolicies(clusterView)} and ${describePolicies(namespaceView)}`
          : "";
  const summary = [
    `${refusal.action === "pull" ? "Pull" : "Container creation"} of ${image} refused by ${LAYER_TEXT[layer]}${deciding === "" ? "" : `: ${deciding}`}.`,
    // Before the long parts: an Event's note is cut at 1024 characters.
    `Details: kubectl get imagepullrefusal ${input.recordName} -n ${ns} -o yaml.`,
    layer === "None" ? "" : `Accepted would be: ${accepts.join("; and ")}.`,
    `CRI-O: ${refusal.reason}`,
  ]
    .filter((s) => s !== "")
    .join(" ");

  const nsApplied =
    node === undefined ? undefined : appliedNamespaceRevision(node.appliedRevisions, ns);
  const nodeRevisions =
    node === undefined
      ? undefined
      : {
          ...(node.appliedRevisions[CLUSTER_FILE] === undefined
            ? {}
            : { cluster: node.appliedRevisions[CLUSTER_FILE] }),
          ...(nsApplied === undefined ? {} : { namespace: nsApplied }),
        };
  return {
    decidingLayer: layer,
    file: e.file,
    fileScope: e.fileScope === null ? "" : scopeText(e.fileScope),
    accepts,
    ...(clusterView === undefined ? {} : { cluster: clusterView }),
    ...(namespaceView === undefined ? {} : { namespace: namespaceView }),
    revisions: {
      cluster: cluster.revision,
      ...(namespace === undefined ? {} : { namespace: namespace.revision }),
    },
    ...(nodeRevisions === undefined ? {} : { nodeRevisions }),
    ...(hint === undefined ? {} : { hint }),
    notes: notes.slice(0, 8),
    summary,
  };
}

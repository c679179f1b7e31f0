// The ImagePullRefusal record of one refused (pod, image): its name, the object the controller
// creates (spec, owned by the pod) and the status it writes (src/api/policy.ts defines both).

import { createHash } from "node:crypto";
import { API_VERSION } from "../api/policy.ts";
import type { KubeObject, Resource } from "../kube/index.ts";
import type { LayerView, RefusalExplanation } from "./explainRefusal.ts";
import type { Refusal } from "./parse.ts";

export const IMAGE_PULL_REFUSALS: Resource = {
  group: "imagepolicy.dev",
  version: "v1alpha1",
  plural: "imagepullrefusals",
  kind: "ImagePullRefusal",
  namespaced: true,
};

export const PODS: Resource = {
  group: "",
  version: "v1",
  plural: "pods",
  kind: "Pod",
  namespaced: true,
};

/** core/v1 Events: what the kubelet writes (the controller reads them, never writes them). */
export const CORE_EVENTS: Resource = {
  group: "",
  version: "v1",
  plural: "events",
  kind: "Event",
  namespaced: true,
};

/** `<pod name>-<10 hex of the image>`: one record per pod and image, a valid object name. */
export function recordName(refusal: Refusal): string {
  const hash = createHash("sha256").update(refusal.reference).digest("hex").slice(0, 10);
  const pod = refusal.pod.name.slice(0, 253 - 11).replace(/[-.]+$/, "");
  return `${pod}-${hash}`;
}

export function recordObject(refusal: Refusal): KubeObject {
  return {
    apiVersion: API_VERSION,
    kind: "ImagePullRefusal",
    metadata: {
      name: recordName(refusal),
      namespace: refusal.pod.namespace,
      labels: { "app.kubernetes.io/managed-by": "imagepolicy-operator" },
      // Deleted with the pod by the garbage collector. No blockOwnerDeletion: that would need
      // the right to delete pods.
      ownerReferences: [
        { apiVersion: "v1", kind: "Pod", name: refusal.pod.name, uid: refusal.pod.uid },
      ],
    },
    spec: {
      podName: refusal.pod.name,
      podUID: refusal.pod.uid,
      ...(refusal.container === undefined ? {} : { container: refusal.container }),
      image: refusal.image.slice(0, 1024),
    },
  };
}

/** The schema's bounds (src/api/policy.ts): a longer string would make the API server refuse
 * the whole status. */
function clampLayer(v: LayerView): LayerView {
  return { ...v, scope: v.scope.slice(0, 600), accepts: v.accepts.map((a) => a.slice(0, 2048)) };
}

const CONDITION_REASON: Record<RefusalExplanation["decidingLayer"], string> = {
  Cluster: "ClusterLayer",
  Namespace: "NamespaceLayer",
  Both: "BothLayers",
  None: "NotInPublishedPolicy",
};

/** The status as a JSON merge patch: a field this explanation lacks is null, so that nothing of
 * an earlier explanation (another revision) stays behind. */
export function recordStatus(
  refusal: Refusal,
  x: RefusalExplanation,
  generation: number | undefined,
  now: string,
): Record<string, unknown> {
  return {
    conditions: [
      {
        type: "Explained",
        status: "True",
        ...(generation === undefined ? {} : { observedGeneration: generation }),
        lastTransitionTime: now,
        reason: CONDITION_REASON[x.decidingLayer],
        message: x.summary.slice(0, 32768),
      },
    ],
    decidingLayer: x.decidingLayer,
    category: refusal.category,
    crioReason: refusal.reason,
    action: refusal.action,
    node: refusal.node ?? null,
    file: x.file,
    fileScope: x.fileScope,
    accepts: x.accepts.map((a) => a.slice(0, 2048)),
    cluster: x.cluster === undefined ? null : clampLayer(x.cluster),
    namespace: x.namespace === undefined ? null : clampLayer(x.namespace),
    revisions: { cluster: x.revisions.cluster, namespace: x.revisions.namespace ?? null },
    nodeRevisions:
      x.nodeRevisions === undefined
        ? null
        : {
            cluster: x.nodeRevisions.cluster ?? null,
            namespace: x.nodeRevisions.namespace ?? null,
          },
    hint: x.hint ?? null,
    notes: x.notes.map((n) => n.slice(0, 1024)),
    count: Math.min(refusal.count, 2 ** 31 - 1),
    lastExplainedTime: now,
  };
}

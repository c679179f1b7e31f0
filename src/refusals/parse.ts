// Which pod Events carry a signature refusal, and what they say (pure).
//
// The kubelet (v1.37, pkg/kubelet/images/image_manager.go) records a core/v1 Event on the pod,
// reason `Failed`, type Warning, source {component: kubelet, host: <node>}, when a pull fails:
//   Failed to pull image "<image as the pod names it>": <the runtime's error>
// and, when the runtime refuses to create a container (kuberuntime_container.go):
//   Error: <the runtime's error>
// CRI-O (1.36, server/image_pull.go and internal/storage/image.go) wraps a policy refusal as
//   SignatureValidationFailed: ... Source image rejected: <containers/image's reason>
// and the re-check at container creation as
//   checking signature of "<image>": verifying signatures: SignatureValidationFailed: Source image
//   rejected: Running image docker://<image> is rejected by policy.
// (cri-client strips the gRPC "rpc error: code = Unknown desc =" prefix; it is tolerated anyway.)
// The kubelet's other `Failed` Events of such a pod ("Error: ErrImagePull", "Error:
// ImagePullBackOff", "Error: SignatureValidationFailed") name no image and no reason: ignored, the
// pull's own Event carries both and comes again with every retry.

import { z } from "zod";
import { parseImage } from "../compiler/scopes.ts";

/** containers/image's reasons (signature/policy_eval*.go), as test/e2e/pulls.test.ts saw CRI-O
 * return them. */
export type RefusalCategory =
  | "NoSignature"
  | "InvalidSignature"
  | "NoSignatureAccepted"
  | "IdentityNotAccepted"
  | "RejectedByPolicy"
  | "Other";

export interface Refusal {
  readonly pod: { readonly namespace: string; readonly name: string; readonly uid: string };
  /** The container, from the Event's fieldPath (spec.containers{NAME}), when present. */
  readonly container?: string;
  /** The node whose kubelet reported it (source.host, else reportingInstance). */
  readonly node?: string;
  /** The image as the message names it. */
  readonly image: string;
  /** The same, normalised as scopes are (docker.io/library/..., :latest). */
  readonly reference: string;
  /** A pull, or the re-check when a container is created from an image already on the node. */
  readonly action: "pull" | "create";
  readonly category: RefusalCategory;
  /** containers/image's reason, at most MAX_REASON characters. */
  readonly reason: string;
  /** The kubelet's repeat count of this Event (1 when absent). */
  readonly count: number;
}

/** Longest message looked at: kubelet messages are short; anything longer is cut first, so the
 * work per Event is bounded whatever a writer of Events puts in. */
export const MAX_MESSAGE = 4096;
export const MAX_REASON = 512;

const eventSchema = z.looseObject({
  metadata: z.looseObject({ namespace: z.string().optional() }),
  involvedObject: z.looseObject({
    kind: z.string().optional(),
    name: z.string().optional(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    fieldPath: z.string().optional(),
  }),
  reason: z.string().optional(),
  type: z.string().optional(),
  message: z.string().optional(),
  count: z.number().int().optional(),
  source: z.looseObject({ host: z.string().optional() }).optional(),
  reportingInstance: z.string().optional(),
});

/** The field selector that narrows the stream on the API server: every pod Event that can carry a
 * refusal, and little else (pkg/registry/core/event/strategy.go lists the selectable fields). */
export const REFUSAL_EVENT_SELECTOR = "involvedObject.kind=Pod,reason=Failed,type=Warning";

const PULL_IMAGE = /^Failed to pull image "([^"\s]{1,1024})"/;
const CHECKING = /checking signature of "([^"\s]{1,1024})"/;
const RUNNING = /Running image docker:\/\/(\S{1,1024}?) is rejected by policy/;
const MARKER = "SignatureValidationFailed";
const REJECTED = "Source image rejected: ";
const CONTAINER = /^spec\.(?:initContainers|containers|ephemeralContainers)\{([^}]{1,253})\}$/;

function categorize(reason: string): RefusalCategory {
  if (/A signature was required, but no signature exists/.test(reason)) return "NoSignature";
  if (/None of the signatures were accepted/.test(reason)) return "NoSignatureAccepted";
  if (/is rejected by policy/.test(reason)) return "RejectedByPolicy";
  if (/Signature for identity .* is not accepted/.test(reason)) return "IdentityNotAccepted";
  if (/invalid signature|signature verification failed/i.test(reason)) return "InvalidSignature";
  return "Other";
}

/** The refusal an Event reports, or undefined for any other Event (or one too malformed to
 * explain). Takes any object: Events are input from whoever may write them. */
export function parseRefusalEvent(event: unknown): Refusal | undefined {
  const e = eventSchema.safeParse(event);
  if (!e.success) return undefined;
  const { involvedObject: o, reason, type, message } = e.data;
  if (o.kind !== "Pod" || reason !== "Failed" || type !== "Warning" || message === undefined) {
    return undefined;
  }
  if (o.name === undefined || o.namespace === undefined || o.uid === undefined || o.uid === "") {
    return undefined;
  }
  // An Event lives in its object's namespace. One about a pod elsewhere was not written by a
  // kubelet, and answering it would let whoever may write Events in one namespace make the
  // controller write into another (docs/security.md: nothing crosses namespaces).
  if (e.data.metadata.namespace !== o.namespace) return undefined;
  const text = message.slice(0, MAX_MESSAGE);
  const marker = text.indexOf(MARKER);
  const rejected = text.lastIndexOf(REJECTED);
  if (marker === -1 && rejected === -1) return undefined;
  const pulled = PULL_IMAGE.exec(text);
  const created = pulled === null ? (CHECKING.exec(text) ?? RUNNING.exec(text)) : null;
  const image = pulled?.[1] ?? created?.[1];
  if (image === undefined) return undefined;
  const parsed = parseImage(image);
  if (!parsed.ok) return undefined;
  const detail = (
    rejected === -1
      ? text.slice(marker + MARKER.length).replace(/^:\s*/, "")
      : text.slice(rejected + REJECTED.length)
  )
    .trim()
    .slice(0, MAX_REASON);
  const container = CONTAINER.exec(o.fieldPath ?? "")?.[1];
  const node = e.data.source?.host ?? e.data.reportingInstance;
  return {
    pod: { namespace: o.namespace, name: o.name, uid: o.uid },
    ...(container === undefined ? {} : { container }),
    ...(node === undefined || node === "" ? {} : { node }),
    image,
    reference: parsed.reference,
    action: pulled === null ? "create" : "pull",
    category: categorize(detail),
    reason: detail,
    count: Math.max(1, e.data.count ?? 1),
  };
}

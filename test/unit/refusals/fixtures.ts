// Test data for the refusal pipeline: kubelet Events as the kubelet writes them (core/v1, reason
// Failed, message `Failed to pull image "REF": <CRI-O's error>`), CRI-O 1.36's refusal texts
// (the reasons test/e2e/pulls.test.ts sees), and published layer ConfigMaps.

import { createHash, generateKeyPairSync } from "node:crypto";
import { makeLayer, serializeLayer, type LayerPolicy } from "../../../src/compiler/layer.ts";
import type { Requirement } from "../../../src/compiler/requirements.ts";
import type { KubeObject } from "../../../src/kube/objects.ts";
import { LAYER_KEY, layerConfigMapName } from "../../../src/layerConfigMap.ts";

/** containers/image's reasons, as CRI-O returns them. */
export const REASONS = {
  NoSignature: "A signature was required, but no signature exists",
  InvalidSignature: "Invalid signature: signature verification failed",
  NoSignatureAccepted:
    "None of the signatures were accepted, reasons: cryptographic signature verification failed: invalid signature",
  RejectedByPolicy: "Running image docker://registry.example/app:v1 is rejected by policy.",
  IdentityNotAccepted: 'Signature for identity "registry.example/app" is not accepted',
} as const;

/** What the kubelet writes when CRI-O refuses a pull. */
export function pullFailedMessage(image: string, reason: string): string {
  return `Failed to pull image "${image}": SignatureValidationFailed: image pull failed for ${image} because the signature validation failed: Source image rejected: ${reason}`;
}

export interface EventOptions {
  readonly namespace?: string;
  readonly pod?: string;
  readonly uid?: string;
  readonly node?: string;
  readonly message: string;
  readonly count?: number;
  readonly reason?: string;
  readonly eventNamespace?: string;
  readonly name?: string;
}

/** A core/v1 Event as the kubelet creates it about a pod. */
export function kubeletEvent(o: EventOptions): KubeObject {
  const namespace = o.namespace ?? "team";
  const pod = o.pod ?? "web-0";
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: {
      name:
        o.name ?? `${pod}.18${createHash("sha256").update(o.message).digest("hex").slice(0, 14)}`,
      namespace: o.eventNamespace ?? namespace,
    },
    involvedObject: {
      apiVersion: "v1",
      kind: "Pod",
      name: pod,
      namespace,
      uid: o.uid ?? "0b5c2f2e-1111-4a4a-9c9c-000000000001",
      fieldPath: "spec.containers{app}",
    },
    reason: o.reason ?? "Failed",
    type: "Warning",
    message: o.message,
    source: { component: "kubelet", host: o.node ?? "node-a" },
    count: o.count ?? 1,
    firstTimestamp: "2026-12-02T02:00:00Z",
    lastTimestamp: "2026-12-02T02:00:00Z",
    reportingComponent: "kubelet",
    reportingInstance: o.node ?? "node-a",
  };
}

/** A fresh P-256 public key: base64 of its PEM (what layers hold) and its fingerprint. */
export function publicKey(): {
  readonly b64: string;
  readonly pem: string;
  readonly fingerprint: string;
} {
  const { publicKey: k } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = k.export({ type: "spki", format: "pem" }).toString();
  const der = k.export({ type: "spki", format: "der" });
  return {
    b64: Buffer.from(pem).toString("base64"),
    pem,
    fingerprint: `sha256:${createHash("sha256").update(der).digest("hex").slice(0, 16)}`,
  };
}

export function policy(
  name: string,
  scopes: string[],
  requirement: Requirement,
  generation = 1,
): LayerPolicy {
  return { name, generation, scopes, requirement };
}

/** A layer ConfigMap as the controller publishes it. */
export function layerConfigMap(
  namespace: string | undefined,
  policies: LayerPolicy[],
  resourceVersion = "1",
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: layerConfigMapName(namespace),
      namespace: "imagepolicy-system",
      resourceVersion,
    },
    data: { [LAYER_KEY]: serializeLayer(makeLayer(namespace, policies)) },
  };
}

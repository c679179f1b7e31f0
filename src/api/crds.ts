// The CustomResourceDefinitions of crds/, built from the API's single definition
// (src/api/policy.ts): names, scope, printer columns and the OpenAPI schema with its CEL rules.
// hack/gen-crds.ts writes them as YAML; test/unit/crds.test.ts fails when crds/ is stale.

import {
  GROUP,
  VERSION,
  clusterImagePolicy,
  imagePolicy,
  imagePolicyNodeStatus,
  imagePullRefusal,
} from "./policy.ts";
import type { OpenApi } from "./schema.ts";

export const CRD_DIR = "crds";

interface Names {
  kind: string;
  plural: string;
  singular: string;
  listKind: string;
  shortNames: readonly string[];
  categories: readonly string[];
}

interface PrinterColumn {
  name: string;
  type: "string" | "boolean" | "integer" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
}

function crd(
  names: Names,
  scope: "Cluster" | "Namespaced",
  description: string,
  root: OpenApi,
  columns: readonly PrinterColumn[],
): Record<string, unknown> {
  const { type, ...rest } = root;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${names.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names,
      scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type, description, ...rest } },
          subresources: { status: {} },
          additionalPrinterColumns: columns,
        },
      ],
    },
  };
}

const AGE: PrinterColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since the object was created.",
};
const READY: PrinterColumn = {
  name: "Ready",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: "Status of the Ready condition.",
};

function policyColumns(): PrinterColumn[] {
  return [
    {
      name: "Scopes",
      type: "string",
      jsonPath: ".spec.scopes",
      description: "Image scopes the policy applies to.",
      priority: 1,
    },
    {
      name: "Type",
      type: "string",
      jsonPath: ".spec.policy.rootOfTrust.policyType",
      description: "Root of trust.",
    },
    READY,
    {
      name: "Rollout",
      type: "string",
      jsonPath: ".status.rollout.display",
      description: "Nodes applied / nodes total.",
    },
    AGE,
  ];
}

/** crds/<file name> -> the CRD object, in a fixed order. */
export function crdObjects(): ReadonlyMap<string, Record<string, unknown>> {
  const categories = ["imagepolicy-all"];
  return new Map([
    [
      `${GROUP}_clusterimagepolicies.yaml`,
      crd(
        {
          kind: "ClusterImagePolicy",
          plural: "clusterimagepolicies",
          singular: "clusterimagepolicy",
          listKind: "ClusterImagePolicyList",
          shortNames: ["cip"],
          categories,
        },
        "Cluster",
        "ClusterImagePolicy requires images pulled anywhere in the cluster to satisfy a signature " +
          "policy. The operator compiles all ClusterImagePolicies into the containers-policy.json " +
          "file CRI-O checks on every pull, on every node. Compatible with OpenShift's " +
          "config.openshift.io/v1 ClusterImagePolicy (change only apiVersion; docs/api.md lists the " +
          "few values refused here), with extensions: several keys, keys from Secrets, Reject, " +
          "InsecureAcceptAnything, the '*' scope, GPG keys, and the MatchExact and ExactReference " +
          "identities.",
        clusterImagePolicy.openapi(),
        policyColumns(),
      ),
    ],
    [
      `${GROUP}_imagepolicies.yaml`,
      crd(
        {
          kind: "ImagePolicy",
          plural: "imagepolicies",
          singular: "imagepolicy",
          listKind: "ImagePolicyList",
          shortNames: ["imgpol"],
          categories,
        },
        "Namespaced",
        "ImagePolicy adds signature requirements for images pulled by pods of its namespace, on " +
          "top of the ClusterImagePolicies: a pull must satisfy both, so a namespace can tighten " +
          "but never loosen the cluster policy (unlike OpenShift, which ignores an ImagePolicy " +
          "scope nested under a ClusterImagePolicy scope). Same spec as ClusterImagePolicy, except " +
          "that a keySecretRef always names a Secret of this namespace and a GPG lookaside cannot " +
          "be a file:// URL. Needs CRI-O 1.28 or newer on the node (per-namespace policy files).",
        imagePolicy.openapi(),
        policyColumns(),
      ),
    ],
    [
      `${GROUP}_imagepolicynodestatuses.yaml`,
      crd(
        {
          kind: "ImagePolicyNodeStatus",
          plural: "imagepolicynodestatuses",
          singular: "imagepolicynodestatus",
          listKind: "ImagePolicyNodeStatusList",
          shortNames: ["ipns"],
          categories,
        },
        "Cluster",
        "ImagePolicyNodeStatus reports, for one node, what the imagepolicy agent enforces there: " +
          "the container runtime, whether it reads the policy files, which revision of each file " +
          "is applied, and the last error. Named after its Node and owned by it; written by the " +
          "agent on that node, read by the controller to compute each policy's rollout.",
        imagePolicyNodeStatus.openapi(),
        [
          {
            name: "Runtime",
            type: "string",
            jsonPath: ".status.runtime.version",
            description: "Container runtime version.",
          },
          {
            name: "Enforcing",
            type: "boolean",
            jsonPath: ".status.enforcing",
            description: "Whether the runtime checks pulls against the policy files.",
          },
          READY,
          AGE,
        ],
      ),
    ],
    [
      `${GROUP}_imagepullrefusals.yaml`,
      crd(
        {
          kind: "ImagePullRefusal",
          plural: "imagepullrefusals",
          singular: "imagepullrefusal",
          listKind: "ImagePullRefusalList",
          shortNames: ["ipr"],
          categories,
        },
        "Namespaced",
        "ImagePullRefusal explains why CRI-O refused a pod's image under the signature policy: " +
          "which layer (cluster or namespace), which scope and which policy objects decided, and " +
          "what would have been accepted, with keys shown as fingerprints only. Written by the " +
          "controller from the kubelet's pull-failure Events, one per pod and image, in the pod's " +
          "namespace and owned by the pod (deleted with it). docs/explain.md explains how to read it.",
        imagePullRefusal.openapi(),
        [
          {
            name: "Pod",
            type: "string",
            jsonPath: ".spec.podName",
            description: "The pod whose image was refused.",
          },
          {
            name: "Image",
            type: "string",
            jsonPath: ".spec.image",
            description: "The refused image.",
          },
          {
            name: "Layer",
            type: "string",
            jsonPath: ".status.decidingLayer",
            description: "The layer that refused it.",
          },
          {
            name: "Scope",
            type: "string",
            jsonPath: ".status.fileScope",
            description: "The deciding scope of the file CRI-O read.",
          },
          {
            name: "Reason",
            type: "string",
            jsonPath: ".status.category",
            description: "CRI-O's reason, sorted.",
          },
          AGE,
        ],
      ),
    ],
  ]);
}

// The end-to-end pull cases as DATA, run in order by test/e2e/pulls.test.ts (a CRI-O of its own
// behind the whole chain on this machine) and by hack/kind-e2e.ts (a kind node running CRI-O),
// both through test/support/pullRunner.ts. Each step applies or deletes policies (then waits
// until the node's agent has written them) or pulls an image and states the verdict, with
// CRI-O's reason for a refusal.
//
// Placeholders, filled in by the runner for each environment:
//   {R}        the registry's host:port as the node pulls from it
//   {SYSTEM}   (a whole scope) the images the cluster must keep pulling: the pause image and the
//              operator image, plus whatever the environment's nodes run (kind: its own images)
// Images are the fixture names of test/evaluator/environment.ts; the runner maps each to a
// reference. Later cases build on the state earlier ones leave (key A stays required on
// {R}/signed, {R}/unsigned and {R}/wrong from the first case on).
import type { ImageName } from "../evaluator/environment.ts";
import type { PolicyRef } from "../support/policyHarness.ts";

export type KeyName = "a" | "b" | "c" | "cosign";

export interface PolicyData {
  readonly kind: "ClusterImagePolicy" | "ImagePolicy";
  readonly name: string;
  readonly namespace?: string;
  readonly scopes: readonly string[];
  /** Reject, InsecureAcceptAnything, or a PublicKey policy with this test key. */
  readonly trust: "reject" | "accept" | KeyName;
  readonly identity?:
    | { readonly matchPolicy: "MatchRepository" }
    | {
        readonly matchPolicy: "RemapIdentity";
        readonly prefix: string;
        readonly signedPrefix: string;
      };
}

/** CRI-O's reason for a refusal: contains this text, or matches this regular expression. */
export type Reason = { readonly contains: string } | { readonly matches: string };

export type Step =
  | { readonly step: "apply"; readonly policies: readonly PolicyData[] }
  | { readonly step: "delete"; readonly policies: readonly PolicyRef[] }
  | {
      readonly step: "pull";
      readonly image: ImageName;
      readonly namespace?: string;
      readonly expect: "allowed";
    }
  | {
      readonly step: "pull";
      readonly image: ImageName;
      readonly namespace?: string;
      readonly expect: "refused";
      /** Names the refusal in the suite's summary of CRI-O texts. */
      readonly label: string;
      readonly reason?: Reason;
    }
  /** The namespace has no `<namespace>.json` on the node any more. */
  | { readonly step: "noNamespaceFile"; readonly namespace: string }
  /** kubectl apply, then pull again and again until the verdict changes: the latency. */
  | {
      readonly step: "applyUntilPull";
      readonly policy: PolicyData;
      readonly image: ImageName;
      readonly until: "allowed" | "refused";
    };

export interface PullCase {
  readonly name: string;
  readonly steps: readonly Step[];
}

const SIGNATURE_REQUIRED: Reason = {
  contains: "A signature was required, but no signature exists",
};
const cluster = (
  name: string,
  scopes: readonly string[],
  trust: PolicyData["trust"],
  identity?: PolicyData["identity"],
): PolicyData => ({
  kind: "ClusterImagePolicy",
  name,
  scopes,
  trust,
  ...(identity === undefined ? {} : { identity }),
});
const namespaced = (
  namespace: string,
  name: string,
  scopes: readonly string[],
  trust: PolicyData["trust"],
): PolicyData => ({ kind: "ImagePolicy", name, namespace, scopes, trust });

const flip = (trust: PolicyData["trust"]): PolicyData =>
  cluster("flip", ["{R}/signed/app:v1"], trust);

export const pullCases: readonly PullCase[] = [
  {
    name: "requires key A on the signed repositories (signed pulled, unsigned and key C refused)",
    steps: [
      {
        step: "apply",
        policies: [cluster("signed-by-a", ["{R}/signed", "{R}/unsigned", "{R}/wrong"], "a")],
      },
      { step: "pull", image: "signed/app:v1", expect: "allowed" },
      {
        step: "pull",
        image: "unsigned/app:v1",
        expect: "refused",
        label: "unsigned, key A required",
        reason: {
          matches:
            "^SignatureValidationFailed: .*A signature was required, but no signature exists",
        },
      },
      {
        step: "pull",
        image: "wrong/app:v1",
        expect: "refused",
        label: "signed by key C, key A required",
        reason: {
          matches:
            "^SignatureValidationFailed: .*Source image rejected: cryptographic signature verification failed: invalid signature when validating ASN\\.1 encoded signature",
        },
      },
    ],
  },
  {
    name: "a namespace ImagePolicy adds a requirement: allowed in team-b, refused in team-a",
    steps: [
      { step: "apply", policies: [namespaced("team-a", "require-b", ["{R}/signed/app"], "b")] },
      { step: "pull", image: "signed/app:v1", namespace: "team-b", expect: "allowed" },
      {
        step: "pull",
        image: "signed/app:v1",
        namespace: "team-a",
        expect: "refused",
        label: "key A signature, team-a also requires key B",
        reason: {
          matches:
            "^SignatureValidationFailed: .*Source image rejected: None of the signatures were accepted, reasons: cryptographic signature verification failed",
        },
      },
    ],
  },
  {
    name: "a namespace cannot loosen the cluster policy",
    steps: [
      { step: "apply", policies: [namespaced("team-a", "loosen", ["{R}/unsigned"], "accept")] },
      {
        step: "pull",
        image: "unsigned/app:v1",
        namespace: "team-a",
        expect: "refused",
        label: "team-a InsecureAcceptAnything under cluster key A",
        reason: SIGNATURE_REQUIRED,
      },
    ],
  },
  {
    name: "deleting the ImagePolicies falls back to the cluster policy",
    steps: [
      {
        step: "pull",
        image: "signed/app:v1",
        namespace: "team-a",
        expect: "refused",
        label: "team-a before deletion (key B required too)",
      },
      {
        step: "delete",
        policies: [
          { kind: "ImagePolicy", namespace: "team-a", name: "require-b" },
          { kind: "ImagePolicy", namespace: "team-a", name: "loosen" },
        ],
      },
      { step: "noNamespaceFile", namespace: "team-a" },
      { step: "pull", image: "signed/app:v1", namespace: "team-a", expect: "allowed" },
      {
        step: "pull",
        image: "unsigned/app:v1",
        namespace: "team-a",
        expect: "refused",
        label: "team-a after deletion (cluster key A)",
        reason: SIGNATURE_REQUIRED,
      },
    ],
  },
  {
    name: "`*` Reject with an exception: the exception pulls, others are refused",
    steps: [
      // The exception first: the controller refuses a default deny that would lock out the pause
      // and operator images.
      { step: "apply", policies: [cluster("exceptions", ["{SYSTEM}"], "accept")] },
      { step: "apply", policies: [cluster("default-deny", ["*"], "reject")] },
      { step: "pull", image: "base/pause:3.10", expect: "allowed" },
      { step: "pull", image: "signed/app:v1", expect: "allowed" },
      {
        step: "pull",
        image: "cosign/app:v1",
        expect: "refused",
        label: "default deny",
        reason: { matches: "SignatureValidationFailed.*rejected by policy" },
      },
      {
        step: "pull",
        image: "localhost/signed/app:v1",
        expect: "refused",
        label: "default deny (other host name)",
        reason: { contains: "rejected by policy" },
      },
    ],
  },
  {
    name: "RemapIdentity accepts a mirror whose signatures name the original location",
    steps: [
      { step: "apply", policies: [cluster("mirror", ["{R}/mirror"], "a")] },
      {
        step: "pull",
        image: "mirror/app:v1",
        expect: "refused",
        label: "mirror, default identity",
        reason: {
          contains:
            'Source image rejected: Signature for identity "registry.example.com/team/app:v1" is not accepted',
        },
      },
      {
        step: "apply",
        policies: [
          cluster("mirror", ["{R}/mirror"], "a", {
            matchPolicy: "RemapIdentity",
            prefix: "{R}/mirror",
            signedPrefix: "registry.example.com/team",
          }),
        ],
      },
      { step: "pull", image: "mirror/app:v1", expect: "allowed" },
    ],
  },
  {
    name: "a cosign-signed image pulled by tag: refused by the default identity, allowed by MatchRepository",
    steps: [
      { step: "apply", policies: [cluster("cosign", ["{R}/cosign/app"], "cosign")] },
      {
        step: "pull",
        image: "cosign/app:v1",
        expect: "refused",
        label: "cosign by tag, MatchRepoDigestOrExact",
        reason: {
          contains:
            'Source image rejected: Signature for identity "{R}/cosign/app" is not accepted',
        },
      },
      {
        step: "apply",
        policies: [
          cluster("cosign", ["{R}/cosign/app"], "cosign", { matchPolicy: "MatchRepository" }),
        ],
      },
      { step: "pull", image: "cosign/app:v1", expect: "allowed" },
    ],
  },
  {
    name: "a policy change takes effect on the next pull, with no CRI-O restart",
    steps: [
      ...Array.from({ length: 5 }, (): Step[] => [
        {
          step: "applyUntilPull",
          policy: flip("reject"),
          image: "signed/app:v1",
          until: "refused",
        },
        { step: "applyUntilPull", policy: flip("a"), image: "signed/app:v1", until: "allowed" },
      ]).flat(),
      { step: "delete", policies: [{ kind: "ClusterImagePolicy", name: "flip" }] },
    ],
  },
];

import { describe, expect, it } from "vitest";
import { MAX_MESSAGE, MAX_REASON, parseRefusalEvent } from "../../../src/refusals/parse.ts";
import { kubeletEvent, pullFailedMessage, REASONS } from "./fixtures.ts";

describe("parseRefusalEvent", () => {
  it.each(Object.entries(REASONS))("sorts CRI-O's %s refusal", (category, reason) => {
    const r = parseRefusalEvent(
      kubeletEvent({ message: pullFailedMessage("registry.example/app:v1", reason), count: 3 }),
    );
    expect(r).toEqual({
      pod: { namespace: "team", name: "web-0", uid: "0b5c2f2e-1111-4a4a-9c9c-000000000001" },
      container: "app",
      node: "node-a",
      image: "registry.example/app:v1",
      reference: "registry.example/app:v1",
      action: "pull",
      category,
      reason,
      count: 3,
    });
  });

  it("normalises the image as scopes are", () => {
    const r = parseRefusalEvent(
      kubeletEvent({ message: pullFailedMessage("nginx", REASONS.NoSignature) }),
    );
    expect(r?.image).toBe("nginx");
    expect(r?.reference).toBe("docker.io/library/nginx:latest");
  });

  it("reads the re-check at container creation, with the gRPC prefix", () => {
    const r = parseRefusalEvent(
      kubeletEvent({
        message:
          'Error: rpc error: code = Unknown desc = checking signature of "registry.example/app:v1": verifying signatures: SignatureValidationFailed: Source image rejected: Running image docker://registry.example/app:v1 is rejected by policy.',
      }),
    );
    expect(r?.action).toBe("create");
    expect(r?.reference).toBe("registry.example/app:v1");
    expect(r?.category).toBe("RejectedByPolicy");
  });

  it.each([
    [
      "a pull that failed for another reason",
      {
        message:
          'Failed to pull image "a.example/b:1": rpc error: code = NotFound desc = manifest unknown',
      },
    ],
    ["the kubelet's follow-up without an image", { message: "Error: ErrImagePull" }],
    [
      "Error: SignatureValidationFailed (no image named)",
      { message: "Error: SignatureValidationFailed" },
    ],
    [
      "a BackOff Event",
      { message: pullFailedMessage("a.example/b:1", REASONS.NoSignature), reason: "BackOff" },
    ],
    [
      "an Event about a pod in another namespace",
      { message: pullFailedMessage("a.example/b:1", REASONS.NoSignature), eventNamespace: "other" },
    ],
    [
      "an invalid image reference",
      { message: pullFailedMessage("UPPER/Case:1", REASONS.NoSignature) },
    ],
  ])("ignores %s", (_, o) => {
    expect(parseRefusalEvent(kubeletEvent(o))).toBeUndefined();
  });

  it.each([
    null,
    7,
    "x",
    {},
    { involvedObject: "x" },
    { metadata: {}, involvedObject: {}, message: 5 },
  ])("ignores malformed input %j", (v) => {
    expect(parseRefusalEvent(v)).toBeUndefined();
  });

  it("bounds the work and the reason whatever the message's length", () => {
    const long = pullFailedMessage(
      "registry.example/app:v1",
      `${REASONS.NoSignature} ${"x".repeat(100_000)}`,
    );
    const r = parseRefusalEvent(kubeletEvent({ message: long }));
    expect(r?.reason.length).toBe(MAX_REASON);
    // A marker beyond MAX_MESSAGE characters is not looked at.
    const hidden = `Failed to pull image "registry.example/app:v1": ${"y".repeat(MAX_MESSAGE)} SignatureValidationFailed`;
    expect(parseRefusalEvent(kubeletEvent({ message: hidden }))).toBeUndefined();
  });
});

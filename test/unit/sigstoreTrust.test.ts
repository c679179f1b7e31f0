// The vendored Sigstore public-good trust material is current with the pinned @sigstore/tuf, and
// the compiler accepts it in a FulcioCAWithRekor policy (certificate chain and Rekor key checks).

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { compileAll } from "../../src/compiler/compile.ts";
import { LATEST_KNOWN } from "../../src/compiler/crioVersion.ts";
import { secretLookupFrom } from "../../src/compiler/validate.ts";
import { parsePolicyJson } from "../../src/policyjson/parse.ts";
import { derive, TRUST_FILE } from "../../hack/refresh-sigstore-trust.ts";

const trust = z
  .looseObject({
    fulcio: z.looseObject({ fulcioCAData: z.string() }),
    rekor: z.looseObject({ rekorKeyData: z.string() }),
  })
  .parse(parse(readFileSync(TRUST_FILE, "utf8")));

describe("Sigstore public-good trust material", () => {
  it("is what hack/refresh-sigstore-trust.ts derives from the pinned @sigstore/tuf", () => {
    expect(readFileSync(TRUST_FILE, "utf8")).toBe(derive());
  });

  it("compiles into a fulcio requirement", () => {
    const r = compileAll(
      [
        {
          apiVersion: "imagepolicy.dev/v1alpha1",
          kind: "ClusterImagePolicy",
          metadata: { name: "keyless" },
          spec: {
            scopes: ["ghcr.io/example"],
            policy: {
              rootOfTrust: {
                policyType: "FulcioCAWithRekor",
                fulcioCAWithRekor: {
                  fulcioCAData: trust.fulcio.fulcioCAData,
                  rekorKeyData: trust.rekor.rekorKeyData,
                  fulcioSubject: {
                    oidcIssuer: "https://token.actions.githubusercontent.com",
                    signedEmail: "release@example.com",
                  },
                },
              },
            },
          },
        },
      ],
      secretLookupFrom([]),
      LATEST_KNOWN,
    );
    expect(r.diagnostics).toEqual([]);
    const policy = parsePolicyJson(r.files?.clusterJson ?? "");
    expect(policy.transports?.docker?.["ghcr.io/example"]).toEqual([
      {
        type: "sigstoreSigned",
        fulcio: {
          caData: trust.fulcio.fulcioCAData,
          oidcIssuer: "https://token.actions.githubusercontent.com",
          subjectEmail: "release@example.com",
        },
        rekorPublicKeyData: trust.rekor.rekorKeyData,
      },
    ]);
  });
});

// Sanity suite of the evaluator harness: hand-written policy.json and registries.d documents
// against the fixture images prove that the fixtures are signed as environment.ts says, and that
// `evaluate` tells ALLOW, DENY and "no verdict" apart.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import type { ImageName } from "./environment.ts";
import { EvaluationError, evaluate, evaluateAll, type Evaluation } from "./harness.ts";

const env = inject("evaluator");
let scratch = "";
let cases = 0;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "imagepolicy-harness-test-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

interface Setup {
  readonly policy: unknown;
  /** registries.d documents, file name -> YAML. */
  readonly registriesD: Readonly<Record<string, string>>;
}

/** registries.d that lets containers-image see sigstore attachments everywhere. */
const sigstoreEverywhere = {
  "sigstore.yaml": "default-docker:\n  use-sigstore-attachments: true\n",
};

/** Write a policy and a registries.d into a fresh directory. */
async function write(setup: Setup): Promise<{ policyPath: string; registriesDDir: string }> {
  const dir = path.join(scratch, `case-${String(cases++)}`);
  const registriesDDir = path.join(dir, "registries.d");
  await mkdir(registriesDDir, { recursive: true });
  const policyPath = path.join(dir, "policy.json");
  await writeFile(policyPath, JSON.stringify(setup.policy, null, 2));
  for (const [name, yaml] of Object.entries(setup.registriesD)) {
    await writeFile(path.join(registriesDDir, name), yaml);
  }
  return { policyPath, registriesDDir };
}

async function run(setup: Setup, image: ImageName): Promise<Evaluation> {
  return evaluate({ ...(await write(setup)), image: env.images[image] });
}

/** A policy whose default is reject and whose only scope is `scope` with `requirements`. */
function only(scope: string, requirements: readonly unknown[]): unknown {
  return { default: [{ type: "reject" }], transports: { docker: { [scope]: requirements } } };
}

function sigstoreKey(
  keyData: string,
  signedIdentity: unknown = { type: "matchRepoDigestOrExact" },
) {
  return { type: "sigstoreSigned", keyData, signedIdentity };
}

describe("simple requirements", () => {
  it("insecureAcceptAnything allows an unsigned image", async () => {
    const result = await run(
      { policy: { default: [{ type: "insecureAcceptAnything" }] }, registriesD: {} },
      "unsigned/app:v1",
    );
    expect(result.allowed, result.output).toBe(true);
  });

  it("reject denies a signed image", async () => {
    const result = await run(
      { policy: { default: [{ type: "reject" }] }, registriesD: sigstoreEverywhere },
      "signed/app:v1",
    );
    expect(result).toMatchObject({ allowed: false });
    expect(result.output).toMatch(/is rejected by policy/);
  });
});

describe("sigstoreSigned with skopeo signatures", () => {
  const keyA = (): Setup => ({
    policy: only(env.registry, [sigstoreKey(env.keys.a)]),
    registriesD: sigstoreEverywhere,
  });

  it.each<[ImageName, boolean]>([
    ["signed/app:v1", true],
    ["signed/team/app:v1", true],
    ["unsigned/app:v1", false],
    ["wrong/app:v1", false],
    ["signed/app:v2", false],
    ["mirror/app:v1", false],
  ])("key A: %s allowed=%s", async (image, allowed) => {
    const result = await run(keyA(), image);
    expect(result.allowed, result.output).toBe(allowed);
  });

  it("key B allows signed/app:v2 and denies signed/app:v1", async () => {
    const setup = {
      policy: only(env.registry, [sigstoreKey(env.keys.b)]),
      registriesD: sigstoreEverywhere,
    };
    expect((await run(setup, "signed/app:v2")).allowed).toBe(true);
    expect((await run(setup, "signed/app:v1")).allowed).toBe(false);
  });

  it("a keyPath works like keyData", async () => {
    const setup = {
      policy: only(env.registry, [
        {
          type: "sigstoreSigned",
          keyPath: env.keyFiles.a,
          signedIdentity: { type: "matchRepoDigestOrExact" },
        },
      ]),
      registriesD: sigstoreEverywhere,
    };
    expect((await run(setup, "signed/app:v1")).allowed).toBe(true);
  });

  it("a parent-namespace scope covers signed/team/app", async () => {
    const setup = {
      policy: only(`${env.registry}/signed`, [sigstoreKey(env.keys.a)]),
      registriesD: sigstoreEverywhere,
    };
    expect((await run(setup, "signed/team/app:v1")).allowed).toBe(true);
    expect((await run(setup, "unsigned/app:v1")).allowed).toBe(false);
  });

  it("containers-image sees no sigstore signature without use-sigstore-attachments", async () => {
    const result = await run(
      { policy: only(env.registry, [sigstoreKey(env.keys.a)]), registriesD: {} },
      "signed/app:v1",
    );
    expect(result.allowed).toBe(false);
    expect(result.output).toMatch(/no signature exists/);
  });

  it("the localhost host has its own signature and its own scope", async () => {
    const onLocalhost = only(env.registryLocalhost, [sigstoreKey(env.keys.a)]);
    const setup = { policy: onLocalhost, registriesD: sigstoreEverywhere };
    expect((await run(setup, "localhost/signed/app:v1")).allowed).toBe(true);
    // The 127.0.0.1 name of the same image falls to the default (reject).
    expect((await run(setup, "signed/app:v1")).allowed).toBe(false);
  });

  it("remapIdentity accepts the mirror image whose signature names registry.example.com", async () => {
    const remap = {
      type: "remapIdentity",
      prefix: `${env.registry}/mirror`,
      signedPrefix: "registry.example.com/team",
    };
    expect(env.mirrorIdentity).toBe("registry.example.com/team/app:v1");
    const setup = {
      policy: only(env.registry, [sigstoreKey(env.keys.a, remap)]),
      registriesD: sigstoreEverywhere,
    };
    const result = await run(setup, "mirror/app:v1");
    expect(result.allowed, result.output).toBe(true);
  });
});

describe("sigstoreSigned with cosign signatures (identity = repository only)", () => {
  it("is allowed by tag with matchRepository", async () => {
    const setup = {
      policy: only(env.registry, [sigstoreKey(env.keys.cosign, { type: "matchRepository" })]),
      registriesD: sigstoreEverywhere,
    };
    const result = await run(setup, "cosign/app:v1");
    expect(result.allowed, result.output).toBe(true);
  });

  it("is denied by tag under the default identity matchRepoDigestOrExact", async () => {
    const setup = {
      policy: only(env.registry, [sigstoreKey(env.keys.cosign)]),
      registriesD: sigstoreEverywhere,
    };
    const result = await run(setup, "cosign/app:v1");
    expect(result.allowed).toBe(false);
    expect(result.output).toMatch(/Signature for identity .* is not accepted/);
  });

  // Measured, not assumed: containers-image 5.34 refuses a repository-only identity under
  // matchRepoDigestOrExact even when the image is pulled by digest.
  it("is denied by digest too under the default identity; matchRepository allows it", async () => {
    const image = `${env.registry}/cosign/app@${env.digests["cosign/app:v1"]}`;
    const exact = await write({
      policy: only(env.registry, [sigstoreKey(env.keys.cosign)]),
      registriesD: sigstoreEverywhere,
    });
    const denied = await evaluate({ ...exact, image });
    expect(denied.allowed).toBe(false);
    expect(denied.output).toMatch(/Signature for identity .* is not accepted/);
    const repository = await write({
      policy: only(env.registry, [sigstoreKey(env.keys.cosign, { type: "matchRepository" })]),
      registriesD: sigstoreEverywhere,
    });
    const allowed = await evaluate({ ...repository, image });
    expect(allowed.allowed, allowed.output).toBe(true);
  });
});

describe("signedBy (GPG simple signing, lookaside)", () => {
  const lookaside = (): Record<string, string> => ({
    "gpg.yaml": `docker:\n  ${env.registry}/gpg:\n    lookaside: ${env.gpg.lookaside}\n`,
  });

  it("keyData (binary keyring) allows gpg/app:v1", async () => {
    const setup = {
      policy: only(env.registry, [
        { type: "signedBy", keyType: "GPGKeys", keyData: env.gpg.keyring },
      ]),
      registriesD: lookaside(),
    };
    const result = await run(setup, "gpg/app:v1");
    expect(result.allowed, result.output).toBe(true);
    expect((await run(setup, "signed/app:v1")).allowed).toBe(false);
  });

  it("keyPath allows gpg/app:v1", async () => {
    const setup = {
      policy: only(env.registry, [
        { type: "signedBy", keyType: "GPGKeys", keyPath: env.gpg.keyringFile },
      ]),
      registriesD: lookaside(),
    };
    expect((await run(setup, "gpg/app:v1")).allowed).toBe(true);
  });

  it("without the lookaside there is no signature", async () => {
    const setup = {
      policy: only(env.registry, [
        { type: "signedBy", keyType: "GPGKeys", keyData: env.gpg.keyring },
      ]),
      registriesD: {},
    };
    expect((await run(setup, "gpg/app:v1")).allowed).toBe(false);
  });
});

describe("errors are not verdicts", () => {
  it("an invalid policy file throws", async () => {
    const { registriesDDir } = await write({ policy: {}, registriesD: {} });
    const policyPath = path.join(scratch, "invalid-policy.json");
    await writeFile(policyPath, "{not json");
    await expect(
      evaluate({ policyPath, registriesDDir, image: env.images["unsigned/app:v1"] }),
    ).rejects.toThrow(EvaluationError);
  });

  it("a policy with an unknown key throws", async () => {
    const paths = await write({
      policy: { default: [{ type: "insecureAcceptAnything" }], bogus: true },
      registriesD: {},
    });
    await expect(evaluate({ ...paths, image: env.images["unsigned/app:v1"] })).rejects.toThrow(
      /Unknown key/,
    );
  });

  it("an unknown image throws", async () => {
    const paths = await write({
      policy: { default: [{ type: "insecureAcceptAnything" }] },
      registriesD: {},
    });
    await expect(evaluate({ ...paths, image: `${env.registry}/nope/app:v1` })).rejects.toThrow(
      EvaluationError,
    );
  });

  it("an unreachable registry throws, even under a signature requirement", async () => {
    const paths = await write({
      policy: { default: [sigstoreKey(env.keys.a)] },
      registriesD: sigstoreEverywhere,
    });
    await expect(evaluate({ ...paths, image: "127.0.0.1:9/signed/app:v1" })).rejects.toThrow(
      EvaluationError,
    );
  });

  it("unreadable key data throws", async () => {
    const paths = await write({
      policy: only(env.registry, [sigstoreKey(Buffer.from("not a key").toString("base64"))]),
      registriesD: sigstoreEverywhere,
    });
    await expect(evaluate({ ...paths, image: env.images["signed/app:v1"] })).rejects.toThrow(
      /PEM decoding failed/,
    );
  });
});

describe("evaluateAll", () => {
  it("returns results in order", async () => {
    const paths = await write({
      policy: only(env.registry, [sigstoreKey(env.keys.a)]),
      registriesD: sigstoreEverywhere,
    });
    const images: ImageName[] = [
      "signed/app:v1",
      "unsigned/app:v1",
      "signed/team/app:v1",
      "wrong/app:v1",
      "signed/app:v2",
      "base/pause:3.10",
    ];
    const results = await evaluateAll(
      images.map((image) => ({ ...paths, image: env.images[image] })),
    );
    expect(results.map((r) => r.allowed)).toEqual([true, false, true, false, false, false]);
  });
});

// policy-controller ANDs every ClusterImagePolicy whose globs match an image; this project lets
// the most specific scope decide. The import adds the narrower scopes to the broader policies
// (src/import/preserveAnd.ts). Checked here against the real compiler: for every sample image,
// the policies on the scope the compiled cluster layer decides with are exactly the
// policies whose globs policy-controller matches (pcGlob.ts). And the naive translation, without
// the added scopes, fails the same check: the choice is needed, not decorative.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AnyImagePolicy } from "../../../src/api/types.ts";
import { compileAll } from "../../../src/compiler/compile.ts";
import { decide } from "../../../src/compiler/combine.ts";
import { LATEST_KNOWN } from "../../../src/compiler/crioVersion.ts";
import { parseImage } from "../../../src/compiler/scopes.ts";
import { secretLookupFrom } from "../../../src/compiler/validate.ts";
import { mapGlob } from "../../../src/import/globs.ts";
import { importObjects } from "../../../src/import/importObjects.ts";
import { preserveAnd } from "../../../src/import/preserveAnd.ts";
import { D1, pcMatches, SAMPLES, scopeCovers } from "./pcGlob.ts";

/** Glob sets that map to scopes exactly (the import accepts them without --widen-globs). */
const EXACT: readonly (readonly string[])[] = [
  ["**"],
  ["ghcr.io/**"],
  ["ghcr.io/acme/**", "ghcr.io/acme@**"],
  ["ghcr.io/acme/app/**", "ghcr.io/acme/app@**"],
  [`ghcr.io/acme/app@${D1}`],
  ["registry.acme.example/**"],
  ["registry.acme.example/teams/**", "registry.acme.example/teams@**"],
  ["quay.io/**"],
  ["localhost:5000/**"],
  ["*/*"],
  ["index.docker.io/library/busybox@**"],
];

/** Globs whose scope covers more; imported with --widen-globs. */
const WIDER: readonly (readonly string[])[] = [
  ...EXACT,
  ["ghcr.io/acme/**"],
  ["registry.acme.example/teams/*"],
  ["*.internal.example/**"],
  ["quay.io/vendor@**"],
];

function pc(name: string, globs: readonly string[]): Record<string, unknown> {
  return {
    apiVersion: "policy.sigstore.dev/v1beta1",
    kind: "ClusterImagePolicy",
    metadata: { name },
    spec: {
      images: globs.map((glob) => ({ glob })),
      authorities: [{ static: { action: "fail" } }],
    },
  };
}

/** The policies on the scope the compiled cluster layer uses for `sample`. */
function deciding(objects: readonly AnyImagePolicy[], sample: string): string[] {
  const compiled = compileAll(objects, secretLookupFrom([]), LATEST_KNOWN);
  expect(compiled.diagnostics).toEqual([]);
  const image = parseImage(sample);
  if (!image.ok) throw new Error(image.reason);
  const d = decide(compiled.cluster, image.reference);
  return (d?.entry.sources ?? []).map((s) => s.name).sort();
}

function imported(sets: readonly (readonly string[])[], widen: boolean): AnyImagePolicy[] {
  const r = importObjects(
    sets.map((globs, i) => pc(`p${i}`, globs)),
    {
      secretNamespace: "imagepolicy-system",
      policyControllerNamespace: "cosign-system",
      defaultSecretKey: "cosign.pub",
      widenGlobs: widen,
      trust: undefined,
      noMatchPolicy: "allow",
      partial: false,
    },
  );
  expect(r.problems).toEqual([]);
  return [...r.objects];
}

const policySets = (pool: readonly (readonly string[])[]) =>
  fc.uniqueArray(fc.integer({ min: 0, max: pool.length - 1 }), { minLength: 1, maxLength: 5 });

describe("imported policies keep policy-controller's AND", () => {
  it("the deciding scope carries exactly the policies whose globs match (exact globs)", () => {
    fc.assert(
      fc.property(policySets(EXACT), (picked) => {
        const sets = picked.map((i) => EXACT[i] ?? []);
        const objects = imported(sets, false);
        for (const sample of SAMPLES) {
          const want = sets
            .flatMap((globs, i) => (globs.some((g) => pcMatches(g, sample)) ? [`p${i}`] : []))
            .sort();
          expect(deciding(objects, sample), sample).toEqual(want);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("with --widen-globs: exactly the policies whose scopes contain the image", () => {
    fc.assert(
      fc.property(policySets(WIDER), (picked) => {
        const sets = picked.map((i) => WIDER[i] ?? []);
        const objects = imported(sets, true);
        const scopesOf = sets.map((globs) =>
          globs.flatMap((g) => {
            const m = mapGlob(g);
            return m.ok ? [m.scope] : [];
          }),
        );
        for (const sample of SAMPLES) {
          const want = scopesOf
            .flatMap((scopes, i) => (scopes.some((s) => scopeCovers(s, sample)) ? [`p${i}`] : []))
            .sort();
          expect(deciding(objects, sample), sample).toEqual(want);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("the naive translation (own scopes only) lets the narrower policy replace the broader", () => {
    const sets = [["ghcr.io/**"], ["ghcr.io/acme/app/**", "ghcr.io/acme/app@**"]];
    const naive = imported(sets, false).flatMap((o) =>
      o.kind === "ClusterImagePolicy"
        ? [
            {
              ...o,
              spec: {
                ...o.spec,
                scopes: o.metadata.name === "p0" ? ["ghcr.io"] : ["ghcr.io/acme/app"],
              },
            },
          ]
        : [],
    );
    const sample = `ghcr.io/acme/app@${D1}`;
    expect(sets.every((globs) => globs.some((g) => pcMatches(g, sample)))).toBe(true);
    expect(deciding(naive, sample)).toEqual(["p1"]);
    expect(deciding(imported(sets, false), sample)).toEqual(["p0", "p1"]);
  });
});

describe("preserveAnd", () => {
  it("adds a narrower scope to every policy with a broader one, and nothing else", () => {
    const out = preserveAnd([
      { name: "all", scopes: [""] },
      { name: "host", scopes: ["ghcr.io"] },
      { name: "ns", scopes: ["ghcr.io/acme"] },
      { name: "wild", scopes: ["*.example.com"] },
      { name: "sub", scopes: ["a.example.com"] },
      { name: "sibling", scopes: ["quay.io"] },
    ]);
    expect(Object.fromEntries(out.map((p) => [p.name, p.scopes]))).toEqual({
      all: ["", "*.example.com", "a.example.com", "ghcr.io", "ghcr.io/acme", "quay.io"],
      host: ["ghcr.io", "ghcr.io/acme"],
      ns: ["ghcr.io/acme"],
      wild: ["*.example.com", "a.example.com"],
      sub: ["a.example.com"],
      sibling: ["quay.io"],
    });
    expect(out.find((p) => p.name === "host")?.added).toEqual([
      { scope: "ghcr.io/acme", from: ["ns"] },
    ]);
  });

  it("does not treat a port as a parent", () => {
    const out = preserveAnd([
      { name: "a", scopes: ["reg.example.com"] },
      { name: "b", scopes: ["reg.example.com:5000/x"] },
    ]);
    expect(out.map((p) => p.scopes)).toEqual([["reg.example.com"], ["reg.example.com:5000/x"]]);
  });
});

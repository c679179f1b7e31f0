// Every row of docs/import.md's glob table, checked against policy-controller's matcher
// (pcGlob.ts) on sample images: an exact row matches the same images as its scope; a wider row's
// scope covers every image the glob matches and some it does not; a refused row that says "never
// applied" matches no image at all.
import { describe, expect, it } from "vitest";
import { mapGlob, mapGlobs, type Coverage } from "../../../src/import/globs.ts";
import { D1, pcMatches, SAMPLES, scopeCovers } from "./pcGlob.ts";

type Row =
  | { glob: string; scope: string; coverage: Coverage }
  | { glob: string; refused: string; inert: boolean };

const rows: readonly Row[] = [
  // exact
  { glob: "**", scope: "", coverage: "all" },
  { glob: "*/**", scope: "", coverage: "all" },
  { glob: "ghcr.io/**", scope: "ghcr.io", coverage: "all" },
  { glob: "localhost:5000/**", scope: "localhost:5000", coverage: "all" },
  { glob: "10.0.0.1:5000/**", scope: "10.0.0.1:5000", coverage: "all" },
  { glob: "index.docker.io/**", scope: "docker.io", coverage: "all" },
  { glob: "*/*", scope: "docker.io", coverage: "all" },
  { glob: "index.docker.io/*/*", scope: "docker.io", coverage: "all" },
  { glob: "index.docker.io/*/**", scope: "docker.io", coverage: "all" },
  { glob: "index.docker.io/library/nginx@**", scope: "docker.io/library/nginx", coverage: "all" },
  { glob: `ghcr.io/acme/app@${D1}`, scope: `ghcr.io/acme/app@${D1}`, coverage: "all" },
  // wider: the scope also covers the repository itself, deeper repositories or ported hosts
  { glob: "ghcr.io/acme/**", scope: "ghcr.io/acme", coverage: "below" },
  { glob: "ghcr.io/acme/app@**", scope: "ghcr.io/acme/app", coverage: "repository" },
  { glob: "ghcr.io/acme/app@*", scope: "ghcr.io/acme/app", coverage: "repository" },
  { glob: "ghcr.io/acme/app@sha256:*", scope: "ghcr.io/acme/app", coverage: "repository" },
  {
    glob: "registry.acme.example/teams/*",
    scope: "registry.acme.example/teams",
    coverage: "partial",
  },
  { glob: "quay.io/*", scope: "quay.io", coverage: "partial" },
  // Docker Hub repositories are always NAMESPACE/NAME, so a namespace glob covers it exactly.
  { glob: "*", scope: "docker.io/library", coverage: "all" },
  { glob: "index.docker.io/bitnami/**", scope: "docker.io/bitnami", coverage: "all" },
  { glob: "index.docker.io/bitnami/*", scope: "docker.io/bitnami", coverage: "all" },
  { glob: "*.internal.example/**", scope: "*.internal.example", coverage: "partial" },
  // refused: no scope, or the glob never matched anything
  { glob: "ghcr.io/*/app/**", refused: "middle of the path", inert: false },
  { glob: "ghcr.io/acme/app-*", refused: "partial wildcard", inert: false },
  { glob: "ghcr.io/acme/app*", refused: "partial wildcard", inert: false },
  { glob: "ghcr.io/acme/*@**", refused: 'wildcard before "@"', inert: false },
  { glob: "ghcr.io/acme/app@sha512:**", refused: 'after "@"', inert: false },
  { glob: "ghcr.io:*/**", refused: "registry host", inert: false },
  { glob: "*.internal.example/x/**", refused: "registry host", inert: false },
  { glob: "ghcr.io/acme/app", refused: "never applied", inert: true },
  { glob: "ghcr.io/acme/app:v1", refused: "never applied", inert: true },
  { glob: "ghcr.io/acme/app:**", refused: "never applied", inert: true },
  { glob: "ghcr.io/acme/app*:**", refused: "partial wildcard", inert: false },
  { glob: "ghcr.io", refused: "never applied", inert: true },
  { glob: "docker.io/library/**", refused: "never applied", inert: true },
  { glob: "busybox/**", refused: "never applied", inert: true },
  { glob: "index.docker.io/*", refused: "never applied", inert: true },
  { glob: "index.docker.io/nginx@**", refused: "never applied", inert: true },
  { glob: "ghcr.io/[a-z]*", refused: "refuses this glob", inert: false },
];

describe("policy-controller glob -> scope", () => {
  it.each(rows)("$glob", (row) => {
    const m = mapGlob(row.glob);
    if ("refused" in row) {
      expect(m.ok).toBe(false);
      if (!m.ok) expect(m.reason).toContain(row.refused);
      if (row.inert) {
        expect(SAMPLES.filter((s) => pcMatches(row.glob, s))).toEqual([]);
      }
      return;
    }
    expect(m).toMatchObject({ ok: true, scope: row.scope, coverage: row.coverage });
    const matched = SAMPLES.filter((s) => pcMatches(row.glob, s));
    const covered = SAMPLES.filter((s) => scopeCovers(row.scope, s));
    expect(matched.length, "the glob matches some sample").toBeGreaterThan(0);
    // A scope never covers less than its glob.
    expect(matched.filter((s) => !covered.includes(s))).toEqual([]);
    if (row.coverage === "all") {
      expect(covered).toEqual(matched);
    } else {
      expect(m.ok && m.missing !== undefined).toBe(true);
      expect(covered.filter((s) => !matched.includes(s)).length).toBeGreaterThan(0);
    }
  });
});

describe("the globs of one policy together", () => {
  it.each([
    [["ghcr.io/acme/**", "ghcr.io/acme@**"], ["ghcr.io/acme"]],
    [
      ["ghcr.io/**", "ghcr.io/acme/**"],
      ["ghcr.io", "ghcr.io/acme"],
    ],
    [
      ["**", "*.internal.example/**"],
      ["", "*.internal.example"],
    ],
    [["quay.io/**", "quay.io/*"], ["quay.io"]],
  ])("%j cover their scopes exactly", (globs, scopes) => {
    const r = mapGlobs(globs);
    expect(r.refused).toEqual([]);
    expect(r.scopes.map((s) => s.scope)).toEqual(scopes);
    expect(r.scopes.every((s) => s.missing.length === 0)).toBe(true);
    for (const sample of SAMPLES) {
      const byGlobs = globs.some((g) => pcMatches(g, sample));
      const byScopes = scopes.some((s) => scopeCovers(s, sample));
      expect(byScopes, sample).toBe(byGlobs);
    }
  });

  it("names the glob and what its scope adds when nothing covers the difference", () => {
    const r = mapGlobs(["ghcr.io/acme/**", "quay.io/vendor@**", "ghcr.io/x"]);
    expect(r.refused.map((x) => x.index)).toEqual([2]);
    expect(r.refused[0]?.reason).toContain("never applied");
    expect(r.scopes).toEqual([
      { scope: "ghcr.io/acme", globs: [0], missing: ["the repository ghcr.io/acme itself"] },
      { scope: "quay.io/vendor", globs: [1], missing: ["the repositories below quay.io/vendor"] },
    ]);
  });
});

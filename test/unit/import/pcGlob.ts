// The oracle for the import's glob table: policy-controller's matcher, re-implemented from
// pkg/apis/glob/glob.go (Compile: the `*`, `*/*` rewrites, `.` literal, `**` any characters, `*`
// any characters but `/`, whole string) and applied, as pkg/webhook/validator.go does, to the
// fully qualified digest reference of an image (`index.docker.io/library/busybox@sha256:...`).
// And containers-image's scope match, from the compiler's own fallback chain.

import { fallbackChain, parseImage } from "../../../src/compiler/scopes.ts";

export function pcMatches(glob: string, reference: string): boolean {
  const g =
    glob === "*/*" ? "index.docker.io/*/*" : glob === "*" ? "index.docker.io/library/*" : glob;
  const source = g
    .replaceAll(".", "\\.")
    .replaceAll("**", "#")
    .replaceAll("*", "[^/]*")
    .replaceAll("#", ".*");
  return new RegExp(`^${source}$`).test(reference);
}

/** Whether scope `scope` (normalised, "" for `*`) decides or contains the image. */
export function scopeCovers(scope: string, reference: string): boolean {
  const p = parseImage(reference);
  if (!p.ok) throw new Error(`bad sample ${reference}: ${p.reason}`);
  return fallbackChain(p.reference).includes(scope);
}

export const D1 = `sha256:${"a".repeat(64)}`;
export const D2 = `sha256:${"b".repeat(64)}`;

/** Repositories as policy-controller names them: fully qualified, Docker Hub as index.docker.io. */
export const REPOSITORIES = [
  "index.docker.io/library/busybox",
  "index.docker.io/library/nginx",
  "index.docker.io/acme/app",
  "index.docker.io/bitnami/redis",
  "ghcr.io/acme",
  "ghcr.io/acme/app",
  "ghcr.io/acme/app/sub",
  "ghcr.io/acme/app-tools",
  "ghcr.io/acme/tools",
  "ghcr.io/acmex/app",
  "ghcr.io/other/tool",
  "registry.acme.example/teams",
  "registry.acme.example/teams/a",
  "registry.acme.example/teams/a/b",
  "registry.acme.example/base/os",
  "registry.acme.example:5000/teams/a",
  "registry.k8s.io/pause",
  "registry.k8s.io/pause/sub",
  "quay.io/vendor",
  "quay.io/vendor/app",
  "localhost/x",
  "localhost:5000/x",
  "10.0.0.1:5000/x/y",
  "a.internal.example/x",
  "a.b.internal.example/x",
  "a.internal.example:5000/x",
  "internal.example/x",
];

export const SAMPLES: readonly string[] = REPOSITORIES.flatMap((r) => [`${r}@${D1}`, `${r}@${D2}`]);

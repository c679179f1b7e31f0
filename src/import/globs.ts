// sigstore policy-controller image globs -> containers-image scopes (pure).
//
// What a glob matches in policy-controller (pkg/apis/glob/glob.go and pkg/webhook/validator.go):
// the admission webhook first resolves every container image to a digest and refuses any image
// that is not a digest reference, then matches each glob, as a whole-string regular expression,
// against the fully qualified name of that reference: `REPOSITORY@sha256:HEX`, where REPOSITORY
// starts with the registry host and Docker Hub is spelled `index.docker.io` (`busybox` becomes
// `index.docker.io/library/busybox`). In a glob `*` matches any run of characters except `/`
// (including none, and including `:` and `@`), `**` matches any run of characters, `.` is
// literal, and the whole globs `*` and `*/*` are rewritten to `index.docker.io/library/*` and
// `index.docker.io/*/*`. Tags never reach the matcher.
//
// What a scope matches in containers-image (compiler/scopes.ts fallbackChain): `H` every
// repository on host H (exact port), `H/P` the repository H/P AND every repository below it,
// `H/P@sha256:X` one digest, `*.D` every host under D with any port, `*` (compiled to "") every
// image. A scope cannot tell the repository H/P apart from the repositories below it, so a glob
// that covers one and not the other maps to a scope that covers more ("wider"): the import only
// uses such a scope when the user asks for it (--widen-globs) or when another glob of the same
// policy covers the difference. docs/import.md holds the table; test/unit/import/globs.test.ts
// checks every row against a re-implementation of policy-controller's matcher.

import { fallbackChain, parseScope, type Scope } from "../compiler/scopes.ts";

/** Which images of its scope a glob covers. */
export type Coverage =
  /** every image the scope matches */
  | "all"
  /** the repository the scope names, not the repositories below it */
  | "repository"
  /** the repositories below the scope, not the repository it names */
  | "below"
  /** some other strict subset, described by `missing` */
  | "partial";

export type GlobMapping =
  | {
      readonly ok: true;
      readonly scope: Scope;
      readonly coverage: Coverage;
      /** What the scope covers that the glob does not (coverage other than "all"). */
      readonly missing?: string;
    }
  | { readonly ok: false; readonly reason: string };

// policy-controller's own check of a glob's characters (pkg/apis/glob/glob.go validGlob).
const VALID_GLOB = /^[a-zA-Z0-9\-_:/*.@]+$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOCKER_HUB = "index.docker.io";
const ANY_DIGEST = new Set(["*", "**", "sha256:*", "sha256:**"]);

const refuse = (reason: string): GlobMapping => ({ ok: false, reason });

function scopeOf(text: string): { ok: true; scope: Scope } | { ok: false; reason: string } {
  const p = parseScope(text);
  return p.ok
    ? p
    : { ok: false, reason: `${JSON.stringify(text)} is not a valid scope: ${p.reason}` };
}

function mapped(text: string, coverage: Coverage, missing?: string): GlobMapping {
  const s = scopeOf(text);
  if (!s.ok) return refuse(s.reason);
  if (s.scope !== text) {
    // Every text built here is already in the scope's canonical form; refuse rather than guess.
    return refuse(
      `the scope would be ${JSON.stringify(text)}, which this project reads as ${JSON.stringify(s.scope)}`,
    );
  }
  return missing === undefined
    ? { ok: true, scope: s.scope, coverage }
    : { ok: true, scope: s.scope, coverage, missing };
}

/** go-containerregistry reads the first component as a registry only when it has a `.` or a `:`
 * or is `localhost`; anything else is a Docker Hub path. */
function isRegistryHost(component: string): boolean {
  return component.includes(".") || component.includes(":") || component === "localhost";
}

/** The scope, and how much of it, a policy-controller glob covers; or why there is none. */
export function mapGlob(input: string): GlobMapping {
  if (!VALID_GLOB.test(input)) {
    return refuse("policy-controller refuses this glob (letters, digits and - _ : / * . @ only)");
  }
  // policy-controller's two rewrites of unqualified globs.
  const glob =
    input === "*/*" ? `${DOCKER_HUB}/*/*` : input === "*" ? `${DOCKER_HUB}/library/*` : input;
  if (glob === "**" || glob === "*/**") return { ok: true, scope: "", coverage: "all" };

  const at = glob.indexOf("@");
  const name = at === -1 ? glob : glob.slice(0, at);
  const digest = at === -1 ? null : glob.slice(at + 1);
  const segments = name.split("/");
  const host = segments[0] ?? "";
  const path = segments.slice(1);

  if (host.includes("*")) {
    const wildcard = /^\*\.([^*]+)$/.exec(host);
    if (wildcard?.[1] !== undefined && path.length === 1 && path[0] === "**" && digest === null) {
      return mapped(
        `*.${wildcard[1]}`,
        "partial",
        `hosts under ${wildcard[1]} written with a port (the glob needs "/" right after the domain)`,
      );
    }
    return refuse(
      'a wildcard in the registry host has a scope only as "*.domain/**" (every host under domain)',
    );
  }
  if (host === "docker.io") {
    return refuse(
      `policy-controller names Docker Hub images ${DOCKER_HUB}/..., so a glob starting with docker.io/ matches no image; the policy never applied`,
    );
  }
  if (!isRegistryHost(host)) {
    return refuse(
      `policy-controller matches the fully qualified name (${DOCKER_HUB}/library/busybox@sha256:...); ${JSON.stringify(host)} is not a registry host, so this glob matches no image and the policy never applied`,
    );
  }
  if (path.length === 0) {
    return refuse(
      "policy-controller matches REPOSITORY@sha256:...; a glob that is a bare host matches no image, so the policy never applied",
    );
  }
  const scopeHost = host === DOCKER_HUB ? "docker.io" : host;
  const dockerHub = host === DOCKER_HUB;
  const last = path[path.length - 1] ?? "";
  const parents = path.slice(0, -1);
  const wildParents = parents.filter((p) => p.includes("*"));

  if (digest !== null) {
    if (name.includes("*")) {
      return refuse('a wildcard before "@" has no scope: scopes match whole repository names');
    }
    if (dockerHub && path.length === 1) {
      return refuse(
        `policy-controller names Docker Hub images ${DOCKER_HUB}/NAMESPACE/NAME (${DOCKER_HUB}/library/${path[0] ?? ""}), so this glob matches no image; the policy never applied`,
      );
    }
    const repository = [scopeHost, ...path].join("/");
    if (SHA256_DIGEST.test(digest)) return mapped(`${repository}@${digest}`, "all");
    if (ANY_DIGEST.has(digest)) {
      // Docker Hub repositories are always namespace/name: nothing exists below them.
      return dockerHub && path.length === 2
        ? mapped(repository, "all")
        : mapped(repository, "repository", `the repositories below ${repository}`);
    }
    return refuse(
      `after "@" only sha256:<64 hex digits>, *, **, sha256:* or sha256:** have a scope (policy-controller resolves every image to a sha256 digest)`,
    );
  }

  // Docker Hub written with wildcards for both components: every Docker Hub image.
  if (dockerHub && path.length === 2 && path[0] === "*" && (last === "*" || last === "**")) {
    return mapped("docker.io", "all");
  }
  if (wildParents.length > 0) {
    return refuse(
      "a wildcard in the middle of the path has no scope: scopes match a host, a repository or a namespace",
    );
  }
  if (last === "**") {
    if (parents.length === 0) return mapped(scopeHost, "all");
    const namespace = [scopeHost, ...parents].join("/");
    return dockerHub && parents.length === 1
      ? mapped(namespace, "all")
      : mapped(namespace, "below", `the repository ${namespace} itself`);
  }
  if (last === "*") {
    if (dockerHub && parents.length === 1) return mapped(`docker.io/${parents[0] ?? ""}`, "all");
    if (dockerHub && parents.length === 0) {
      return refuse(
        `policy-controller names every Docker Hub image ${DOCKER_HUB}/NAMESPACE/NAME, so "${DOCKER_HUB}/*" matches no image; the policy never applied`,
      );
    }
    const namespace = [scopeHost, ...parents].join("/");
    return mapped(
      namespace,
      "partial",
      parents.length === 0
        ? `repositories more than one level below ${namespace}`
        : `the repository ${namespace} itself and repositories more than one level below it`,
    );
  }
  const colon = last.indexOf(":");
  if (colon !== -1 && !last.slice(0, colon).includes("*")) {
    return refuse(
      "policy-controller resolves tags to digests before matching, so a glob naming a tag matches no image; the policy never applied",
    );
  }
  if (last.includes("*")) {
    return refuse(
      `a partial wildcard (${JSON.stringify(last)}) has no scope: scopes match whole path components`,
    );
  }
  return refuse(
    'a glob without a wildcard or "@" matches no image in policy-controller (it matches REPOSITORY@sha256:...), so the policy never applied; REPOSITORY@** names the repository',
  );
}

export interface ScopeChoice {
  readonly scope: Scope;
  /** The indices of the globs that produced it. */
  readonly globs: readonly number[];
  /** Empty when the globs of the policy cover every image of the scope. */
  readonly missing: readonly string[];
}

export interface GlobsResult {
  readonly scopes: readonly ScopeChoice[];
  readonly refused: readonly { readonly index: number; readonly reason: string }[];
}

/** Maps all globs of one policy. A scope is exact when its globs together cover all of it
 * (`H/P/**` with `H/P@**`), or when another of the policy's scopes covers the difference
 * (`ghcr.io/**` beside `ghcr.io/org/**`). */
export function mapGlobs(globs: readonly string[]): GlobsResult {
  const byScope = new Map<Scope, { globs: number[]; coverage: Set<Coverage>; missing: string[] }>();
  const refused: { index: number; reason: string }[] = [];
  globs.forEach((glob, index) => {
    const m = mapGlob(glob);
    if (!m.ok) {
      refused.push({ index, reason: m.reason });
      return;
    }
    const e = byScope.get(m.scope) ?? { globs: [], coverage: new Set(), missing: [] };
    e.globs.push(index);
    e.coverage.add(m.coverage);
    if (m.missing !== undefined) e.missing.push(m.missing);
    byScope.set(m.scope, e);
  });
  const complete = (c: ReadonlySet<Coverage>): boolean =>
    c.has("all") || (c.has("repository") && c.has("below"));
  const exact = new Set([...byScope].filter(([, e]) => complete(e.coverage)).map(([s]) => s));
  const scopes: ScopeChoice[] = [...byScope]
    .map(([scope, e]) => {
      const coveredByParent = fallbackChain(scope)
        .slice(1)
        .some((parent) => exact.has(parent));
      return {
        scope,
        globs: e.globs,
        missing: exact.has(scope) || coveredByParent ? [] : [...new Set(e.missing)],
      };
    })
    .sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0));
  return { scopes, refused };
}

// Image scopes: parsing, normalisation and the fallback chain containers/image walks.
//
// containers/image (docker transport, PolicyConfigurationIdentity / PolicyConfigurationNamespaces)
// looks an image up under its full reference (with tag or digest), then the repository, then each
// parent namespace, then the host[:port], then `*.` wildcards of the host without its port from
// longest to shortest, then the transport default "". The most specific scope present decides;
// broader scopes are never consulted (containers-policy.json(5), "Policy Requirements" and the
// `docker` transport section). The compiler reproduces that walk exactly: docs/design.md rule 3.

/** A normalised scope: "" (the `*` scope), "*.domain", "host[:port]" or
 * "host[:port]/path[:tag|@digest]". */
export type Scope = string;

export type ScopeParse = { ok: true; scope: Scope } | { ok: false; reason: string };

const LABEL = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?";
const DOMAIN_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const PORT_RE = /^(?:[1-9][0-9]{0,4})$/;
const COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST_RE = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
/** The API bounds a scope at 512 characters (src/api/policy.ts); normalising a Docker Hub short
 * name adds "docker.io/library/". A longer scope never comes from an admitted object. */
const MAX_SCOPE = 512 + "docker.io/library/".length;

function isDomainComponent(first: string): boolean {
  return first.includes(".") || first.includes(":") || first === "localhost";
}

function checkHost(hostPort: string): string | null {
  const colon = hostPort.lastIndexOf(":");
  const host = colon === -1 ? hostPort : hostPort.slice(0, colon);
  const port = colon === -1 ? null : hostPort.slice(colon + 1);
  if (host.startsWith("[")) return "IPv6 hosts are not supported in scopes";
  if (!DOMAIN_RE.test(host)) {
    return `invalid host ${JSON.stringify(host)} (lowercase DNS name, localhost or IPv4 address)`;
  }
  if (port !== null && (!PORT_RE.test(port) || Number(port) > 65535)) {
    return `invalid port ${JSON.stringify(port)}`;
  }
  return null;
}

/** Without any "/", docker's grammar would read every name as a Docker Hub repository; a scope
 * may also be a bare host, recognised by a dot, `localhost`, or a numeric port. "busybox:1.36" stays
 * a short name with a tag. */
function isBareHost(first: string): boolean {
  const colon = first.indexOf(":");
  const host = colon === -1 ? first : first.slice(0, colon);
  if (host.includes(".") || host === "localhost") return true;
  // "name:20" is a host with a port only if the name can be a host; "my_app:20" is a Docker Hub
  // short name with a tag, as docker's grammar and the API's scope pattern read it.
  return colon !== -1 && /^[0-9]+$/.test(first.slice(colon + 1)) && DOMAIN_RE.test(host);
}

interface Parts {
  hostPort: string;
  path: string[];
  tag: string | null;
  digest: string | null;
}

/** How a Docker Hub name with an explicit host and one path component (`docker.io/bitnami`)
 * reads. As an image or repository it is the official image (`docker.io/library/bitnami`), as
 * Docker normalises references. As a scope or an identity prefix it is a namespace, matched as a
 * prefix of the fully expanded reference, which is how containers-policy.json(5) reads such a
 * scope ("docker.io/bitnami" covers docker.io/bitnami/redis) and how OpenShift writes it. A name
 * without a host (`busybox`, `bitnami/redis`) is expanded the Docker way in both cases. */
type HubNames = "images" | "prefixes";

function splitReference(input: string, hub: HubNames): Parts | string {
  let rest = input;
  let digest: string | null = null;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) return `invalid digest ${JSON.stringify(digest)}`;
  }
  const slash = rest.indexOf("/");
  const first = slash === -1 ? rest : rest.slice(0, slash);
  let hostPort: string;
  let pathText: string;
  let explicitHost = true;
  if (slash === -1 && digest === null && isBareHost(first)) {
    // A bare host[:port]: "reg.example.com", "localhost:5000", "10.0.0.1:5000", "registry:5000".
    hostPort = first;
    pathText = "";
  } else if (isDomainComponent(first) && slash !== -1) {
    hostPort = first;
    pathText = rest.slice(slash + 1);
  } else {
    hostPort = "docker.io";
    pathText = rest;
    explicitHost = false;
  }
  if (hostPort === "index.docker.io") hostPort = "docker.io";
  let tag: string | null = null;
  const lastSlash = pathText.lastIndexOf("/");
  const colon = pathText.indexOf(":", lastSlash + 1);
  if (colon !== -1) {
    tag = pathText.slice(colon + 1);
    pathText = pathText.slice(0, colon);
    if (!TAG_RE.test(tag)) return `invalid tag ${JSON.stringify(tag)}`;
  }
  if (tag !== null && digest !== null) return "a scope cannot carry both a tag and a digest";
  const path = pathText === "" ? [] : pathText.split("/");
  for (const c of path) {
    if (!COMPONENT_RE.test(c)) {
      return `invalid path component ${JSON.stringify(c)} (lowercase letters, digits and separators)`;
    }
  }
  if (hostPort === "docker.io" && path.length === 1 && (hub === "images" || !explicitHost)) {
    path.unshift("library");
  }
  const hostError = checkHost(hostPort);
  if (hostError !== null) return hostError;
  if (path.length === 0 && (tag !== null || digest !== null)) {
    return "a tag or digest needs a repository";
  }
  return { hostPort, path, tag, digest };
}

function render(p: Parts): string {
  const name = [p.hostPort, ...p.path].join("/");
  if (p.tag !== null) return `${name}:${p.tag}`;
  if (p.digest !== null) return `${name}@${p.digest}`;
  return name;
}

/** Parses a scope as users write it (`*`, `*.example.com`, `reg:5000/ns/app:tag`, `busybox`). */
export function parseScope(input: string): ScopeParse {
  if (input === "*") return { ok: true, scope: "" };
  if (input.trim() !== input || input === "") return { ok: false, reason: "empty or padded scope" };
  if (input.startsWith("*.")) {
    const domain = input.slice(2);
    if (!DOMAIN_RE.test(domain)) {
      return {
        ok: false,
        reason: `invalid wildcard ${JSON.stringify(input)}: "*." must be followed by a lowercase domain, with no port or path`,
      };
    }
    return { ok: true, scope: input };
  }
  if (input.includes("*")) {
    return {
      ok: false,
      reason: `"*" is allowed only as the whole scope or as a leading "*." label`,
    };
  }
  const parts = splitReference(input, "prefixes");
  if (typeof parts === "string") return { ok: false, reason: parts };
  const scope = render(parts);
  if (scope.length > MAX_SCOPE) return { ok: false, reason: "scope too long" };
  return { ok: true, scope };
}

export type ImageParse =
  { ok: true; reference: string; repository: string } | { ok: false; reason: string };

/** Parses an image reference as a pull names it; a reference without tag or digest gets
 * `:latest`, as the docker transport does. */
export function parseImage(input: string): ImageParse {
  if (input.includes("*")) return { ok: false, reason: "an image reference has no wildcards" };
  const parts = splitReference(input, "images");
  if (typeof parts === "string") return { ok: false, reason: parts };
  if (parts.path.length === 0)
    return { ok: false, reason: "an image reference needs a repository" };
  if (parts.tag === null && parts.digest === null) parts.tag = "latest";
  return {
    ok: true,
    reference: render(parts),
    repository: [parts.hostPort, ...parts.path].join("/"),
  };
}

function hostWildcards(hostPort: string): string[] {
  const colon = hostPort.lastIndexOf(":");
  let host = colon === -1 ? hostPort : hostPort.slice(0, colon);
  const out: string[] = [];
  for (;;) {
    const dot = host.indexOf(".");
    if (dot === -1) return out;
    host = host.slice(dot + 1);
    out.push(`*.${host}`);
  }
}

/** The scopes containers/image consults for a scope or image reference, most specific first,
 * ending with "" (the transport default). */
export function fallbackChain(scope: Scope): Scope[] {
  if (scope === "") return [""];
  if (scope.startsWith("*.")) return [scope, ...hostWildcards(scope.slice(2)), ""];
  const at = scope.indexOf("@");
  const base = at === -1 ? scope : scope.slice(0, at);
  const lastSlash = base.lastIndexOf("/");
  const colon = lastSlash === -1 ? -1 : base.indexOf(":", lastSlash);
  const repository = at !== -1 ? base : colon !== -1 ? base.slice(0, colon) : base;
  const chain: Scope[] = repository === scope ? [] : [scope];
  let candidate = repository;
  for (;;) {
    chain.push(candidate);
    const slash = candidate.lastIndexOf("/");
    if (slash === -1) break;
    candidate = candidate.slice(0, slash);
  }
  chain.push(...hostWildcards(candidate), "");
  return chain;
}

/** Total order for output: "" first, then lexicographic. */
export function compareScopes(a: Scope, b: Scope): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export type NameParse = { ok: true; name: string } | { ok: false; reason: string };

function parseName(
  input: string,
  want: {
    path: "required" | "optional";
    tagOrDigest: "required" | "forbidden";
    hub: HubNames;
  },
): NameParse {
  if (input.includes("*")) return { ok: false, reason: "wildcards are not allowed here" };
  const parts = splitReference(input, want.hub);
  if (typeof parts === "string") return { ok: false, reason: parts };
  if (want.path === "required" && parts.path.length === 0) {
    return { ok: false, reason: "a repository path is required" };
  }
  const tagged = parts.tag !== null || parts.digest !== null;
  if (want.tagOrDigest === "required" && !tagged) {
    return { ok: false, reason: "a tag or digest is required" };
  }
  if (want.tagOrDigest === "forbidden" && tagged) {
    return { ok: false, reason: "a tag or digest is not allowed here" };
  }
  return { ok: true, name: render(parts) };
}

/** `exactRepository.dockerRepository`: a repository, no tag or digest. */
export const parseRepositoryName = (input: string): NameParse =>
  parseName(input, { path: "required", tagOrDigest: "forbidden", hub: "images" });

/** `remapIdentity` prefixes: a host[:port] or a repository namespace, no tag or digest. */
export const parseIdentityPrefix = (input: string): NameParse =>
  parseName(input, { path: "optional", tagOrDigest: "forbidden", hub: "prefixes" });

/** `exactReference.dockerReference`: a repository with an explicit tag or digest. */
export const parseExactReference = (input: string): NameParse =>
  parseName(input, { path: "required", tagOrDigest: "required", hub: "images" });

// Mirrors from containers-registries.conf(5): which other locations an image of a scope may be
// pulled from. containers/image looks up registries.d by the location it actually pulls from, so
// a scope that needs `use-sigstore-attachments` needs it on its mirrors' locations too.
//
// Read: `[[registry]]` tables' `prefix` (or `location` when there is no prefix), `location`, and
// their `[[registry.mirror]]` `location`s, from registries.conf and then the drop-ins in
// `<registries.conf>.d/*.conf` in name order (a later entry with the same prefix replaces an
// earlier one, as containers/image does). Limits: the v1 format (`[registries.search]` etc.) has
// no mirrors and is ignored; `$HOME` configurations are not read (CRI-O does not use them).

import { tomlGet, tomlTables, type TomlTable } from "./toml.ts";

export interface RegistryMirrors {
  /** The prefix images are matched against: `host[:port][/path]` or `*.domain`. */
  readonly prefix: string;
  /** Where the prefix is rewritten to when pulling (absent for wildcard prefixes). */
  readonly location?: string;
  readonly mirrors: readonly string[];
}

export class RegistriesConfError extends Error {
  override readonly name = "RegistriesConfError";
}

function str(t: TomlTable, key: string, where: string): string | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new RegistriesConfError(`${where}: ${key} is not a string`);
  return v;
}

/** The `[[registry]]` entries of one parsed file, in file order. */
export function registriesFrom(doc: TomlTable, file: string): RegistryMirrors[] {
  return tomlTables(tomlGet(doc, "registry")).map((r, i) => {
    const where = `${file}: registry[${String(i)}]`;
    const location = str(r, "location", where);
    const prefix = str(r, "prefix", where) ?? location;
    if (prefix === undefined || prefix === "") {
      throw new RegistriesConfError(`${where}: needs a prefix or a location`);
    }
    const mirrors = tomlTables(r.mirror).flatMap((m, j) => {
      const l = str(m, "location", `${where}.mirror[${String(j)}]`);
      return l === undefined || l === "" ? [] : [l];
    });
    return {
      prefix,
      ...(location === undefined || prefix.startsWith("*.") ? {} : { location }),
      mirrors,
    };
  });
}

/** Later entries replace earlier ones with the same prefix. */
export function mergeRegistries(files: readonly (readonly RegistryMirrors[])[]): RegistryMirrors[] {
  const byPrefix = new Map<string, RegistryMirrors>();
  for (const f of files) for (const r of f) byPrefix.set(r.prefix, r);
  return [...byPrefix.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
}

function hostOf(scope: string): string {
  const slash = scope.indexOf("/");
  const hostPort = slash === -1 ? scope : scope.slice(0, slash);
  const colon = hostPort.lastIndexOf(":");
  return colon === -1 ? hostPort : hostPort.slice(0, colon);
}

/** `inner` is `outer` or below it (a repository under a namespace, a tag or digest of it). */
function within(inner: string, outer: string): boolean {
  if (inner === outer) return true;
  if (!inner.startsWith(outer)) return false;
  const next = inner[outer.length];
  // `host:port` is not below `host`, but `host/repo:tag` is below `host/repo`.
  if (next === "/" || next === "@") return true;
  return next === ":" && outer.includes("/");
}

function matchesWildcard(host: string, wildcard: string): boolean {
  return host.endsWith(wildcard.slice(1));
}

/** The registries.d scopes, besides `scope` itself, that pulls of images in `scope` may go
 * through. A mirror of a prefix below `scope` serves part of it, so its whole location counts.
 * May over-approximate (a broader scope than needed), never under-approximate for the cases
 * handled: exact and wildcard scopes and prefixes. "" (default-docker) covers every location. */
export function mirrorScopes(scope: string, registries: readonly RegistryMirrors[]): string[] {
  if (scope === "") return [];
  const out = new Set<string>();
  for (const r of registries) {
    const targets = [
      ...(r.location !== undefined && r.location !== r.prefix ? [r.location] : []),
      ...r.mirrors,
    ];
    if (targets.length === 0) continue;
    if (scope.startsWith("*.")) {
      const prefixHost = r.prefix.startsWith("*.") ? r.prefix.slice(1) : `.${hostOf(r.prefix)}`;
      if (prefixHost.endsWith(scope.slice(1))) for (const t of targets) out.add(t);
    } else if (r.prefix.startsWith("*.")) {
      if (matchesWildcard(hostOf(scope), r.prefix)) for (const t of targets) out.add(t);
    } else if (within(scope, r.prefix)) {
      const rest = scope.slice(r.prefix.length);
      for (const t of targets) out.add(t + rest);
    } else if (within(r.prefix, scope)) {
      for (const t of targets) out.add(t);
    }
  }
  out.delete(scope);
  return [...out].sort();
}

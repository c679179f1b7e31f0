// A compiled layer: the cluster layer (all ClusterImagePolicies) or one namespace's layer (its
// ImagePolicies), each policy in its validated, normalised form. This is what the controller
// publishes and what every agent combines for its own CRI-O version (docs/design.md "Data flow");
// it also remembers each object's last accepted form. Serialised canonically, parsed strictly.
//
// The types below (and Requirement, SignedIdentity) are the one definition of the format;
// parseLayer builds values of them field by field, so the compiler checks the parser against the
// types (no schema joined to a type by a cast). It is written by hand, not with zod, because every
// agent runs it on its node (docs/scale.md: zod is ~6 MiB of resident memory and slower here).

import { canonicalJson } from "../canonicalJson.ts";
import type { SignedIdentity } from "../policyjson/types.ts";
import { parseStrictJson } from "../strictJson.ts";
import type { Requirement } from "./requirements.ts";
import type { Scope } from "./scopes.ts";

export interface LayerPolicy {
  readonly name: string;
  /** metadata.generation of the accepted form. */
  readonly generation?: number;
  /** Normalised scopes, sorted and deduplicated. */
  readonly scopes: readonly Scope[];
  readonly requirement: Requirement;
}

export interface Layer {
  /** Absent for the cluster layer. */
  readonly namespace?: string;
  /** Sorted by name. */
  readonly policies: readonly LayerPolicy[];
}

export function makeLayer(namespace: string | undefined, policies: Iterable<LayerPolicy>): Layer {
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return namespace === undefined ? { policies: sorted } : { namespace, policies: sorted };
}

export const EMPTY_CLUSTER_LAYER: Layer = { policies: [] };

export class LayerParseError extends Error {
  override readonly name = "LayerParseError";
  /** Where in the layer, e.g. `policies[3].requirement.keys[0]`. */
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(`invalid layer: ${path}: ${message}`, options);
    this.path = path;
  }
}

export function serializeLayer(layer: Layer): string {
  return canonicalJson(layer);
}

export function parseLayer(text: string): Layer {
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (cause) {
    throw new LayerParseError("$", `not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const o = fields(value, "$", ["namespace", "policies"]);
  const namespace = optional(o, "namespace", "$", (v, p) => boundedString(v, p, 63));
  const list = o["policies"];
  if (!Array.isArray(list)) throw new LayerParseError("$.policies", "expected a list");
  const policies = list.map((p, i) => parsePolicy(p, `$.policies[${i}]`));
  return namespace === undefined ? { policies } : { namespace, policies };
}

// ---------------------------------------------------------------------------------------------

type Fields = Readonly<Record<string, unknown>>;

function isFields(v: unknown): v is Fields {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An object with only `allowed` keys (JSON.parse gives plain objects). */
function fields(v: unknown, path: string, allowed: readonly string[]): Fields {
  if (!isFields(v)) throw new LayerParseError(path, "expected an object");
  for (const key of Object.keys(v)) {
    if (!allowed.includes(key)) throw new LayerParseError(`${path}.${key}`, "unknown field");
  }
  return v;
}

function optional<T>(
  o: Fields,
  key: string,
  path: string,
  parse: (v: unknown, path: string) => T,
): T | undefined {
  const v = o[key];
  return v === undefined ? undefined : parse(v, `${path}.${key}`);
}

function required<T>(
  o: Fields,
  key: string,
  path: string,
  parse: (v: unknown, path: string) => T,
): T {
  const v = o[key];
  if (v === undefined) throw new LayerParseError(`${path}.${key}`, "required");
  return parse(v, `${path}.${key}`);
}

function boundedString(v: unknown, path: string, max = Infinity): string {
  if (typeof v !== "string" || v === "")
    throw new LayerParseError(path, "expected a non-empty string");
  if (v.length > max) throw new LayerParseError(path, `longer than ${max} characters`);
  return v;
}

const nonEmpty = (v: unknown, path: string): string => boundedString(v, path);

/** Standard base64 with padding, as key and CA data are carried. */
const BASE64 = /^(?:[0-9a-zA-Z+/]{4})*(?:[0-9a-zA-Z+/]{2}==|[0-9a-zA-Z+/]{3}=)?$/;

function base64(v: unknown, path: string): string {
  const s = nonEmpty(v, path);
  if (!BASE64.test(s)) throw new LayerParseError(path, "expected base64 data");
  return s;
}

function list<T>(
  v: unknown,
  path: string,
  item: (v: unknown, path: string) => T,
  min: number,
): T[] {
  if (!Array.isArray(v)) throw new LayerParseError(path, "expected a list");
  if (v.length < min) throw new LayerParseError(path, `expected at least ${min} item(s)`);
  return v.map((x, i) => item(x, `${path}[${i}]`));
}

const base64List = (v: unknown, path: string): string[] => list(v, path, base64, 1);

function scope(v: unknown, path: string): Scope {
  if (typeof v !== "string") throw new LayerParseError(path, "expected a string");
  return v;
}

function parsePolicy(v: unknown, path: string): LayerPolicy {
  const o = fields(v, path, ["name", "generation", "scopes", "requirement"]);
  const name = required(o, "name", path, (x, p) => boundedString(x, p, 253));
  const generation = optional(o, "generation", path, (x, p) => {
    if (typeof x !== "number" || !Number.isSafeInteger(x)) {
      throw new LayerParseError(p, "expected an integer");
    }
    return x;
  });
  const scopes = required(o, "scopes", path, (x, p) => list(x, p, scope, 1));
  const requirement = required(o, "requirement", path, parseRequirement);
  return generation === undefined
    ? { name, scopes, requirement }
    : { name, generation, scopes, requirement };
}

function parseIdentity(v: unknown, path: string): SignedIdentity {
  const t = fields(v, path, [
    "type",
    "dockerReference",
    "dockerRepository",
    "prefix",
    "signedPrefix",
  ])["type"];
  switch (t) {
    case "matchExact":
    case "matchRepoDigestOrExact":
    case "matchRepository":
      fields(v, path, ["type"]);
      return { type: t };
    case "exactReference": {
      const o = fields(v, path, ["type", "dockerReference"]);
      return { type: t, dockerReference: required(o, "dockerReference", path, nonEmpty) };
    }
    case "exactRepository": {
      const o = fields(v, path, ["type", "dockerRepository"]);
      return { type: t, dockerRepository: required(o, "dockerRepository", path, nonEmpty) };
    }
    case "remapIdentity": {
      const o = fields(v, path, ["type", "prefix", "signedPrefix"]);
      return {
        type: t,
        prefix: required(o, "prefix", path, nonEmpty),
        signedPrefix: required(o, "signedPrefix", path, nonEmpty),
      };
    }
    default:
      throw new LayerParseError(`${path}.type`, `unknown identity type ${JSON.stringify(t)}`);
  }
}

function withIdentity<T extends object>(
  o: Fields,
  path: string,
  r: T,
): T & { identity?: SignedIdentity } {
  const identity = optional(o, "identity", path, parseIdentity);
  return identity === undefined ? r : { ...r, identity };
}

function parseRequirement(v: unknown, path: string): Requirement {
  const kind = fields(v, path, [
    "kind",
    "keys",
    "rekorKeys",
    "identity",
    "caData",
    "oidcIssuer",
    "subjectEmail",
    "caRootsData",
    "caIntermediatesData",
    "subjectHostname",
    "keyring",
    "lookaside",
  ])["kind"];
  switch (kind) {
    case "reject":
    case "accept":
      fields(v, path, ["kind"]);
      return { kind };
    case "sigstoreKeys": {
      const o = fields(v, path, ["kind", "keys", "rekorKeys", "identity"]);
      const keys = required(o, "keys", path, base64List);
      const rekorKeys = optional(o, "rekorKeys", path, base64List);
      return withIdentity(o, path, {
        kind,
        keys,
        ...(rekorKeys === undefined ? {} : { rekorKeys }),
      });
    }
    case "fulcio": {
      const o = fields(v, path, [
        "kind",
        "caData",
        "rekorKeys",
        "oidcIssuer",
        "subjectEmail",
        "identity",
      ]);
      return withIdentity(o, path, {
        kind,
        caData: required(o, "caData", path, base64),
        rekorKeys: required(o, "rekorKeys", path, base64List),
        oidcIssuer: required(o, "oidcIssuer", path, nonEmpty),
        subjectEmail: required(o, "subjectEmail", path, nonEmpty),
      });
    }
    case "pki": {
      const o = fields(v, path, [
        "kind",
        "caRootsData",
        "caIntermediatesData",
        "subjectEmail",
        "subjectHostname",
        "identity",
      ]);
      const intermediates = optional(o, "caIntermediatesData", path, base64);
      const email = optional(o, "subjectEmail", path, nonEmpty);
      const hostname = optional(o, "subjectHostname", path, nonEmpty);
      return withIdentity(o, path, {
        kind,
        caRootsData: required(o, "caRootsData", path, base64),
        ...(intermediates === undefined ? {} : { caIntermediatesData: intermediates }),
        ...(email === undefined ? {} : { subjectEmail: email }),
        ...(hostname === undefined ? {} : { subjectHostname: hostname }),
      });
    }
    case "gpg": {
      const o = fields(v, path, ["kind", "keyring", "lookaside", "identity"]);
      const lookaside = optional(o, "lookaside", path, nonEmpty);
      return withIdentity(o, path, {
        kind,
        keyring: required(o, "keyring", path, base64),
        ...(lookaside === undefined ? {} : { lookaside }),
      });
    }
    default:
      throw new LayerParseError(`${path}.kind`, `unknown requirement kind ${JSON.stringify(kind)}`);
  }
}

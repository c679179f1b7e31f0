// Strict parser for containers-policy.json(5). Like containers/image's own parser it refuses
// unknown fields, duplicate keys, wrong types, empty requirement lists and every cardinality
// violation ("exactly one of ..."), because a policy that means something other than it says is
// worse than no policy. Used on every document the compiler emits (tests) and by the agent before
// every write.

import { parseStrictJson } from "../strictJson.ts";
import type {
  FulcioConfig,
  PkiConfig,
  Policy,
  PolicyRequirement,
  PolicyRequirements,
  PolicyTransportScopes,
  SignedBy,
  SignedIdentity,
  SigstoreSigned,
} from "./types.ts";

export class PolicyParseError extends Error {
  override readonly name = "PolicyParseError";
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(`${path}: ${message}`, options);
    this.path = path;
  }
}

type Obj = Record<string, unknown>;

function object(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new PolicyParseError(path, "expected an object");
  }
  for (const key of Object.keys(v)) {
    if (!allowed.includes(key)) throw new PolicyParseError(`${path}.${key}`, "unknown field");
  }
  return v as Obj;
}

function str(o: Obj, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") {
    throw new PolicyParseError(`${path}.${key}`, "expected a non-empty string");
  }
  return v;
}

function requiredStr(o: Obj, key: string, path: string): string {
  const v = str(o, key, path);
  if (v === undefined) throw new PolicyParseError(`${path}.${key}`, "required");
  return v;
}

function strList(o: Obj, key: string, path: string): string[] | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0) {
    throw new PolicyParseError(`${path}.${key}`, "expected a non-empty list");
  }
  return v.map((item, i) => {
    if (typeof item !== "string" || item === "") {
      throw new PolicyParseError(`${path}.${key}[${i}]`, "expected a non-empty string");
    }
    return item;
  });
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function base64(v: string | undefined, path: string): string | undefined {
  if (v !== undefined && !BASE64.test(v)) throw new PolicyParseError(path, "expected base64 data");
  return v;
}

function exactlyOne(o: Obj, keys: readonly string[], path: string): void {
  const present = keys.filter((k) => o[k] !== undefined);
  if (present.length !== 1) {
    throw new PolicyParseError(
      path,
      `exactly one of ${keys.join(", ")} must be specified (found ${present.length === 0 ? "none" : present.join(", ")})`,
    );
  }
}

function atMostOne(o: Obj, keys: readonly string[], path: string): void {
  const present = keys.filter((k) => o[k] !== undefined);
  if (present.length > 1) {
    throw new PolicyParseError(path, `at most one of ${present.join(", ")} may be specified`);
  }
}

/** Assigns only the defined entries, so optional fields stay absent (exactOptionalPropertyTypes). */
function defined<T extends Obj>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function parseIdentity(v: unknown, path: string): SignedIdentity {
  const typ = object(v, path, [
    "type",
    "dockerReference",
    "dockerRepository",
    "prefix",
    "signedPrefix",
  ]);
  const t = typ.type;
  switch (t) {
    case "matchExact":
    case "matchRepoDigestOrExact":
    case "matchRepository":
      object(v, path, ["type"]);
      return { type: t };
    case "exactReference":
      object(v, path, ["type", "dockerReference"]);
      return { type: t, dockerReference: requiredStr(typ, "dockerReference", path) };
    case "exactRepository":
      object(v, path, ["type", "dockerRepository"]);
      return { type: t, dockerRepository: requiredStr(typ, "dockerRepository", path) };
    case "remapIdentity":
      object(v, path, ["type", "prefix", "signedPrefix"]);
      return {
        type: t,
        prefix: requiredStr(typ, "prefix", path),
        signedPrefix: requiredStr(typ, "signedPrefix", path),
      };
    default:
      throw new PolicyParseError(
        `${path}.type`,
        `unknown signedIdentity type ${JSON.stringify(t)}`,
      );
  }
}

function parseFulcio(v: unknown, path: string): FulcioConfig {
  const o = object(v, path, ["caPath", "caData", "oidcIssuer", "subjectEmail"]);
  exactlyOne(o, ["caPath", "caData"], path);
  return defined({
    caPath: str(o, "caPath", path),
    caData: base64(str(o, "caData", path), `${path}.caData`),
    oidcIssuer: requiredStr(o, "oidcIssuer", path),
    subjectEmail: requiredStr(o, "subjectEmail", path),
  }) as FulcioConfig;
}

function parsePki(v: unknown, path: string): PkiConfig {
  const o = object(v, path, [
    "caRootsPath",
    "caRootsData",
    "caIntermediatesPath",
    "caIntermediatesData",
    "subjectEmail",
    "subjectHostname",
  ]);
  exactlyOne(o, ["caRootsPath", "caRootsData"], path);
  atMostOne(o, ["caIntermediatesPath", "caIntermediatesData"], path);
  if (o.subjectEmail === undefined && o.subjectHostname === undefined) {
    throw new PolicyParseError(
      path,
      "at least one of subjectEmail, subjectHostname must be specified",
    );
  }
  return defined({
    caRootsPath: str(o, "caRootsPath", path),
    caRootsData: base64(str(o, "caRootsData", path), `${path}.caRootsData`),
    caIntermediatesPath: str(o, "caIntermediatesPath", path),
    caIntermediatesData: base64(str(o, "caIntermediatesData", path), `${path}.caIntermediatesData`),
    subjectEmail: str(o, "subjectEmail", path),
    subjectHostname: str(o, "subjectHostname", path),
  }) as PkiConfig;
}

const SIGSTORE_KEYS = ["keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki"] as const;
const REKOR_KEYS = [
  "rekorPublicKeyPath",
  "rekorPublicKeyPaths",
  "rekorPublicKeyData",
  "rekorPublicKeyDatas",
] as const;

function base64List(list: string[] | undefined, path: string): string[] | undefined {
  list?.forEach((item, i) => base64(item, `${path}[${i}]`));
  return list;
}

function parseSigstore(v: unknown, path: string): SigstoreSigned {
  const o = object(v, path, ["type", ...SIGSTORE_KEYS, ...REKOR_KEYS, "signedIdentity"]);
  exactlyOne(o, SIGSTORE_KEYS, path);
  atMostOne(o, REKOR_KEYS, path);
  const hasRekor = REKOR_KEYS.some((k) => o[k] !== undefined);
  if (o.fulcio !== undefined && !hasRekor) {
    throw new PolicyParseError(path, "fulcio requires one of " + REKOR_KEYS.join(", "));
  }
  if (o.pki !== undefined && hasRekor) {
    throw new PolicyParseError(path, "rekor public keys are not supported with pki");
  }
  return defined({
    type: "sigstoreSigned",
    keyPath: str(o, "keyPath", path),
    keyPaths: strList(o, "keyPaths", path),
    keyData: base64(str(o, "keyData", path), `${path}.keyData`),
    keyDatas: base64List(strList(o, "keyDatas", path), `${path}.keyDatas`),
    fulcio: o.fulcio === undefined ? undefined : parseFulcio(o.fulcio, `${path}.fulcio`),
    pki: o.pki === undefined ? undefined : parsePki(o.pki, `${path}.pki`),
    rekorPublicKeyPath: str(o, "rekorPublicKeyPath", path),
    rekorPublicKeyPaths: strList(o, "rekorPublicKeyPaths", path),
    rekorPublicKeyData: base64(str(o, "rekorPublicKeyData", path), `${path}.rekorPublicKeyData`),
    rekorPublicKeyDatas: base64List(
      strList(o, "rekorPublicKeyDatas", path),
      `${path}.rekorPublicKeyDatas`,
    ),
    signedIdentity:
      o.signedIdentity === undefined
        ? undefined
        : parseIdentity(o.signedIdentity, `${path}.signedIdentity`),
  }) as SigstoreSigned;
}

function parseSignedBy(v: unknown, path: string): SignedBy {
  const o = object(v, path, [
    "type",
    "keyType",
    "keyPath",
    "keyPaths",
    "keyData",
    "signedIdentity",
  ]);
  if (o.keyType !== "GPGKeys") {
    throw new PolicyParseError(`${path}.keyType`, 'only "GPGKeys" is supported');
  }
  exactlyOne(o, ["keyPath", "keyPaths", "keyData"], path);
  return defined({
    type: "signedBy",
    keyType: "GPGKeys",
    keyPath: str(o, "keyPath", path),
    keyPaths: strList(o, "keyPaths", path),
    keyData: base64(str(o, "keyData", path), `${path}.keyData`),
    signedIdentity:
      o.signedIdentity === undefined
        ? undefined
        : parseIdentity(o.signedIdentity, `${path}.signedIdentity`),
  }) as SignedBy;
}

export function parseRequirement(v: unknown, path: string): PolicyRequirement {
  const o = object(v, path, ["type", "keyType", ...SIGSTORE_KEYS, ...REKOR_KEYS, "signedIdentity"]);
  switch (o.type) {
    case "insecureAcceptAnything":
    case "reject":
      object(v, path, ["type"]);
      return { type: o.type };
    case "signedBy":
      return parseSignedBy(v, path);
    case "sigstoreSigned":
      return parseSigstore(v, path);
    default:
      throw new PolicyParseError(
        `${path}.type`,
        `unknown requirement type ${JSON.stringify(o.type)}`,
      );
  }
}

function parseRequirements(v: unknown, path: string): PolicyRequirements {
  if (!Array.isArray(v) || v.length === 0) {
    throw new PolicyParseError(path, "expected a non-empty list of requirements");
  }
  const [first, ...rest] = v.map((item, i) => parseRequirement(item, `${path}[${i}]`));
  if (first === undefined) throw new PolicyParseError(path, "empty");
  return [first, ...rest];
}

function parseScopes(v: unknown, path: string): PolicyTransportScopes {
  const o = object(v, path, Object.keys(v ?? {}));
  const out: Record<string, PolicyRequirements> = {};
  for (const [scope, reqs] of Object.entries(o)) {
    out[scope] = parseRequirements(reqs, `${path}[${JSON.stringify(scope)}]`);
  }
  return out;
}

/** Parses a value already decoded from JSON. */
export function parsePolicy(v: unknown): Policy {
  const o = object(v, "$", ["default", "transports"]);
  if (o.default === undefined) throw new PolicyParseError("$.default", "required");
  const def = parseRequirements(o.default, "$.default");
  if (o.transports === undefined) return { default: def };
  const t = object(o.transports, "$.transports", Object.keys(o.transports ?? {}));
  const transports: Record<string, PolicyTransportScopes> = {};
  for (const [name, scopes] of Object.entries(t)) {
    transports[name] = parseScopes(scopes, `$.transports.${name}`);
  }
  return { default: def, transports };
}

/** Parses policy.json text: duplicate keys are errors. */
export function parsePolicyJson(text: string): Policy {
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (cause) {
    throw new PolicyParseError("$", (cause as Error).message, { cause });
  }
  return parsePolicy(value);
}

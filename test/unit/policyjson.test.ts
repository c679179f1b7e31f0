// The parser harness containers/image uses for its own parsers: a valid object, a list of
// "break" edits that must each be rejected, and duplicated fields that must be rejected.
import { describe, expect, it } from "vitest";
import { parsePolicy, parsePolicyJson } from "../../src/policyjson/parse.ts";

const KEY = Buffer.from("-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n").toString(
  "base64",
);

function valid(): Record<string, unknown> {
  return {
    default: [{ type: "insecureAcceptAnything" }],
    transports: {
      docker: {
        "": [{ type: "reject" }],
        "reg.io/app": [
          { type: "sigstoreSigned", keyData: KEY, signedIdentity: { type: "matchRepository" } },
          { type: "sigstoreSigned", keyDatas: [KEY, KEY], rekorPublicKeyData: KEY },
          {
            type: "sigstoreSigned",
            fulcio: { caData: KEY, oidcIssuer: "https://issuer", subjectEmail: "a@b.c" },
            rekorPublicKeyData: KEY,
          },
          { type: "sigstoreSigned", pki: { caRootsData: KEY, subjectHostname: "h" } },
          {
            type: "signedBy",
            keyType: "GPGKeys",
            keyData: KEY,
            signedIdentity: { type: "remapIdentity", prefix: "a.io", signedPrefix: "b.io" },
          },
        ],
      },
    },
  };
}

const DELETE = Symbol("delete");
type Path = readonly (string | number)[];
type Edit = [name: string, path: Path, value: unknown];

/** Sets (or deletes) the value at `path` inside a JSON-like object. */
function edit(root: Record<string, unknown>, path: Path, value: unknown): void {
  let node: unknown = root;
  for (const key of path.slice(0, -1)) node = (node as Record<string | number, unknown>)[key];
  const last = path.at(-1);
  if (last === undefined) throw new Error("empty path");
  const parent = node as Record<string | number, unknown>;
  if (value === DELETE) Reflect.deleteProperty(parent, last);
  else parent[last] = value;
}

const APP = ["transports", "docker", "reg.io/app"] as const;
const breaks: Edit[] = [
  ["unknown top-level field", ["extra"], 1],
  ["missing default", ["default"], DELETE],
  ["empty default", ["default"], []],
  ["default not a list", ["default"], {}],
  ["unknown requirement type", ["default"], [{ type: "signedByAnything" }]],
  ["reject with a field", ["default"], [{ type: "reject", keyData: KEY }]],
  ["empty scope list", ["transports", "docker", "x.io"], []],
  ["sigstore without key", [...APP, 0], { type: "sigstoreSigned" }],
  ["sigstore with two key sources", [...APP, 0, "keyPath"], "/k"],
  ["keyData not base64", [...APP, 0, "keyData"], "not base64!"],
  ["keyDatas empty", [...APP, 1, "keyDatas"], []],
  ["two rekor fields", [...APP, 1, "rekorPublicKeyDatas"], [KEY]],
  ["fulcio without rekor", [...APP, 2, "rekorPublicKeyData"], DELETE],
  ["fulcio without email", [...APP, 2, "fulcio", "subjectEmail"], DELETE],
  ["fulcio unknown field", [...APP, 2, "fulcio", "subjectURI"], "x"],
  ["pki without subject", [...APP, 3, "pki", "subjectHostname"], DELETE],
  ["pki with rekor", [...APP, 3, "rekorPublicKeyData"], KEY],
  ["signedBy wrong keyType", [...APP, 4, "keyType"], "X509"],
  ["signedBy without key", [...APP, 4, "keyData"], DELETE],
  ["identity unknown type", [...APP, 0, "signedIdentity"], { type: "matchRegex" }],
  ["identity with extra field", [...APP, 0, "signedIdentity"], { type: "matchExact", prefix: "x" }],
  ["remap without signedPrefix", [...APP, 4, "signedIdentity", "signedPrefix"], DELETE],
  ["empty string field", [...APP, 2, "fulcio", "oidcIssuer"], ""],
];

describe("strict policy.json parser", () => {
  it("accepts the valid object and round-trips it", () => {
    expect(parsePolicy(valid())).toEqual(valid());
  });
  it.each(breaks)("rejects: %s", (_name, path, value) => {
    const p = valid();
    edit(p, path, value);
    expect(() => parsePolicy(p)).toThrow();
  });
  it("rejects duplicated fields anywhere", () => {
    const text = JSON.stringify(valid(), null, 1);
    const topDup = text.replace("{", '{"default": [{"type": "reject"}],');
    expect(() => parsePolicyJson(topDup)).toThrow(/duplicate key "default"/);
    const scopeDup = text.replace('"reg.io/app": [', '"reg.io/app": [], "reg.io/app": [');
    expect(() => parsePolicyJson(scopeDup)).toThrow(/duplicate key "reg.io\/app"/);
    const reqDup = text.replace('"type": "reject"', '"type": "reject", "type": "reject"');
    expect(() => parsePolicyJson(reqDup)).toThrow(/duplicate key "type"/);
  });
});

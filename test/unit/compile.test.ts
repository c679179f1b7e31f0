import { describe, expect, it } from "vitest";
import { compileAll } from "../../src/compiler/compile.ts";
import { parseCrioVersion } from "../../src/compiler/crioVersion.ts";
import { secretLookupFrom } from "../../src/compiler/validate.ts";
import { parsePolicyJson } from "../../src/policyjson/parse.ts";
import {
  accepting,
  cip,
  ip,
  newPublicKey,
  rejecting,
  secret,
  withIdentity,
  withKey,
  withScopes,
  withSecretKey,
} from "../support/builders.ts";

const K = newPublicKey();
const N = newPublicKey();
const V134 = parseCrioVersion("1.34");
const noSecrets = secretLookupFrom([]);

function docker(text: string | undefined): unknown {
  if (text === undefined) throw new Error("no document");
  return parsePolicyJson(text).transports?.docker;
}

describe("combine", () => {
  it("reproduces docs/design.md's example", () => {
    const r = compileAll(
      [
        cip("deny", withScopes("*"), rejecting),
        cip("app", withScopes("reg.io/app"), withKey(K)),
        ip("team-a", "reg", withScopes("reg.io"), withKey(N)),
      ],
      noSecrets,
      V134,
    );
    expect(r.diagnostics).toEqual([]);
    const keys = [K, N].sort();
    expect(docker(r.files?.namespaceJson.get("team-a"))).toEqual({
      "": [{ type: "reject" }],
      "reg.io": [{ type: "reject" }],
      "reg.io/app": keys.map((k) => ({ type: "sigstoreSigned", keyData: k })),
    });
    expect(docker(r.files?.clusterJson)).toEqual({
      "": [{ type: "reject" }],
      "reg.io/app": [{ type: "sigstoreSigned", keyData: K }],
    });
  });

  it("drops insecureAcceptAnything beside a requirement and lets reject absorb everything", () => {
    const r = compileAll(
      [
        cip("accept", withScopes("reg.io/a", "reg.io/b"), accepting),
        ip("ns", "key", withScopes("reg.io/a"), withKey(K)),
        ip("ns", "block", withScopes("reg.io/b"), rejecting),
        ip("ns", "key-b", withScopes("reg.io/b"), withKey(N)),
      ],
      noSecrets,
      V134,
    );
    expect(docker(r.files?.namespaceJson.get("ns"))).toEqual({
      "reg.io/a": [{ type: "sigstoreSigned", keyData: K }],
      "reg.io/b": [{ type: "reject" }],
    });
  });

  it("is byte-identical whatever the input order", () => {
    const objs = [
      cip("b", withScopes("reg.io/x", "*.example.com"), withKey(K)),
      cip("a", withScopes("reg.io"), withKey(N)),
      ip("ns2", "p", withScopes("reg.io/x"), rejecting),
      ip("ns1", "p", withScopes("*"), withKey(K)),
    ];
    const one = compileAll(objs, noSecrets, V134).files;
    const two = compileAll([...objs].reverse(), noSecrets, V134).files;
    expect(two).toEqual(one);
    expect([...(one?.namespaceJson.keys() ?? [])]).toEqual(["ns1", "ns2"]);
  });

  it("writes registries.d entries only where sigstore is needed, default-docker for *", () => {
    const r = compileAll(
      [
        cip("deny", withScopes("reg.io/blocked"), rejecting),
        cip("app", withScopes("reg.io/app"), withKey(K)),
        ip("ns", "all", withScopes("*"), withKey(N)),
      ],
      noSecrets,
      V134,
    );
    expect(r.files?.registriesDYaml).toContain(
      "default-docker:\n  use-sigstore-attachments: true\ndocker:\n  reg.io/app:\n    use-sigstore-attachments: true\n",
    );
    expect(r.files?.registriesDYaml).not.toContain("reg.io/blocked");
  });
});

describe("validate", () => {
  it("collects every problem with its field path", () => {
    const priv = Buffer.from(
      "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
    ).toString("base64");
    const r = compileAll(
      [
        cip("bad", withScopes("Reg.io", "ok.io", "*.x.io:5"), withKey(priv)),
        cip(
          "remap",
          withScopes("ok.io"),
          withKey(K),
          withIdentity({
            matchPolicy: "RemapIdentity",
            remapIdentity: { prefix: "a.io/x:tag", signedPrefix: "b.io" },
          }),
        ),
      ],
      noSecrets,
      V134,
    );
    expect(r.files).toBeUndefined();
    expect(r.diagnostics.map((d) => [d.object.name, d.field, d.reason])).toEqual([
      ["bad", "spec.scopes[0]", "InvalidScope"],
      ["bad", "spec.scopes[2]", "InvalidScope"],
      ["bad", "spec.policy.rootOfTrust.publicKey.keyData", "InvalidKey"],
      ["remap", "spec.policy.signedIdentity.remapIdentity.prefix", "InvalidIdentity"],
    ]);
  });

  it("refuses what the target CRI-O cannot parse, naming the feature", () => {
    const objs = [cip("two-keys", withScopes("reg.io"), withKey(K, N))];
    const old = compileAll(objs, noSecrets, parseCrioVersion("1.31.4"));
    expect(old.diagnostics).toHaveLength(1);
    expect(old.diagnostics[0]?.reason).toBe("UnsupportedFeature");
    expect(old.diagnostics[0]?.message).toContain("keyDatas");
    expect(old.diagnostics[0]?.message).toContain("1.32.0");
    const current = compileAll(objs, noSecrets, parseCrioVersion("1.32"));
    expect(docker(current.files?.clusterJson)).toEqual({
      "reg.io": [{ type: "sigstoreSigned", keyDatas: [K, N].sort() }],
    });
  });

  it("reads keys from Secrets, an ImagePolicy's only from its own namespace", () => {
    const secrets = secretLookupFrom([secret("sys", "s", { k: K }), secret("team", "s", { k: N })]);
    const r = compileAll(
      [
        cip("c", withScopes("reg.io"), withSecretKey({ name: "s", namespace: "sys", key: "k" })),
        ip("team", "p", withScopes("reg.io/app"), withSecretKey({ name: "s", key: "k" })),
        ip("other", "p", withScopes("reg.io/app"), withSecretKey({ name: "s", key: "k" })),
      ],
      secrets,
      V134,
    );
    expect(r.diagnostics.map((d) => [d.object.namespace, d.reason, d.message])).toEqual([
      ["other", "SecretNotFound", 'Secret other/s has no key "k"'],
    ]);
    expect(r.validated.namespaces.get("team")?.policies[0]?.requirement).toEqual({
      kind: "sigstoreKeys",
      keys: [N],
    });
  });
});

// File names, host paths, the manifest, the TOML reader, and the plan run against real files.

import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { NodeFiles } from "../../../src/agent/files.ts";
import {
  isDns1123Label,
  layerFileName,
  layerFileRevision,
  namespaceFilePath,
  nodePaths,
  underRoot,
} from "../../../src/agent/hostPaths.ts";
import { emptyManifest, parseManifest, serializeManifest } from "../../../src/agent/manifest.ts";
import { realNodeFs } from "../../../src/agent/nodeFs.ts";
import { keyFileName } from "../../../src/agent/keyFiles.ts";
import { registriesIndex } from "../../../src/agent/registriesDFile.ts";
import { parseToml, TomlError } from "../../../src/agent/toml.ts";
import { LATEST_KNOWN } from "../../../src/compiler/crioVersion.ts";
import { parseLayer } from "../../../src/compiler/layer.ts";
import { canonicalJson } from "../../../src/canonicalJson.ts";
import { layerRevision } from "../../../src/layerConfigMap.ts";
import { parsePolicyJson } from "../../../src/policyjson/parse.ts";
import { newPublicKey } from "../../support/builders.ts";
import { input, keyReq, layer, PATHS, REJECT } from "./support.ts";

describe("namespace file names", () => {
  it.each([
    ["team-a", true],
    ["a", true],
    ["0abc", true],
    ["a".repeat(63), true],
    ["a".repeat(64), false],
    ["Team", false],
    ["-a", false],
    ["a-", false],
    ["a.b", false],
    ["..", false],
    ["../etc", false],
    ["a/b", false],
    ["", false],
    ["cluster\n", false],
  ])("%j is a DNS-1123 label: %s", (name, ok) => {
    expect(isDns1123Label(name)).toBe(ok);
    expect(namespaceFilePath(PATHS, name) !== undefined).toBe(ok);
  });
  it("puts every host path under --root", () => {
    expect(underRoot("/host", "/etc/crio/policies")).toBe("/host/etc/crio/policies");
    expect(underRoot("/", "/etc/../etc/crio")).toBe("/etc/crio");
    expect(underRoot("/host", "/../../etc")).toBe("/host/etc");
    expect(() => underRoot("/host", "etc")).toThrow(/not absolute/);
    expect(PATHS.manifest).toBe("/r/etc/crio/imagepolicy/.imagepolicy-manifest");
  });
  it("refuses a cluster.json inside the policy directory", () => {
    expect(() =>
      nodePaths({
        root: "/",
        policyPath: "/etc/crio/policies/cluster.json",
        policyDir: "/etc/crio/policies",
        registriesD: "/r",
        systemRegistriesD: "/s",
        registriesConf: "/c",
        crioSocket: "/sock",
      }),
    ).toThrow(/inside --policy-dir/);
  });
});

describe("manifest", () => {
  const m = {
    ...emptyManifest("/etc/crio/policies"),
    clusterLayers: ["0123456789abcdef"],
    namespaces: { "team-a": "0123456789abcdef.fedcba9876543210", "team-b": "" },
    identities: { "team-a": "1234:5678:1796368320566123456:1796368320566123456" },
    registriesD: "x",
  };
  it("round-trips canonically", () => {
    expect(parseManifest(serializeManifest(m)).manifest).toEqual(m);
    expect(serializeManifest(parseManifest(serializeManifest(m)).manifest)).toBe(
      serializeManifest(m),
    );
  });
  it("is the canonical JSON of the manifest, whatever the order and names of its namespaces", () => {
    const name = fc.oneof(
      fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?$/),
      fc.stringMatching(/^[0-9]{1,4}$/),
    );
    const revision = fc.constantFrom("", "0123456789abcdef.fedcba9876543210");
    fc.assert(
      fc.property(fc.array(fc.tuple(name, revision), { maxLength: 30 }), (entries) => {
        const namespaces = Object.fromEntries(entries);
        const identities: Record<string, string> = Object.fromEntries(
          entries
            .flatMap(([ns, rev]): [string, string][] => (rev === "" ? [] : [[ns, `id-${ns}`]]))
            .reverse(),
        );
        const manifest = { ...m, namespaces, identities };
        expect(serializeManifest(manifest)).toBe(canonicalJson(manifest));
      }),
    );
  });
  it("reads the manifest of an agent before identities, and refuses misplaced ones", () => {
    const text = serializeManifest(m);
    const without: unknown = JSON.parse(text);
    Reflect.deleteProperty(without as object, "identities");
    expect(parseManifest(JSON.stringify(without)).manifest).toEqual({ ...m, identities: {} });
    for (const identities of [{ "team-b": "1:2:3:4" }, { "team-c": "1:2:3:4" }, { "team-a": "" }]) {
      expect(() => parseManifest(serializeManifest({ ...m, identities }))).toThrow(
        /invalid manifest: identit/,
      );
    }
  });
  it("reads the version 1 manifest of the agent before, with its inline layers", () => {
    const text = '{"policies":[]}\n';
    const rev = layerRevision(text);
    const v1 = JSON.stringify({
      version: 1,
      policyDir: "/etc/crio/policies",
      clusterLayers: [text],
      clusterRevision: rev,
      namespaces: {
        "team-a": `${rev}.0123456789abcdef`,
        "team-b": `${rev}+${rev}.0123456789abcdef`,
      },
    });
    const p = parseManifest(v1);
    expect(p.manifest.clusterLayers).toEqual([rev]);
    expect(p.inlineLayers.get(rev)).toBe(text);
    // A file version 1 was moving ("<old>+<new>") counts as being replaced.
    expect(p.manifest.namespaces).toEqual({ "team-a": `${rev}.0123456789abcdef`, "team-b": "" });
  });
  it.each([
    ["not JSON", "{"],
    [
      "duplicate key",
      '{"version":2,"version":2,"policyDir":"/p","clusterLayers":[],"namespaces":{},"registriesD":""}',
    ],
    ["unknown field", JSON.stringify({ ...m, extra: 1 })],
    ["bad namespace", JSON.stringify({ ...m, namespaces: { "../x": "" } })],
    ["bad revision", JSON.stringify({ ...m, namespaces: { x: "../../etc" } })],
    ["bad layer revision", JSON.stringify({ ...m, clusterLayers: ["../x"] })],
    ["relative policy dir", JSON.stringify({ ...m, policyDir: "p" })],
    ["other version", JSON.stringify({ ...m, version: 3 })],
  ])("refuses %s", (_name, text) => {
    expect(() => parseManifest(text)).toThrow(/manifest/);
  });
  it("names layer files so that only revisions fit", () => {
    expect(layerFileRevision(layerFileName("0123456789abcdef"))).toBe("0123456789abcdef");
    expect(() => layerFileName("../x")).toThrow();
    expect(layerFileRevision("cluster.json")).toBeUndefined();
  });
});

describe("TOML reader", () => {
  it("reads what registries.conf and CRI-O use", () => {
    const doc = parseToml(`
a = "x\\ty\\u00e9"  # comment
b = 'lit\\eral'
c = [ 1, 2_000,
  0x1F, # inside
  -3.5e2, ]
d = """
multi "quoted"
line"""
e.f = true
g = { h = "i", j = [] }
t = 1979-05-27T07:32:00Z
[s."quoted key"]
k = false
[[arr]]
n = 1
[[arr]]
n = 2
[arr.sub]
x = 1
`);
    expect(doc).toEqual({
      a: "x\tyé",
      b: "lit\\eral",
      c: [1, 2000, 31, -350],
      d: 'multi "quoted"\nline',
      e: { f: true },
      g: { h: "i", j: [] },
      t: "1979-05-27T07:32:00Z",
      s: { "quoted key": { k: false } },
      arr: [{ n: 1 }, { n: 2, sub: { x: 1 } }],
    });
  });
  it.each([
    ["duplicate key", "a = 1\na = 2\n"],
    ["table twice", "[a]\n[a]\n"],
    ["unterminated string", 'a = "x\n'],
    ["garbage", "a = what\n"],
    ["two values on a line", 'a = "x" "y"\n'],
  ])("refuses %s", (_name, text) => {
    expect(() => parseToml(text)).toThrow(TomlError);
  });
});

describe("plan on real files", () => {
  it("writes valid documents atomically, leaves no temp files, and skips unchanged bytes", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "imagepolicy-files-"));
    try {
      const paths = nodePaths({ ...hostLocations, root });
      const k = newPublicKey();
      const cluster = input(
        layer(undefined, [
          [[""], REJECT],
          [["reg.io"], keyReq(k)],
        ]),
      );
      const ns = input(layer("team-a", [[["reg.io/app"], keyReq(k)]]));
      const texts = new Map([cluster, ns].map((l) => [l.revision, l.text]));
      const run = async (): Promise<readonly string[]> => {
        const files = new NodeFiles(
          paths,
          hostLocations.policyDir,
          realNodeFs(),
          pino({ level: "silent" }),
        );
        await files.load();
        const r = await files.reconcile({
          cluster,
          namespaces: new Map([["team-a", { ok: true as const, layer: ns }]]),
          needs: (rev) => {
            const t = texts.get(rev);
            return t === undefined ? undefined : registriesIndex(parseLayer(t));
          },
          inputs: { registries: [], otherKeys: new Map(), problems: [] },
          target: LATEST_KNOWN,
          text: (rev) => texts.get(rev),
        });
        if (r.result.error !== undefined) expect.fail(r.result.error.message);
        return r.result.written;
      };
      const nsFile = path.join(paths.policyDir, "team-a.json");
      const keyFile = path.join(paths.keysDir, keyFileName(k));
      const layerFile = path.join(path.dirname(paths.clusterJson), layerFileName(cluster.revision));
      expect(await run()).toEqual([
        paths.registriesDFile,
        layerFile,
        paths.manifest, // lists team-a.json (and the cluster layer) before they exist
        keyFile, // the key cluster.json names, before cluster.json
        paths.clusterJson,
        nsFile,
        paths.manifest,
      ]);
      const before = await stat(nsFile);
      // A new process with current files: nothing written.
      expect(await run()).toEqual([]);
      const after = await stat(nsFile);
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
      parsePolicyJson(await readFile(paths.clusterJson, "utf8"));
      parsePolicyJson(await readFile(nsFile, "utf8"));
      expect(await readdir(paths.policyDir)).toEqual(["team-a.json"]);
      expect((await readdir(path.dirname(paths.clusterJson))).sort()).toEqual(
        [".imagepolicy-manifest", layerFileName(cluster.revision), "cluster.json", "keys"].sort(),
      );
      // The key, once, as its PEM bytes; both files name it by its host path.
      expect(await readdir(paths.keysDir)).toEqual([keyFileName(k)]);
      expect((await readFile(keyFile)).equals(Buffer.from(k, "base64"))).toBe(true);
      const hostKey = `${paths.hostKeysDir}/${keyFileName(k)}`;
      for (const f of [paths.clusterJson, nsFile]) {
        expect(await readFile(f, "utf8")).toContain(JSON.stringify(hostKey));
        expect(await readFile(f, "utf8")).not.toContain(k);
      }
      expect(await readFile(paths.registriesDFile, "utf8")).toContain(
        "use-sigstore-attachments: true",
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

const hostLocations = {
  policyPath: "/etc/crio/imagepolicy/cluster.json",
  policyDir: "/etc/crio/policies",
  registriesD: "/etc/containers/registries.d",
  systemRegistriesD: "/usr/share/containers/registries.d",
  registriesConf: "/etc/containers/registries.conf",
  crioSocket: "/var/run/crio/crio.sock",
};

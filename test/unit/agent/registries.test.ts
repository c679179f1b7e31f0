// registries.conf mirrors and the node's registries.d file: mirrors get sigstore attachments,
// keys other files define are left out and reported.

import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import {
  mergeRegistries,
  mirrorScopes,
  registriesFrom,
  type RegistryMirrors,
} from "../../../src/agent/registriesConf.ts";
import {
  computeRegistriesD,
  nodeRegistriesD,
  parseOwnRegistriesD,
  readOtherKeys,
  registriesDText,
  unionRegistriesD,
} from "../../../src/agent/registriesDFile.ts";
import { parseToml } from "../../../src/agent/toml.ts";

const CONF = `
# A typical registries.conf
unqualified-search-registries = ["docker.io", "quay.io"]
short-name-mode = "enforcing"

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"

[[registry]]
prefix = "reg.io"
location = "reg.io"
insecure = false
blocked = false

[[registry.mirror]]
location = "mirror.local:5000/reg-io"
insecure = true

[[registry.mirror]]
location = 'mirror2.local/reg'
pull-from-mirror = "digest-only"

[[registry]]
location = "quay.io/team/app"   # no prefix: the location is the prefix
[[registry.mirror]]
location = "cache.local/quay-app"

[[registry]]
prefix = "*.example.com"
[[registry.mirror]]
location = "ex-mirror.local"
`;

const registries = (): RegistryMirrors[] =>
  registriesFrom(parseToml(CONF), "/etc/containers/registries.conf");

describe("registries.conf", () => {
  it("reads [[registry]] prefixes, locations and mirrors", () => {
    expect(registries()).toEqual([
      {
        prefix: "reg.io",
        location: "reg.io",
        mirrors: ["mirror.local:5000/reg-io", "mirror2.local/reg"],
      },
      {
        prefix: "quay.io/team/app",
        location: "quay.io/team/app",
        mirrors: ["cache.local/quay-app"],
      },
      { prefix: "*.example.com", mirrors: ["ex-mirror.local"] },
    ]);
  });
  it("lets a later drop-in replace an entry with the same prefix", () => {
    const dropIn = registriesFrom(
      parseToml('[[registry]]\nprefix = "reg.io"\n[[registry.mirror]]\nlocation = "other.local"\n'),
      "d.conf",
    );
    expect(
      mergeRegistries([registries(), dropIn]).find((r) => r.prefix === "reg.io")?.mirrors,
    ).toEqual(["other.local"]);
  });
  it.each<[string, string[]]>([
    ["reg.io", ["mirror.local:5000/reg-io", "mirror2.local/reg"]],
    ["reg.io/app", ["mirror.local:5000/reg-io/app", "mirror2.local/reg/app"]],
    ["reg.io/app:1.0", ["mirror.local:5000/reg-io/app:1.0", "mirror2.local/reg/app:1.0"]],
    ["reg.io:5000/app", []],
    ["quay.io", ["cache.local/quay-app"]],
    ["quay.io/team/app/sub", ["cache.local/quay-app/sub"]],
    ["quay.io/other", []],
    ["a.example.com/x", ["ex-mirror.local"]],
    ["*.example.com", ["ex-mirror.local"]],
    ["*.com", ["ex-mirror.local"]],
    ["*.io", ["cache.local/quay-app", "mirror.local:5000/reg-io", "mirror2.local/reg"]],
    ["", []],
  ])("mirror scopes of %j", (scope, expected) => {
    expect(mirrorScopes(scope, registries())).toEqual(expected);
  });
  it("refuses an entry without prefix or location", () => {
    expect(() => registriesFrom(parseToml("[[registry]]\ninsecure = true\n"), "f")).toThrow(
      /prefix or a location/,
    );
  });
});

describe("the node's registries.d file", () => {
  const compiled = {
    "default-docker": { "use-sigstore-attachments": true as const },
    docker: {
      "reg.io/app": { "use-sigstore-attachments": true as const },
      "gpg.io": { lookaside: "https://sigs.gpg.io" },
    },
  };

  it("adds mirrors and leaves out keys other files define, reporting them", () => {
    const others = new Map([
      ["gpg.io", "/etc/containers/registries.d/gpg.yaml"],
      ["default-docker", "/usr/share/containers/registries.d/default.yaml"],
    ]);
    const r = nodeRegistriesD(compiled, registries(), others);
    expect(r.document).toEqual({
      docker: {
        "mirror.local:5000/reg-io/app": { "use-sigstore-attachments": true },
        "mirror2.local/reg/app": { "use-sigstore-attachments": true },
        "reg.io/app": { "use-sigstore-attachments": true },
      },
    });
    expect(r.omitted).toEqual([
      { key: "default-docker", definedIn: "/usr/share/containers/registries.d/default.yaml" },
      { key: "gpg.io", definedIn: "/etc/containers/registries.d/gpg.yaml" },
    ]);
    const text = registriesDText(r.document);
    expect(parse(text)).toEqual(r.document);
    expect(parseOwnRegistriesD(text)).toEqual(r.document);
  });

  it("unions two documents field by field", () => {
    expect(
      unionRegistriesD(
        { docker: { a: { lookaside: "https://old" }, b: { "use-sigstore-attachments": true } } },
        {
          docker: { a: { "use-sigstore-attachments": true } },
          "default-docker": { lookaside: "https://d" },
        },
      ),
    ).toEqual({
      "default-docker": { lookaside: "https://d" },
      docker: {
        a: { "use-sigstore-attachments": true, lookaside: "https://old" },
        b: { "use-sigstore-attachments": true },
      },
    });
  });

  it("hands back the document on disk when the union and the final document say the same", () => {
    const none = new Map<string, string>();
    const layers = { document: compiled, text: registriesDText(compiled), conflicts: [] };
    const first = computeRegistriesD(layers, {}, [], none);
    expect(first.union).toEqual(compiled);
    expect(first.document).toBe(first.union);
    // What was written (a copy, as read back after a start) with the same layers: every plan
    // compares these by identity, not by text.
    const onDisk = structuredClone(first.document);
    const again = computeRegistriesD(layers, onDisk, [], none);
    expect(again.union).toBe(onDisk);
    expect(again.document).toBe(onDisk);
    // A scope left on disk that the layers no longer need: the union keeps it until the policies
    // are written, and the final document drops it.
    const stale = {
      ...compiled,
      docker: { ...compiled.docker, "old.io": { lookaside: "https://old" } },
    };
    const moved = computeRegistriesD(layers, stale, [], none);
    expect(moved.union).toBe(stale);
    expect(moved.document).not.toBe(stale);
    expect(moved.document).toEqual(compiled);
  });

  it("reads the keys of the other *.yaml files of both directories, not its own", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-regd-"));
    try {
      const etc = path.join(dir, "etc");
      const usr = path.join(dir, "usr");
      await mkdir(etc);
      await mkdir(usr);
      await writeFile(path.join(etc, "imagepolicy.yaml"), "docker:\n  mine.io: {}\n");
      await writeFile(path.join(etc, "a.yaml"), "docker:\n  a.io:\n    lookaside: https://a\n");
      await writeFile(path.join(etc, "ignored.yml"), "docker:\n  yml.io: {}\n");
      await writeFile(path.join(etc, ".imagepolicy.yaml.abc.tmp"), "docker:\n  tmp.io: {}\n");
      await writeFile(
        path.join(usr, "default.yaml"),
        "default-docker:\n  lookaside: https://d\ndocker:\n  a.io: {}\n",
      );
      const keys = readOtherKeys(
        [etc, usr, path.join(dir, "absent")],
        path.join(etc, "imagepolicy.yaml"),
      );
      expect([...keys].sort()).toEqual([
        ["a.io", path.join(etc, "a.yaml")],
        ["default-docker", path.join(usr, "default.yaml")],
      ]);
      await writeFile(path.join(usr, "broken.yaml"), "docker: [\n");
      expect(() => readOtherKeys([usr], "")).toThrow(/cannot read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// The YAML subset the agent reads registries.d files with must read whatever it accepts exactly
// as the `yaml` package does (and leave everything else to it); what the agent writes must be
// read back the same by both.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import {
  parseYamlSubset,
  readYaml,
  writeYamlSubset,
  type SubsetMap,
  type SubsetValue,
} from "../../../src/agent/yamlSubset.ts";

function plain(v: SubsetValue): unknown {
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
}

/** Keys and values registries.d files hold, and some that look like other YAML types. */
const WORDS = [
  "docker",
  "default-docker",
  "registry.example.com",
  "registry.example.com:5000",
  "registry.example.com:5000/team/app",
  "reg.io/app:v1.2",
  "reg.io/app@sha256:0123456789abcdef",
  "*.example.com",
  "localhost:5000",
  "10.20.0.15:5000",
  "192.168.1.50",
  "use-sigstore-attachments",
  "lookaside",
  "lookaside-staging",
  "https://lookaside.example.com/sigstore/",
  "https://x.example.com/a?b=c",
  "file:///var/lib/containers/sigstore",
  "yes",
  "No",
  "on",
  "null",
  "~",
  "true",
  "0x1F",
  "0o17",
  "1e3",
  "1.5",
  "12:30",
  "2001-12-14",
  "a: b",
  "a #b",
  "-a",
  "tab\there",
  'quote"d',
  "back\\slash",
  "ünïcode",
  "",
];

const arbValue: fc.Arbitrary<SubsetValue> = fc.letrec<{ value: SubsetValue; map: SubsetMap }>(
  (tie) => ({
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constantFrom<SubsetValue>(null, true, false),
      fc.constantFrom(...WORDS),
      tie("map"),
    ),
    map: fc
      .uniqueArray(fc.tuple(fc.constantFrom(...WORDS), tie("value")), {
        selector: ([k]) => k,
        maxLength: 4,
      })
      .map((entries) => new Map(entries)),
  }),
).map;

describe("YAML subset", () => {
  it("reads what it accepts exactly as the yaml package does (documents the package writes)", () => {
    let accepted = 0;
    fc.assert(
      fc.property(arbValue, fc.boolean(), (doc, sort) => {
        const text = stringify(plain(doc), { sortMapEntries: sort, lineWidth: 0 });
        const mine = parseYamlSubset(text);
        if (mine !== undefined) {
          accepted += 1;
          expect(plain(mine)).toEqual(parse(text));
        }
        expect(readYaml(text)).toEqual(parse(text));
      }),
      { numRuns: 2000 },
    );
    // Not vacuous: most documents are in the subset.
    expect(accepted).toBeGreaterThan(500);
  }, 120_000);

  it("writes documents both read back unchanged", () => {
    fc.assert(
      fc.property(arbValue, (doc) => {
        if (doc === null || typeof doc !== "object") return;
        const text = writeYamlSubset(doc);
        expect(parse(text)).toEqual(plain(doc));
        const mine = parseYamlSubset(text);
        if (mine !== undefined) expect(plain(mine)).toEqual(plain(doc));
      }),
      { numRuns: 2000 },
    );
  }, 120_000);

  it("reads the agent's own registries.d file and a distribution's without the package", () => {
    const own = writeYamlSubset(
      new Map<string, SubsetValue>([
        ["default-docker", new Map([["use-sigstore-attachments", true]])],
        [
          "docker",
          new Map<string, SubsetValue>([
            ["*.example.com", new Map([["use-sigstore-attachments", true]])],
            ["reg.io:5000/app", new Map([["lookaside", "https://l.example.com/s"]])],
          ]),
        ],
      ]),
    );
    expect(own).toContain('  "*.example.com":\n    use-sigstore-attachments: true\n');
    expect(parseYamlSubset(own)).toBeDefined();
    const debian = [
      "# This is a default registries.d configuration file.",
      "default-docker:",
      "#  lookaside: https://example.com",
      "",
      "# docker:",
      "#   privateregistry.com:",
      "#     lookaside: https://privateregistry.com/sigstore/",
      "",
    ].join("\n");
    expect(plain(parseYamlSubset(debian) ?? "outside")).toEqual({ "default-docker": null });
  });

  it.each([
    ["flow style", "docker: {a: 1}\n"],
    ["a sequence", "docker:\n  - a\n"],
    ["an anchor", "docker: &x\n  a: b\n"],
    ["a tag", "docker: !!map\n  a: b\n"],
    ["a block scalar", "a: |\n  b\n"],
    ["a second document", "a: b\n---\nc: d\n"],
    ["a duplicate key", "a: b\na: c\n"],
    ["a multi-line scalar", "a: b\n  c\n"],
    ["a tab", "a:\n\tb: c\n"],
    ["a number", "a: 0x1F\n"],
    ["a single-quoted key", "'a': b\n"],
  ])("leaves %s to the full parser", (_name, text) => {
    expect(parseYamlSubset(text)).toBeUndefined();
  });
});

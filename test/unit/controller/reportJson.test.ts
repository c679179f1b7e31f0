// Node reports decoded with their maps cut out of the text (src/controller/reportJson.ts): the
// value is JSON.parse's for any text, tricky ones included, and each map is the interner's shared
// object, found by its text the second time.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RevisionsInterner } from "../../../src/controller/cache.ts";
import { reportDecoder } from "../../../src/controller/reportJson.ts";

function report(
  name: string,
  applied: unknown,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind: "ImagePolicyNodeStatus",
    metadata: { name, resourceVersion: "7" },
    spec: { nodeName: name },
    status: { enforcing: true, appliedRevisions: applied, lastError: "", ...extra },
  };
}

/** The map the decoded value holds at status.appliedRevisions of `object` (an event's object or
 * a list item). */
function appliedOf(o: unknown): unknown {
  return (o as { status: { appliedRevisions: unknown } }).status.appliedRevisions;
}

describe("reportDecoder", () => {
  it("gives JSON.parse's value for a watch event, its map shared by text", () => {
    const interner = new RevisionsInterner();
    const decode = reportDecoder(interner);
    const map = { "a.json": "r1", "cluster.json": "c1" };
    const one = JSON.stringify({ type: "MODIFIED", object: report("n1", map) });
    const two = JSON.stringify({ type: "MODIFIED", object: report("n2", map) });
    const a = decode(one) as { object: unknown };
    const b = decode(two) as { object: unknown };
    expect(a).toEqual(JSON.parse(one));
    expect(b).toEqual(JSON.parse(two));
    expect(appliedOf(a.object)).toBe(appliedOf(b.object));
    expect(interner.interned(appliedOf(a.object) as object)).toBe(true);
    expect(interner.size).toBe(1);
  });

  it("cuts every item's map out of a list page, in order", () => {
    const decode = reportDecoder(new RevisionsInterner());
    const page = {
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicyNodeStatusList",
      metadata: { resourceVersion: "9" },
      items: [
        report("n1", { "cluster.json": "c1" }),
        report("n2", {}),
        { ...report("n3", {}), status: undefined },
        report("n4", { "cluster.json": "c2", "b.json": "r2" }),
      ],
    };
    const text = JSON.stringify(page);
    const got = decode(text) as { items: unknown[] };
    expect(got).toEqual(JSON.parse(text));
    expect(appliedOf(got.items[3])).toEqual({ "cluster.json": "c2", "b.json": "r2" });
  });

  it("falls back to the whole text when a map is not one of strings", () => {
    const interner = new RevisionsInterner();
    const decode = reportDecoder(interner);
    for (const applied of [{ "a.json": 1 }, { "a.json": { nested: "x" } }, { "a}": "b" }]) {
      const text = JSON.stringify({ type: "ADDED", object: report("n1", applied) });
      expect(decode(text)).toEqual(JSON.parse(text));
    }
  });

  it("is JSON.parse for any report, whatever its strings hold", () => {
    // Mostly plain strings (the cut path), some built from the characters the cut looks for.
    const tricky = fc.stringMatching(/^[a-z"\\{}:, ]{0,12}$/);
    const withKey = fc.oneof(
      { weight: 6, arbitrary: fc.stringMatching(/^[a-z0-9.]{1,8}$/) },
      { weight: 1, arbitrary: tricky },
      { weight: 1, arbitrary: fc.constant('"appliedRevisions":{') },
      { weight: 1, arbitrary: fc.constant("}") },
    );
    const map = fc.oneof(
      { weight: 6, arbitrary: fc.dictionary(withKey, withKey, { maxKeys: 5 }) },
      { weight: 1, arbitrary: fc.dictionary(withKey, fc.oneof(withKey, fc.integer())) },
      { weight: 1, arbitrary: fc.constantFrom(5, 0, "x") },
    );
    const obj = fc.record({
      name: fc.stringMatching(/^[a-z]{1,5}$/),
      applied: map,
      annotations: fc.dictionary(withKey, withKey, { maxKeys: 3 }),
      // A map of that name somewhere else: not what the API server's schema allows, but the
      // decoder must not take it for the status's.
      decoy: fc.option(fc.dictionary(withKey, withKey, { maxKeys: 2 }), { freq: 4 }),
    });
    const interner = new RevisionsInterner();
    const decode = reportDecoder(interner);
    fc.assert(
      fc.property(fc.array(obj, { minLength: 1, maxLength: 4 }), fc.boolean(), (objs, asList) => {
        const objects = objs.map((o) => {
          const r = report(o.name, o.applied, { message: o.annotations }) as {
            metadata: Record<string, unknown>;
          };
          r.metadata["annotations"] = o.annotations;
          return o.decoy === null
            ? r
            : { ...r, spec: { nodeName: o.name, appliedRevisions: o.decoy } };
        });
        const text = JSON.stringify(
          asList ? { items: objects } : { type: "MODIFIED", object: objects[0] },
        );
        expect(decode(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
    // The cut path was taken (maps found by text), not only the whole parse.
    expect(interner.size).toBeGreaterThan(50);
  });
});

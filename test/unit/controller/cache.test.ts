// The controller's informer reductions (src/controller/cache.ts): the appliedRevisions interner is
// exact (one object per distinct map, whatever the key order, however many maps share a shape),
// and a report is reduced to what rollout counts read.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../../src/canonicalJson.ts";
import {
  compactNodeStatus,
  nodeReportOf,
  RevisionsInterner,
} from "../../../src/controller/cache.ts";

/** A report's map: cluster.json and `n` namespace files on cluster revision `cluster`. */
function revisions(cluster: string, namespaces: readonly string[]): Record<string, string> {
  const out: Record<string, string> = { "cluster.json": cluster };
  for (const ns of namespaces) out[`${ns}.json`] = `${cluster}.${ns}-rev`;
  return out;
}

function reversed(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).reverse());
}

describe("RevisionsInterner", () => {
  it("gives one shared, frozen map for equal maps in any key order", () => {
    const interner = new RevisionsInterner();
    const a = interner.intern(revisions("c1", ["a", "b", "c"]));
    const b = interner.intern(reversed(revisions("c1", ["a", "b", "c"])));
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a).toEqual(revisions("c1", ["a", "b", "c"]));
    expect(interner.interned(a as object)).toBe(true);
    expect(interner.interned(revisions("c1", ["a"]))).toBe(false);
    expect(interner.size).toBe(1);
  });

  it("keeps maps of the same shape (count, cluster revision) apart", () => {
    const interner = new RevisionsInterner();
    const one = { "cluster.json": "c1", "a.json": "c1.x" };
    const two = { "cluster.json": "c1", "a.json": "c1.y" };
    const three = { "cluster.json": "c1", "b.json": "c1.x" };
    const got = [one, two, three].map((r) => interner.intern(r));
    expect(new Set(got).size).toBe(3);
    expect(got.map((g) => canonicalJson(g))).toEqual(
      [one, two, three].map((r) => canonicalJson(r)),
    );
  });

  it("stays exact when more maps share a shape than it compares directly", () => {
    const interner = new RevisionsInterner();
    const maps = Array.from({ length: 12 }, (_, i) => ({
      "cluster.json": "c1",
      "a.json": `c1.${String(i)}`,
    }));
    const first = maps.map((m) => interner.intern(m));
    // Interned again in another order and as fresh objects: the same shared maps.
    const again = [...maps].reverse().map((m) => interner.intern({ ...m }));
    expect(again.reverse()).toEqual(first);
    for (let i = 0; i < maps.length; i++) expect(again[i]).toBe(first[i]);
    expect(interner.size).toBe(12);
  });

  it("refuses what is not a map of strings", () => {
    const interner = new RevisionsInterner();
    expect(interner.intern({ "cluster.json": 3 })).toBeUndefined();
    expect(interner.intern(["cluster.json"])).toBeUndefined();
    expect(interner.intern(null)).toBeUndefined();
    expect(interner.intern("cluster.json")).toBeUndefined();
  });

  it("is exact on random maps: the same object exactly when the entries are equal", () => {
    const key = fc.constantFrom(
      "cluster.json",
      "a.json",
      "b.json",
      "c.json",
      "toString",
      "__proto__",
    );
    const map = fc.dictionary(key, fc.constantFrom("r1", "r2", "r1.n1", "r2.n1"), { maxKeys: 6 });
    fc.assert(
      fc.property(fc.array(map, { minLength: 1, maxLength: 30 }), (maps) => {
        const interner = new RevisionsInterner();
        const shared = maps.map((m) => interner.intern(m));
        for (let i = 0; i < maps.length; i++) {
          const s = shared[i];
          expect(s).toBeDefined();
          expect(canonicalJson(s)).toBe(canonicalJson(maps[i]));
          for (let j = 0; j < i; j++) {
            expect(s === shared[j]).toBe(canonicalJson(maps[i]) === canonicalJson(maps[j]));
          }
        }
      }),
    );
  });
});

describe("compactNodeStatus", () => {
  it("keeps enforcing, the interned map and the runtime version only", () => {
    const interner = new RevisionsInterner();
    const report = (name: string) => ({
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicyNodeStatus",
      metadata: { name, uid: `uid-${name}`, resourceVersion: "7", managedFields: [{}] },
      status: {
        enforcing: true,
        runtime: { name: "cri-o", version: "1.36.3" },
        appliedRevisions: revisions("c1", ["a", "b"]),
        lastError: "",
        conditions: [{ type: "Ready", status: "True" }],
      },
    });
    const a = compactNodeStatus(report("n1"), interner);
    const b = compactNodeStatus(report("n2"), interner);
    expect(a).toEqual({
      apiVersion: "imagepolicy.dev/v1alpha1",
      kind: "ImagePolicyNodeStatus",
      metadata: { name: "n1", uid: "uid-n1", resourceVersion: "7" },
      status: {
        enforcing: true,
        appliedRevisions: revisions("c1", ["a", "b"]),
        runtime: { version: "1.36.3" },
      },
    });
    expect(nodeReportOf(a, interner)?.appliedRevisions).toBe(
      nodeReportOf(b, interner)?.appliedRevisions,
    );
  });
});

// The agent's renderer (src/agent/render.ts) writes the bytes of the compiler's combine() on the
// same layers. A cluster change renders ~1,000 namespace documents on one or two bases, reusing the
// base's working memory and one assembly buffer from document to document: here many namespaces,
// in random order, on bases ANDed from one or two cluster layers, each compared with combine().

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Renderings } from "../../../src/agent/apply.ts";
import { BaseRendering, joined, Scratch, ValueCache } from "../../../src/agent/render.ts";
import { combine, indexLayer } from "../../../src/compiler/combine.ts";
import { LATEST_KNOWN } from "../../../src/compiler/crioVersion.ts";
import type { Layer } from "../../../src/compiler/layer.ts";
import type { Requirement } from "../../../src/compiler/requirements.ts";
import { newPublicKey } from "../../support/builders.ts";
import { ACCEPT, input, keyReq, layer, REJECT } from "./support.ts";

const K1 = newPublicKey();
const K2 = newPublicKey();
const K3 = newPublicKey();
const SCOPES = [
  "",
  "reg.io",
  "reg.io/app",
  "reg.io/app:1",
  "reg.io/app/sub",
  "*.reg.io",
  "reg.io:5000",
  "sub.reg.io/x",
  "*.io",
  "docker.io",
  "docker.io/library/nginx",
  "quay.io/team",
];
const REQS: Requirement[] = [REJECT, ACCEPT, keyReq(K1), keyReq(K2), keyReq(K3), keyReq(K1, K2)];
const arbLayer = (ns: string | undefined): fc.Arbitrary<Layer> =>
  fc
    .array(
      fc.tuple(fc.subarray(SCOPES, { minLength: 1, maxLength: 4 }), fc.constantFrom(...REQS)),
      { maxLength: 6 },
    )
    .map((entries) => layer(ns, entries));

const expected = (...layers: Layer[]): string => {
  const r = combine(layers.map(indexLayer), LATEST_KNOWN);
  if (!r.ok) throw new Error(r.problems.join("; "));
  return r.text;
};

describe("rendering namespace documents one after the other", () => {
  it("each equals combine() on the same layers, whatever came before it", () => {
    fc.assert(
      fc.property(
        fc.array(arbLayer(undefined), { minLength: 1, maxLength: 2 }),
        fc.array(arbLayer("ns"), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 24 }),
        (clusters, namespaces, order) => {
          const cache = new ValueCache(LATEST_KNOWN);
          const base = new BaseRendering(clusters.map(indexLayer), cache);
          const scratch = new Scratch();
          for (const pick of order) {
            const ns = namespaces[pick % namespaces.length];
            if (ns === undefined) continue;
            // Half of them in the shared buffer, as the executor does; half in their own.
            const r = base.withNamespace(indexLayer(ns), pick % 2 === 0 ? scratch : undefined);
            if (!r.ok) throw new Error(r.problems.join("; "));
            expect(joined(r).toString("utf8")).toBe(expected(...clusters, ns));
            expect(r.length).toBe(joined(r).length);
          }
          const doc = base.document();
          if (!doc.ok) throw new Error(doc.problems.join("; "));
          expect(joined(doc).toString("utf8")).toBe(expected(...clusters));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("Renderings.namespace assembles one document after the other in the same buffer", () => {
    const cluster = layer(undefined, [
      [[""], REJECT],
      [["reg.io"], keyReq(K1)],
      [["docker.io"], ACCEPT],
    ]);
    const a = layer("a", [[["reg.io/app"], keyReq(K2)]]);
    const b = layer("b", [[["docker.io/library/nginx"], keyReq(K3)]]);
    const texts = new Map([cluster, a, b].map((l) => [input(l).revision, input(l).text]));
    const rev = (l: Layer): string => input(l).revision;
    const renderings = new Renderings(LATEST_KNOWN, (r) => texts.get(r));
    const render = (l: Layer): string => {
      const r = renderings.namespace([rev(cluster)], [{ kind: "layer", revision: rev(l) }]);
      if (!("rendered" in r)) throw new Error(r.problems.join("; "));
      return joined(r.rendered).toString("utf8");
    };
    for (const l of [a, b, a, b, b, a]) expect(render(l)).toBe(expected(cluster, l));
  });
});

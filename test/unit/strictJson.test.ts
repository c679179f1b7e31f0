// parseStrictJson: JSON.parse, but a duplicated key is an error naming the key and where it is.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseStrictJson, StrictJsonError } from "../../src/strictJson.ts";

describe("parseStrictJson", () => {
  it("names a duplicated key and the path of its object", () => {
    expect(() => parseStrictJson('{"a": 1, "a": 2}')).toThrow(/duplicate key "a" at \$$/);
    expect(() => parseStrictJson('{"a": [0, {"b": {}, "c": 1, "b": 2}]}')).toThrow(
      /duplicate key "b" at \$\.a\[1\]$/,
    );
    expect(() => parseStrictJson('[{"x": {"y": [1, 2, {"k": 1, "k": 1}]}}]')).toThrow(
      /duplicate key "k" at \$\[0\]\.x\.y\[2\]$/,
    );
  });

  it("compares keys as JSON reads them: escapes count", () => {
    expect(() => parseStrictJson('{"a": 1, "\\u0061": 2}')).toThrow(StrictJsonError);
    expect(() => parseStrictJson('{"a\\"b": 1, "a\\u0022b": 2}')).toThrow(/duplicate key "a\\"b"/);
    expect(parseStrictJson('{"a\\\\": 1, "a": 2}')).toEqual({ "a\\": 1, a: 2 });
  });

  it("takes the same key in sibling objects, and strings that look like keys", () => {
    expect(parseStrictJson('[{"a": 1}, {"a": 2}]')).toEqual([{ a: 1 }, { a: 2 }]);
    expect(parseStrictJson('{"a": "b\\": 1, ", "b": "a"}')).toEqual({ a: 'b": 1, ', b: "a" });
    expect(parseStrictJson('{"a": ["a", "a"], "b" :\n\t{"a": 1}}')).toEqual({
      a: ["a", "a"],
      b: { a: 1 },
    });
  });

  it("reads what JSON.parse reads when no key repeats", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value, null, 1);
        expect(parseStrictJson(text)).toEqual(JSON.parse(text));
      }),
    );
  });

  it("refuses text that is not JSON", () => {
    expect(() => parseStrictJson("{")).toThrow(/invalid JSON/);
  });
});

// The TypeScript twins of the CRD's CEL rules, against what the API server's libraries do: Go's
// url.ParseRequestURI behind isURL (cases checked against Go 1.26's net/url, the toolchain the
// control plane is built with; a 20,000-string random comparison agreed too), CEL's bytes-to-string
// conversion, and its commutative error handling in || and &&. The corpus in test/crd-manifests,
// run through the real API server by test/apiserver/crdAdmission.test.ts, checks the whole rules.

import { describe, expect, it } from "vitest";
import {
  CelEvalError,
  celAnd,
  celOr,
  celString,
  codePoints,
  findAllCount,
  goQuote,
  isURL,
} from "../../src/api/cel.ts";

/** [input, url.ParseRequestURI(input) succeeds] as Go 1.26 answers. */
const GO_PARSE_REQUEST_URI: readonly (readonly [string, boolean])[] = [
  ["https://example.com", true],
  ["http://example.com/sigs", true],
  ["file:///var/lib/sigs", true],
  ["https://", true],
  ["https:", true],
  ["https://a:b:c/", false],
  ["http://[::1]:80/x", true],
  ["https://[1.2.3.4]/x", false],
  ["https://[fe80::1%25en0]/", true],
  ["https://[fe80::1%en0]/", false],
  ["https://ex ample.com", false],
  ["https://example.com/a b", true],
  ["https://example.com/%zz", false],
  ["https://example.com/%41", true],
  ["https://exa%41mple.com", false],
  ["https://exa%c3%a9mple.com", true],
  ["https://user:pass@example.com", true],
  ["https://us er@example.com", false],
  ["https://example.com:80a/", false],
  ["https://example.com:/", true],
  ["mailto:x", true],
  ["/abs/path", true],
  ["rel/path", false],
  ["*", true],
  ["", false],
  ["https://example.com?x", true],
  ["https://a@b@c.com/", true],
  ["https://example.com\u0007", false],
  ["https://é.com/", true],
  ["1http://x", false],
  ["HTTPS://EXAMPLE.COM", true],
  ["https:///path", true],
  ["file://", true],
  ["https://[::1", false],
  ["https://host:1:2", false],
  ["ftp://a:1:2/", true],
  ["https://a%2/", false],
  ["https://[::ffff:1.2.3.4]/", true],
  ["https://[::1]x/", false],
  ["://x", false],
  ["a:b", true],
  ["https://example.com:99999/", true],
];

describe("isURL (Go's url.ParseRequestURI)", () => {
  it.each(GO_PARSE_REQUEST_URI)("%j -> %s", (input, want) => {
    expect(isURL(input)).toBe(want);
  });
});

describe("CEL semantics", () => {
  it("string(bytes) fails to evaluate on bytes that are not UTF-8", () => {
    expect(celString(Buffer.from("héllo"))).toBe("héllo");
    expect(() => celString(Buffer.from([0x99, 0x01, 0x0d]))).toThrow(CelEvalError);
    expect(() => celString(Buffer.from([0xed, 0xa0, 0x80]))).toThrow(CelEvalError); // a surrogate
    expect(() => celString(Buffer.from([0xc0, 0x80]))).toThrow(CelEvalError); // overlong
  });

  it("|| and && absorb an error when another operand decides", () => {
    const fail = (): boolean => {
      throw new CelEvalError("boom");
    };
    expect(celOr(fail, () => true)).toBe(true);
    expect(celAnd(fail, () => false)).toBe(false);
    expect(() => celOr(fail, () => false)).toThrow(CelEvalError);
    expect(() => celAnd(() => true, fail)).toThrow(CelEvalError);
    expect(
      celOr(
        () => false,
        () => false,
      ),
    ).toBe(false);
  });

  it("findAll counts non-overlapping matches; sizes count code points", () => {
    expect(findAllCount("-----A----------A-----", "-----A-----")).toBe(2);
    expect(findAllCount("aaaa", "aa")).toBe(2);
    expect(codePoints("a😀é")).toBe(3);
  });

  it("quotes values as Go's %q does", () => {
    expect(goQuote('a"b\\c\n\t')).toBe('"a\\"b\\\\c\\n\\t"');
    expect(goQuote("\u0000\u007f")).toBe('"\\x00\\x7f"');
    expect(goQuote("é😀")).toBe('"é😀"');
    expect(goQuote("\u200b")).toBe('"\\u200b"');
  });
});

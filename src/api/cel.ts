// What the TypeScript twins of the CRD's CEL rules need to behave exactly as the API server does:
// CEL's conversion of bytes to string, its error-absorbing `||` and `&&`, the regex library's
// findAll, the Kubernetes URL library's isURL (Go's url.ParseRequestURI), and Go's %q quoting
// used in field error messages. Each function names the upstream code it mirrors; the corpus in
// test/crd-manifests runs through the real API server and through these twins and must agree.

import { isIPv6 } from "node:net";

/** A CEL evaluation error (cel-go types.Err): the API server reports "<message> evaluating rule:
 * <rule>" at the rule's field. */
export class CelEvalError extends Error {
  override readonly name = "CelEvalError";
}

/** A twin that threw something other than CelEvalError: a bug in the twin. */
export class TwinError extends Error {
  override readonly name = "TwinError";
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** CEL `string(bytes)` (cel-go common/types/bytes.go ConvertToType): an error unless the bytes are
 * valid UTF-8 (Go's utf8.Valid and the WHATWG decoder refuse the same sequences: overlong forms,
 * surrogates, code points above U+10FFFF). */
export function celString(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch (cause) {
    throw new CelEvalError("invalid UTF-8 in bytes, cannot convert to string", { cause });
  }
}

type Operand = () => boolean;

function evaluate(op: Operand): boolean | CelEvalError {
  try {
    return op();
  } catch (e) {
    if (e instanceof CelEvalError) return e;
    throw new TwinError("a CEL twin failed", { cause: e });
  }
}

/** CEL's commutative logical operators: the result is `decisive` if any operand evaluates to it,
 * even when another fails to evaluate; else the first error; else the other value. */
function logical(decisive: boolean, ops: readonly Operand[]): boolean {
  let error: CelEvalError | undefined;
  for (const op of ops) {
    const v = evaluate(op);
    if (v === decisive) return decisive;
    if (v instanceof CelEvalError) error ??= v;
  }
  if (error !== undefined) throw new CelEvalError(error.message, { cause: error });
  return !decisive;
}

/** CEL `a || b || ...`. */
export const celOr = (...ops: Operand[]): boolean => logical(true, ops);

/** CEL `a && b && ...`. */
export const celAnd = (...ops: Operand[]): boolean => logical(false, ops);

/** The Kubernetes regex library's `s.findAll(re).size()`: non-overlapping matches. */
export function findAllCount(s: string, regex: string): number {
  return [...s.matchAll(new RegExp(regex, "gu"))].length;
}

/** The length OpenAPI's minLength/maxLength and CEL's size() count: Unicode code points. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Go's fmt %q (strconv.Quote), as field errors print string values.

const GO_ESCAPES: Readonly<Record<string, string>> = {
  "\u0007": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
  '"': '\\"',
  "\\": "\\\\",
};

function isGoPrintable(cp: number): boolean {
  // strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
  if (cp === 0x20) return true;
  return /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(String.fromCodePoint(cp));
}

export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    const escape = GO_ESCAPES[ch];
    if (escape !== undefined) out += escape;
    else if (isGoPrintable(cp)) out += ch;
    else if (cp < 0x80) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`;
    else out += `\\U${cp.toString(16).padStart(8, "0")}`;
  }
  return `${out}"`;
}

// ---------------------------------------------------------------------------------------------
// isURL: Go's net/url.ParseRequestURI returns no error (k8s.io/apiserver pkg/cel/library/urls.go).
// A port of url.parse(rawURL, viaRequest=true) as of Go 1.26, whose default for http and https
// refuses a host with more than one colon outside brackets (GODEBUG urlstrictcolons, the
// control plane's wrapper module says `go 1.26.0`). Go works on bytes; every test below only asks
// whether a byte is a given ASCII character, so UTF-16 code units answer the same.

function containsCtl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

const isAlpha = (c: string): boolean => /^[A-Za-z]$/.test(c);
const isDigit = (c: string): boolean => /^[0-9]$/.test(c);
const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9A-Fa-f]$/.test(c);

/** getScheme: the scheme, or "" when there is none; undefined for "missing protocol scheme". */
function getScheme(raw: string): { scheme: string; rest: string } | undefined {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charAt(i);
    if (isAlpha(c)) continue;
    if (isDigit(c) || c === "+" || c === "-" || c === ".") {
      if (i === 0) return { scheme: "", rest: raw };
      continue;
    }
    if (c === ":") {
      if (i === 0) return undefined;
      return { scheme: raw.slice(0, i), rest: raw.slice(i + 1) };
    }
    return { scheme: "", rest: raw };
  }
  return { scheme: "", rest: raw };
}

const HOST_ALLOWED = new Set("!$&'()*+,;=:[]<>\"-_.~".split(""));

/** shouldEscape(c, encodeHost) for an ASCII character c. */
function hostMustEscape(c: string): boolean {
  return !(/^[A-Za-z0-9]$/.test(c) || HOST_ALLOWED.has(c));
}

type Mode = "host" | "zone" | "other";

/** unescape(s, mode) == nil error. */
function unescapes(s: string, mode: Mode): boolean {
  for (let i = 0; i < s.length;) {
    const c = s.charAt(i);
    if (c === "%") {
      if (i + 2 >= s.length || !isHex(s[i + 1]) || !isHex(s[i + 2])) return false;
      const hi = parseInt(s.charAt(i + 1), 16);
      const triple = s.slice(i, i + 3);
      if (mode === "host" && hi < 8 && triple !== "%25") return false;
      if (mode === "zone") {
        const v = parseInt(s.slice(i + 1, i + 3), 16);
        const vc = String.fromCharCode(v);
        if (triple !== "%25" && v !== 0x20 && (v >= 0x80 ? true : hostMustEscape(vc))) {
          return false;
        }
      }
      i += 3;
      continue;
    }
    if ((mode === "host" || mode === "zone") && s.charCodeAt(i) < 0x80 && hostMustEscape(c)) {
      return false;
    }
    i++;
  }
  return true;
}

function validOptionalPort(port: string): boolean {
  if (port === "") return true;
  if (!port.startsWith(":")) return false;
  return /^[0-9]*$/.test(port.slice(1));
}

/** netip.ParseAddr succeeds and the address is not IPv4: an IPv6 address, optionally with a
 * non-empty zone (IPv4-mapped addresses count as IPv6, as in Go). */
function isIPv6Literal(s: string): boolean {
  const percent = s.indexOf("%");
  if (percent === s.length - 1) return false;
  return isIPv6(percent === -1 ? s : s.slice(0, percent));
}

function validUserinfo(s: string): boolean {
  for (const ch of s) {
    if (/^[A-Za-z0-9]$/.test(ch)) continue;
    if ("-._:~!$&'()*+,;=%@".includes(ch)) continue;
    return false;
  }
  return true;
}

function parseHost(scheme: string, host: string): boolean {
  const open = host.lastIndexOf("[");
  if (open > 0) return false;
  if (open === 0) {
    const close = host.lastIndexOf("]");
    if (close < 0) return false;
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort) || !unescapes(colonPort, "host")) return false;
    const hostname = host.slice(1, close);
    const zone = hostname.indexOf("%25");
    let unescaped: string;
    if (zone >= 0) {
      if (!unescapes(hostname.slice(0, zone), "host")) return false;
      if (!unescapes(hostname.slice(zone), "zone")) return false;
      unescaped = hostname.slice(0, zone) + decodeURIComponentSafe(hostname.slice(zone));
    } else {
      if (!unescapes(hostname, "host")) return false;
      unescaped = decodeURIComponentSafe(hostname);
    }
    return isIPv6Literal(unescaped);
  }
  let i = host.indexOf(":");
  if (i !== -1) {
    const lastColon = host.lastIndexOf(":");
    if (lastColon !== i && scheme !== "http" && scheme !== "https") i = lastColon;
    if (!validOptionalPort(host.slice(i))) return false;
  }
  return unescapes(host, "host");
}

function decodeURIComponentSafe(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** The Kubernetes CEL URL library's isURL(s): url.ParseRequestURI(s) succeeds. */
export function isURL(raw: string): boolean {
  if (containsCtl(raw)) return false;
  if (raw === "") return false;
  if (raw === "*") return true;
  const split = getScheme(raw);
  if (split === undefined) return false;
  const scheme = split.scheme.toLowerCase();
  let rest = split.rest;
  if (rest.endsWith("?") && rest.split("?").length === 2) {
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf("?");
    if (q !== -1) rest = rest.slice(0, q);
  }
  if (!rest.startsWith("/")) {
    // An opaque URL (mailto:x) when there is a scheme; a request URI must be absolute otherwise.
    return scheme !== "";
  }
  if (scheme !== "" && rest.startsWith("//")) {
    let authority = rest.slice(2);
    rest = "";
    const slash = authority.indexOf("/");
    if (slash >= 0) {
      rest = authority.slice(slash);
      authority = authority.slice(0, slash);
    }
    const at = authority.lastIndexOf("@");
    if (!parseHost(scheme, at < 0 ? authority : authority.slice(at + 1))) return false;
    if (at >= 0) {
      const userinfo = authority.slice(0, at);
      if (!validUserinfo(userinfo)) return false;
      const colon = userinfo.indexOf(":");
      const parts =
        colon === -1 ? [userinfo] : [userinfo.slice(0, colon), userinfo.slice(colon + 1)];
      if (!parts.every((p) => unescapes(p, "other"))) return false;
    }
  }
  return unescapes(rest, "other");
}

// A reader and a writer for the small subset of YAML that registries.d files use in practice:
// block mappings of block mappings, with plain or quoted keys and scalar values, and comments.
// The agent runs on every node; the `yaml` package costs about 9 MiB of resident memory
// (docs/scale.md), so it is loaded only for a file outside the subset (readYaml). The subset is
// chosen so that whatever it accepts, it reads exactly as a full YAML parser does (a property test
// checks it against the `yaml` package): anything else (flow style, sequences, anchors, aliases,
// tags, block scalars, multi-line scalars, documents, tabs, keys or values that YAML might read
// as numbers, booleans or dates) is left to the full parser.

import { createRequire } from "node:module";

/** A value of the subset: a mapping (in file order), a string, a boolean, or null. */
export type SubsetValue = null | boolean | string | SubsetMap;
export type SubsetMap = ReadonlyMap<string, SubsetValue>;

/** Plain scalars the subset reads as strings: a letter or a digit first, then a conservative
 * alphabet, and at least one letter or "/" (so that no plain scalar is a number or a date). */
const PLAIN = /^[A-Za-z0-9][A-Za-z0-9._/@:~+-]*$/;
const HAS_LETTER = /[A-Za-z/]/;
/** What YAML 1.1 or 1.2 reads as a boolean or null. */
const NOT_A_STRING = /^(?:y|yes|n|no|true|false|on|off|null|~)$/i;
/** What YAML 1.1 or 1.2 may read as a number (hexadecimal, octal, exponent, sexagesimal) or a
 * date. */
const NUMBER_OR_DATE =
  /^[-+]?(?:0x[0-9a-f_]+|0o?[0-7_]+|0b[01_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:e[-+]?[0-9]+)?)$|^[0-9]+(?::[0-9]+)+|^[0-9]{4}-[0-9]/i;

function plainString(s: string): boolean {
  return (
    PLAIN.test(s) &&
    HAS_LETTER.test(s) &&
    !NOT_A_STRING.test(s) &&
    !NUMBER_OR_DATE.test(s) &&
    !s.includes(": ") &&
    !s.endsWith(":")
  );
}

/** A double-quoted scalar written as JSON writes strings (JSON's escapes are YAML's too); only
 * printable ASCII, so no escape the two read differently. */
const QUOTED = /^"(?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\["\\/bfnrt])*"$/;

type Scalar = { ok: true; value: SubsetValue; rest: string } | { ok: false };

/** A scalar at the start of `s` (a key when `key`): quoted, or plain up to ": " / " #" / end. */
function scalar(s: string, key: boolean): Scalar {
  if (s.startsWith('"')) {
    let end = 1;
    while (end < s.length && s[end] !== '"') end += s[end] === "\\" ? 2 : 1;
    const text = s.slice(0, end + 1);
    if (!QUOTED.test(text)) return { ok: false };
    const value: unknown = JSON.parse(text);
    return typeof value === "string" ? { ok: true, value, rest: s.slice(end + 1) } : { ok: false };
  }
  // A plain key ends at the first colon followed by a space or the end of the line.
  const stop = key ? s.search(/:(?= |$)/) : s.search(/ #|$/);
  const raw = (stop === -1 ? s : s.slice(0, stop)).trimEnd();
  const rest = stop === -1 ? "" : s.slice(stop);
  if (!key && raw === "true") return { ok: true, value: true, rest };
  if (!key && raw === "false") return { ok: true, value: false, rest };
  if (!key && (raw === "null" || raw === "~")) return { ok: true, value: null, rest };
  // A plain key ends at its colon; one with a colon inside is left to the full parser.
  return plainString(raw) ? { ok: true, value: raw, rest } : { ok: false };
}

interface Line {
  readonly indent: number;
  readonly text: string;
}

/** The mapping of `text`, or undefined when `text` is outside the subset. An empty document (only
 * comments and blank lines) is null. */
export function parseYamlSubset(text: string): SubsetValue | undefined {
  const lines: Line[] = [];
  for (const rawLine of text.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line.includes("\r") || line.includes("\t") || line.startsWith("\ufeff")) return undefined;
    const body = line.trimStart();
    if (body === "" || body.startsWith("#")) continue;
    if (line.startsWith("---") || line.startsWith("...")) return undefined;
    lines.push({ indent: line.length - body.length, text: body });
  }
  if (lines.length === 0) return null;
  if (lines.length === 1 && lines[0]?.indent === 0 && lines[0].text === "{}") return new Map();
  let i = 0;
  const mapping = (indent: number): SubsetMap | undefined => {
    const out = new Map<string, SubsetValue>();
    while (i < lines.length) {
      const line = lines[i];
      if (line === undefined || line.indent < indent) break;
      if (line.indent > indent) return undefined;
      const k = scalar(line.text, true);
      if (!k.ok || typeof k.value !== "string" || !k.rest.startsWith(":")) return undefined;
      if (out.has(k.value)) return undefined; // a duplicate key: the full parser says what it means
      const after = k.rest.slice(1);
      i += 1;
      const next = lines[i];
      if (after.trim() === "" || after.trimStart().startsWith("#")) {
        if (!after.startsWith(" ") && after !== "") return undefined;
        if (next !== undefined && next.indent > indent) {
          const child = mapping(next.indent);
          if (child === undefined) return undefined;
          out.set(k.value, child);
        } else out.set(k.value, null);
        continue;
      }
      if (!after.startsWith(" ")) return undefined;
      const v = scalar(after.trimStart(), false);
      if (!v.ok) return undefined;
      const tail = v.rest.trim();
      if (tail !== "" && !(v.rest.startsWith(" ") && tail.startsWith("#"))) return undefined;
      // A deeper line after a scalar would continue it (a multi-line scalar).
      if (next !== undefined && next.indent > indent) return undefined;
      out.set(k.value, v.value);
    }
    return out;
  };
  const root = mapping(0);
  return root !== undefined && i === lines.length ? root : undefined;
}

/** `text` read as YAML: the subset when it is enough, else the `yaml` package (loaded then).
 * Mappings become plain objects, as the package gives them. */
export function readYaml(text: string): unknown {
  const subset = parseYamlSubset(text);
  if (subset !== undefined) return toPlain(subset);
  // A module, not input data: the cast names its type.
  const yaml = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  return yaml.parse(text) as unknown;
}

function toPlain(v: SubsetValue): unknown {
  if (v === null || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of v) out[k] = toPlain(x);
  return out;
}

/** A key or a value as the subset writes it: plain when it reads back as the same string, else
 * double-quoted. */
export function yamlScalar(s: string): string {
  return plainString(s) ? s : JSON.stringify(s);
}

/** A mapping of mappings of scalars (what registries.d holds) in block style, keys in the given
 * order; an empty mapping is `{}`. */
export function writeYamlSubset(doc: SubsetMap): string {
  if (doc.size === 0) return "{}\n";
  const lines: string[] = [];
  const write = (m: SubsetMap, indent: string): void => {
    for (const [k, v] of m) {
      const key = `${indent}${yamlScalar(k)}:`;
      if (v === null) lines.push(key);
      else if (typeof v === "boolean") lines.push(`${key} ${String(v)}`);
      else if (typeof v === "string") lines.push(`${key} ${yamlScalar(v)}`);
      else if (v.size === 0) lines.push(`${key} {}`);
      else {
        lines.push(key);
        write(v, `${indent}  `);
      }
    }
  };
  write(doc, "");
  return `${lines.join("\n")}\n`;
}

// A minimal TOML reader for the two node files the agent reads: CRI-O's effective configuration
// (`crio status config`) and containers-registries.conf(5).
//
// Supported: comments; `[table]` and `[[array.of.tables]]` headers with bare, quoted and dotted
// keys; `key = value` with dotted keys; basic and literal strings, single- and multi-line, with
// the standard escapes; booleans; integers and floats (with `_`, hex/octal/binary integers);
// arrays (multi-line, trailing comma, comments inside); inline tables.
// Limits: dates and times are returned as their raw text (a string), `inf`/`nan` are numbers,
// and a table that is defined implicitly by a dotted key and then again by a header is accepted
// (TOML refuses it). Duplicate keys and redefined tables are refused.

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {
  override readonly name = "TomlError";
}

const BARE_KEY = /[A-Za-z0-9_-]/;

function isTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === "object" && !Array.isArray(v);
}

class Reader {
  i = 0;
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }

  fail(message: string): never {
    const line = this.text.slice(0, this.i).split("\n").length;
    throw new TomlError(`line ${line}: ${message}`);
  }

  peek(offset = 0): string {
    return this.text[this.i + offset] ?? "";
  }

  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.i);
  }

  /** Spaces and tabs only. */
  skipBlanks(): void {
    while (this.peek() === " " || this.peek() === "\t") this.i++;
  }

  skipComment(): void {
    if (this.peek() === "#") while (this.i < this.text.length && this.peek() !== "\n") this.i++;
  }

  /** Blanks, comments and newlines (inside arrays). */
  skipAll(): void {
    for (;;) {
      this.skipBlanks();
      this.skipComment();
      if (this.peek() === "\n" || this.peek() === "\r") this.i++;
      else return;
    }
  }

  endOfLine(): void {
    this.skipBlanks();
    this.skipComment();
    if (this.peek() === "\r") this.i++;
    if (this.i >= this.text.length) return;
    if (this.peek() !== "\n") this.fail(`unexpected ${JSON.stringify(this.peek())}`);
    this.i++;
  }

  key(): string[] {
    const parts: string[] = [];
    for (;;) {
      this.skipBlanks();
      const c = this.peek();
      if (c === '"') parts.push(this.basicString());
      else if (c === "'") parts.push(this.literalString());
      else {
        const start = this.i;
        while (BARE_KEY.test(this.peek())) this.i++;
        if (this.i === start) this.fail("expected a key");
        parts.push(this.text.slice(start, this.i));
      }
      this.skipBlanks();
      if (this.peek() !== ".") return parts;
      this.i++;
    }
  }

  basicString(): string {
    if (this.startsWith('"""')) return this.multiline('"""', true);
    this.i++;
    let out = "";
    for (;;) {
      const c = this.peek();
      if (c === "" || c === "\n") this.fail("unterminated string");
      this.i++;
      if (c === '"') return out;
      out += c === "\\" ? this.escape() : c;
    }
  }

  literalString(): string {
    if (this.startsWith("'''")) return this.multiline("'''", false);
    this.i++;
    const end = this.text.indexOf("'", this.i);
    const nl = this.text.indexOf("\n", this.i);
    if (end === -1 || (nl !== -1 && nl < end)) this.fail("unterminated string");
    const s = this.text.slice(this.i, end);
    this.i = end + 1;
    return s;
  }

  multiline(delim: string, escapes: boolean): string {
    this.i += 3;
    if (this.peek() === "\n") this.i++;
    else if (this.startsWith("\r\n")) this.i += 2;
    let out = "";
    for (;;) {
      if (this.i >= this.text.length) this.fail("unterminated multi-line string");
      if (this.startsWith(delim)) {
        // Up to two quotes may end the content just before the delimiter.
        let extra = 0;
        while (extra < 2 && this.text[this.i + 3 + extra] === delim[0]) extra++;
        out += delim.slice(0, extra);
        this.i += 3 + extra;
        return out;
      }
      const c = this.peek();
      this.i++;
      if (escapes && c === "\\") {
        // A line-ending backslash trims the newline and following whitespace.
        const rest = /^[ \t]*\r?\n[\s]*/.exec(this.text.slice(this.i));
        if (rest) this.i += rest[0].length;
        else out += this.escape();
      } else out += c;
    }
  }

  escape(): string {
    const c = this.peek();
    this.i++;
    switch (c) {
      case "b":
        return "\b";
      case "t":
        return "\t";
      case "n":
        return "\n";
      case "f":
        return "\f";
      case "r":
        return "\r";
      case "e":
        return "\x1b";
      case '"':
        return '"';
      case "\\":
        return "\\";
      case "u":
      case "U": {
        const n = c === "u" ? 4 : 8;
        const hex = this.text.slice(this.i, this.i + n);
        if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== n) this.fail("bad unicode escape");
        this.i += n;
        return String.fromCodePoint(parseInt(hex, 16));
      }
      default:
        return this.fail(`bad escape \\${c}`);
    }
  }

  value(): TomlValue {
    this.skipBlanks();
    const c = this.peek();
    if (c === '"') return this.basicString();
    if (c === "'") return this.literalString();
    if (c === "[") return this.array();
    if (c === "{") return this.inlineTable();
    if (this.startsWith("true")) return this.word("true", true);
    if (this.startsWith("false")) return this.word("false", false);
    const m = /^[^\s,\]}#]+(?: [0-9][^\s,\]}#]*)?/.exec(this.text.slice(this.i));
    if (!m) return this.fail("expected a value");
    const raw = m[0];
    this.i += raw.length;
    const plain = raw.replaceAll("_", "");
    if (/^[+-]?(0|[1-9][0-9]*)$/.test(plain)) return Number(plain);
    if (/^0x[0-9A-Fa-f]+$|^0o[0-7]+$|^0b[01]+$/.test(plain)) return Number(plain);
    if (/^[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(plain)) return Number(plain);
    if (/^[+-]?(inf|nan)$/.test(plain))
      return plain.endsWith("nan") ? NaN : Number(`${plain}inity`);
    if (/^\d{4}-\d{2}-\d{2}|^\d{2}:\d{2}/.test(raw)) return raw;
    return this.fail(`bad value ${JSON.stringify(raw)}`);
  }

  word<T>(w: string, v: T): T {
    this.i += w.length;
    return v;
  }

  array(): TomlValue[] {
    this.i++;
    const out: TomlValue[] = [];
    for (;;) {
      this.skipAll();
      if (this.peek() === "]") {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.skipAll();
      if (this.peek() === ",") this.i++;
      else if (this.peek() !== "]") this.fail("expected , or ] in array");
    }
  }

  inlineTable(): TomlTable {
    this.i++;
    const out: TomlTable = {};
    this.skipBlanks();
    if (this.peek() === "}") {
      this.i++;
      return out;
    }
    for (;;) {
      const k = this.key();
      if (this.peek() !== "=") this.fail("expected =");
      this.i++;
      assign(this, out, k, this.value());
      this.skipBlanks();
      if (this.peek() === "}") {
        this.i++;
        return out;
      }
      if (this.peek() !== ",") this.fail("expected , or } in inline table");
      this.i++;
    }
  }
}

function assign(r: Reader, table: TomlTable, key: readonly string[], value: TomlValue): void {
  let t = table;
  for (const part of key.slice(0, -1)) {
    const next = t[part];
    if (next === undefined) t = t[part] = {};
    else if (isTable(next)) t = next;
    else r.fail(`key ${part} is not a table`);
  }
  const last = key.at(-1) ?? "";
  if (Object.hasOwn(t, last)) r.fail(`duplicate key ${key.join(".")}`);
  t[last] = value;
}

export function parseToml(text: string): TomlTable {
  const r = new Reader(text);
  const root: TomlTable = {};
  const defined = new Set<TomlTable>();
  let current = root;
  for (;;) {
    r.skipAll();
    if (r.i >= text.length) return root;
    if (r.startsWith("[[")) {
      r.i += 2;
      const key = r.key();
      if (!r.startsWith("]]")) r.fail("expected ]]");
      r.i += 2;
      let t = root;
      for (const part of key.slice(0, -1)) t = descend(r, t, part);
      const last = key.at(-1) ?? "";
      const existing = t[last];
      const entry: TomlTable = {};
      if (existing === undefined) t[last] = [entry];
      else if (Array.isArray(existing)) existing.push(entry);
      else r.fail(`${key.join(".")} is not an array of tables`);
      current = entry;
    } else if (r.peek() === "[") {
      r.i++;
      const key = r.key();
      if (r.peek() !== "]") r.fail("expected ]");
      r.i++;
      let t = root;
      for (const part of key) t = descend(r, t, part);
      if (defined.has(t)) r.fail(`table ${key.join(".")} defined twice`);
      defined.add(t);
      current = t;
    } else {
      const key = r.key();
      if (r.peek() !== "=") r.fail("expected =");
      r.i++;
      assign(r, current, key, r.value());
    }
    r.endOfLine();
  }
}

/** Into a sub-table, creating it; through an array of tables, into its last element. */
function descend(r: Reader, t: TomlTable, part: string): TomlTable {
  const next = t[part];
  if (next === undefined) return (t[part] = {});
  if (isTable(next)) return next;
  if (Array.isArray(next)) {
    const last = next.at(-1);
    if (isTable(last)) return last;
  }
  return r.fail(`key ${part} is not a table`);
}

/** `table[a][b]...` when every step is a table. */
export function tomlGet(table: TomlTable, ...keys: readonly string[]): TomlValue | undefined {
  let v: TomlValue | undefined = table;
  for (const k of keys) {
    if (!isTable(v)) return undefined;
    v = v[k];
  }
  return v;
}

export function tomlTables(v: TomlValue | undefined): TomlTable[] {
  return Array.isArray(v) ? v.filter(isTable) : [];
}

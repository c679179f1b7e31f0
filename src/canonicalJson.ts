// Canonical JSON: object keys sorted (with "type" first, so requirements read naturally), two-space
// indent, trailing newline. Identical input gives byte-identical output (docs/design.md rule 6), which
// is what lets the controller and the agent skip writes when nothing changed.

export function canonicalJson(value: unknown): string {
  return (write(value, "") ?? "null") + "\n";
}

function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  if (a === "type") return -1;
  if (b === "type") return 1;
  return a < b ? -1 : 1;
}

/** JSON.stringify(sorted(value), null, 2) in one pass, without copying the value. */
function write(value: unknown, indent: string): string | undefined {
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const inner = indent + "  ";
    const items = value.map((v: unknown) => inner + (write(v, inner) ?? "null"));
    return `[\n${items.join(",\n")}\n${indent}]`;
  }
  if (typeof value === "object" && value !== null) {
    const inner = indent + "  ";
    const items: string[] = [];
    for (const key of Object.keys(value).sort(compareKeys)) {
      const text = write((value as Record<string, unknown>)[key], inner);
      if (text !== undefined) items.push(`${inner}${JSON.stringify(key)}: ${text}`);
    }
    return items.length === 0 ? "{}" : `{\n${items.join(",\n")}\n${indent}}`;
  }
  return JSON.stringify(value);
}

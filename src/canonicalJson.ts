// Canonical JSON: object keys sorted (with "type" first, so requirements read naturally), two-space
// indent, trailing newline. Identical input gives byte-identical output (DESIGN.md rule 6), which
// is what lets the controller and the agent skip writes when nothing changed.

export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) + "\n";
}

function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  if (a === "type") return -1;
  if (b === "type") return 1;
  return a < b ? -1 : 1;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => compareKeys(a, b));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

// JSON values as the YAML of Kubernetes manifests holds them, checked at the boundary (no casts on
// parsed input, docs/style.md habit 4). Pure.

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export class NotJsonError extends Error {
  override readonly name = "NotJsonError";
}

export function isJsonObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `value` (from YAML's toJS()) as JSON, or NotJsonError naming where it is not. */
export function toJson(value: unknown, where = "$"): Json {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new NotJsonError(`${where}: ${String(value)} is not JSON`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => toJson(v, `${where}[${i}]`));
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJson(v, `${where}.${k}`);
    return out;
  }
  throw new NotJsonError(`${where}: a ${typeof value} is not JSON`);
}

/** The object at `keys` below `o`, or undefined. */
export function objectAt(o: Json | undefined, ...keys: string[]): JsonObject | undefined {
  let cur = o;
  for (const k of keys) {
    if (!isJsonObject(cur)) return undefined;
    cur = cur[k];
  }
  return isJsonObject(cur) ? cur : undefined;
}

export function stringAt(o: Json | undefined, ...keys: string[]): string | undefined {
  const parent = objectAt(o, ...keys.slice(0, -1));
  const last = keys.at(-1);
  if (parent === undefined || last === undefined) return undefined;
  const v = parent[last];
  return typeof v === "string" ? v : undefined;
}

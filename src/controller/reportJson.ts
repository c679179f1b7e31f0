// Node reports decoded from their JSON text without parsing the revisions maps the controller
// already holds (docs/scale.md, "Controller"). A report's status.appliedRevisions lists every
// file of its node (500 with the large fixture: ~20 KB of its ~21 KB of JSON), and during a
// rollout 5,000 nodes report one of a few maps. The API server writes a map's keys in order, so
// equal maps have equal texts: each map's text is cut out of the JSON, looked up by text in the
// interner (parsed only the first time), and the rest, a few hundred bytes, is parsed alone.
//
// The cut is checked, never trusted. The map's text ends at its first "}" and must parse as a map
// of strings (a "}" inside a string leaves a text that does not parse). The string put in its
// place (a nonce no object can know, and the cut's number) must come back as the
// status.appliedRevisions of an object, every one of them, in the order of the cuts. Anything
// else (a text this decoder does not expect) is parsed whole, as JSON.parse would.

import { randomUUID } from "node:crypto";
import { field, record, type RevisionsInterner } from "./cache.ts";

const KEY = '"appliedRevisions":{';

/** JSON.parse for list pages and watch events of ImagePolicyNodeStatus objects: the same value,
 * except that every status.appliedRevisions is the interner's shared map. */
export function reportDecoder(interner: RevisionsInterner): (json: string) => unknown {
  const nonce = `cut-${randomUUID()}-`;
  return (json): unknown => decodeReports(json, interner, nonce) ?? (JSON.parse(json) as unknown);
}

/** The decoded value, or undefined when the text is not what the cut expects. */
function decodeReports(json: string, interner: RevisionsInterner, nonce: string): unknown {
  const maps: object[] = [];
  const rest: string[] = [];
  let from = 0;
  for (let at = json.indexOf(KEY); at !== -1; at = json.indexOf(KEY, from)) {
    const start = at + KEY.length - 1;
    const end = json.indexOf("}", start) + 1;
    if (end === 0) return undefined;
    const map = interner.internText(json.slice(start, end));
    if (map === undefined) return undefined;
    rest.push(json.slice(from, start), `"${nonce}${String(maps.length)}"`);
    maps.push(map);
    from = end;
  }
  if (maps.length === 0) return undefined;
  rest.push(json.slice(from));
  let value: unknown;
  try {
    value = JSON.parse(rest.join(""));
  } catch {
    return undefined;
  }
  // A watch event holds one object, a list page its items.
  const items = field(value, "items");
  const objects = Array.isArray(items) ? (items as unknown[]) : [field(value, "object")];
  let placed = 0;
  for (const o of objects) {
    const status = record(field(o, "status"));
    if (status === undefined || field(status, "appliedRevisions") !== `${nonce}${String(placed)}`)
      continue;
    Reflect.set(status, "appliedRevisions", maps[placed]);
    placed += 1;
  }
  return placed === maps.length ? value : undefined;
}

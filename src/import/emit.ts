// The import's output: multi-document YAML, one object per document, in the order importObjects
// returns them. Deterministic: the objects are built with a fixed key order and the YAML writer
// neither folds lines nor reorders keys, so the same input gives the same bytes.

import { stringify } from "yaml";
import type { AnyImagePolicy } from "../api/types.ts";

export function emitYaml(objects: readonly AnyImagePolicy[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0, minContentWidth: 0 })).join("---\n");
}

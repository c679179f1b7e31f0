// Layer revisions (docs/internals.md): the first 16 hex digits of the SHA-256 of `layer.json`.

import { createHash } from "node:crypto";

export function layerRevision(layerJson: string): string {
  return createHash("sha256").update(layerJson).digest("hex").slice(0, 16);
}

// Expected problems are values (docs/style.md habit 5): every refusal names the object, the field path
// and a reason code, and all of them are collected, not only the first.

import type { ObjectRef } from "../api/types.ts";
import { describeRef } from "../api/types.ts";

export type Reason =
  | "Invalid"
  | "InvalidScope"
  | "InvalidKey"
  | "InvalidIdentity"
  | "SecretNotFound"
  | "UnsupportedFeature"
  | "ConflictingLookaside";

export interface Diagnostic {
  readonly object: ObjectRef;
  /** Field path in the object, like `spec.scopes[2]`. */
  readonly field: string;
  readonly reason: Reason;
  readonly message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${describeRef(d.object)}: ${d.field}: ${d.message} (${d.reason})`;
}

// Expected problems are values (docs/style.md habit 5): every refusal names the object, the field path
// and a reason code, and all of them are collected, not only the first.
//
// Two kinds of refusal (docs/api.md "Admission and compilation"): reason Invalid is what the API
// server itself refuses at admission (the CRD's schema and CEL rules, reproduced by src/api/parse.ts
// with the same field paths and messages; `admission` carries the field error's type); every other
// reason is a judgement only the compiler can make (key material, Secrets, the CRI-O version, a
// lookaside the cluster's policies forbid) and becomes a status condition on an admitted object.

import type { FieldErrorType } from "../api/schema.ts";
import type { ObjectRef } from "../api/types.ts";
import { describeRef } from "../api/types.ts";

export type Reason =
  | "Invalid"
  | "InvalidScope"
  | "InvalidKey"
  | "InvalidIdentity"
  | "SecretNotFound"
  | "UnsupportedFeature"
  | "ConflictingLookaside"
  | "LookasideNotAllowed";

export interface Diagnostic {
  readonly object: ObjectRef;
  /** Field path in the object, like `spec.scopes[2]`; "" for the object as a whole. */
  readonly field: string;
  readonly reason: Reason;
  readonly message: string;
  /** Present on refusals the API server makes at admission: the field error's type. */
  readonly admission?: FieldErrorType;
}

export function formatDiagnostic(d: Diagnostic): string {
  const at = d.field === "" ? "" : `${d.field}: `;
  return `${describeRef(d.object)}: ${at}${d.message} (${d.reason})`;
}

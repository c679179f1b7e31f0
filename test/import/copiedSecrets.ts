// The Secrets a test/import case hands to `imagepolicy import` (in policy-controller's namespace,
// cosign-system), moved to the operator's namespace as the import's `copy:` lines say: what a user
// applies beside the imported objects. Used by the golden test and the API server test.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { z } from "zod";

export const OPERATOR_NAMESPACE = "imagepolicy-system";

const secretDoc = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: z.looseObject({ name: z.string(), namespace: z.string() }),
});
const listDoc = z.looseObject({ items: z.array(z.unknown()) });

export function copiedSecrets(caseDir: string): unknown[] {
  const out: unknown[] = [];
  const visit = (v: unknown): void => {
    const list = listDoc.safeParse(v);
    if (list.success) {
      list.data.items.forEach(visit);
      return;
    }
    const s = secretDoc.safeParse(v);
    if (s.success && s.data.metadata.namespace === "cosign-system") {
      out.push({ ...s.data, metadata: { ...s.data.metadata, namespace: OPERATOR_NAMESPACE } });
    }
  };
  const input = path.join(caseDir, "input");
  for (const f of readdirSync(input).sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(input, f), "utf8"))) {
      visit(doc.toJS());
    }
  }
  return out;
}

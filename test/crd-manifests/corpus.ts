// The corpus of valid and invalid manifests, as the tests read it. Every file under valid/ must be
// admitted by the API server and by the CLI; every file under invalid/ must be refused by both,
// its first line `# expect: <text>` naming a message the refusal contains. The manifests were
// grown from the validation markers and CRD tests of OpenShift's config.openshift.io/v1
// ClusterImagePolicy and ImagePolicy (apiVersion changed), plus this API's own rules; docs/api.md
// lists where the two deliberately differ.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

export const CORPUS_DIR = import.meta.dirname;

export interface CorpusFile {
  /** Relative to the repository root, e.g. test/crd-manifests/invalid/keydata-foo-bar.yaml. */
  readonly file: string;
  readonly absolute: string;
  readonly verdict: "valid" | "invalid";
  /** For invalid manifests: text the refusal must contain. */
  readonly expect?: string;
  /** The YAML documents, as JSON values. */
  readonly documents: readonly unknown[];
}

function load(verdict: "valid" | "invalid"): CorpusFile[] {
  const dir = path.join(CORPUS_DIR, verdict);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => {
      const absolute = path.join(dir, f);
      const text = readFileSync(absolute, "utf8");
      const expect = /^# expect: (.+)$/.exec(text.split("\n", 1)[0] ?? "")?.[1];
      const documents: unknown[] = [];
      for (const d of parseAllDocuments(text, { uniqueKeys: true })) {
        const value: unknown = d.toJS();
        documents.push(value);
      }
      return {
        file: path.join("test/crd-manifests", verdict, f),
        absolute,
        verdict,
        ...(expect === undefined ? {} : { expect }),
        documents,
      };
    });
}

export const VALID = load("valid");
export const INVALID = load("invalid");
export const CORPUS = [...VALID, ...INVALID];

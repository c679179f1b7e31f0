// `imagepolicy import -f <file-or-dir>... [-o FILE] [flags]`: sigstore policy-controller and
// OpenShift objects in, this project's objects out (docs/import.md).
// Exit 0: every object converted and written. Exit 1: one line per refusal naming the object and
// the field; nothing written (unless --partial, which writes the rest and still exits 1).
// Exit 2: usage or I/O errors.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { atomicWrite } from "../atomicWrite.ts";
import { emitYaml } from "../import/emit.ts";
import { importObjects, type NoMatchPolicy } from "../import/importObjects.ts";
import { formatProblem, formatWarning } from "../import/problems.ts";
import { parseSigstoreTrust, type SigstoreTrust } from "../import/sigstoreTrust.ts";
import type { Io } from "./io.ts";
import { expand } from "./manifests.ts";

export const IMPORT_USAGE = `usage: imagepolicy import -f <file-or-dir>... [-o FILE] [flags]

Reads sigstore policy-controller ClusterImagePolicies (policy.sigstore.dev/v1alpha1, v1beta1) and
OpenShift ClusterImagePolicies and ImagePolicies (config.openshift.io/v1) and writes
imagepolicy.dev/v1alpha1 objects as multi-document YAML. What policy.json cannot express with
the same meaning is refused per object (docs/import.md).

  -f, --file PATH                      input file or directory (repeatable); Lists are read too
  -o, --out FILE                       write here instead of stdout
  --secret-namespace NS                where the referenced Secrets will live (default imagepolicy-system)
  --policy-controller-namespace NS     where policy-controller read them (default cosign-system)
  --secret-key KEY                     data key of a referenced Secret missing from the input (default cosign.pub)
  --no-match-policy allow|deny         policy-controller's no-match-policy (default: from its
                                       config-policy-controller ConfigMap in the input, else deny)
  --widen-globs                        accept a scope that covers more images than its globs
  --partial                            write what converted even if something was refused (exit 1)
  --sigstore-trust FILE                public-good Fulcio/Rekor material (default config/sigstore/public-good.yaml)`;

class ImportUsageError extends Error {
  override readonly name = "ImportUsageError";
}

class ImportReadError extends Error {
  override readonly name = "ImportReadError";
}

const DEFAULT_TRUST = path.resolve(import.meta.dirname, "../../config/sigstore/public-good.yaml");

async function readDocuments(paths: readonly string[]): Promise<unknown[]> {
  const files = (await Promise.all(paths.map(expand))).flat();
  const out: unknown[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (cause) {
      throw new ImportReadError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
    }
    for (const doc of parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true })) {
      if (doc.errors.length > 0) {
        throw new ImportReadError(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      }
      const value: unknown = doc.toJS();
      if (value !== null && value !== undefined) out.push(value);
    }
  }
  return out;
}

async function readTrust(file: string, io: Io): Promise<SigstoreTrust | undefined> {
  try {
    return parseSigstoreTrust(await readFile(file, "utf8"));
  } catch (err) {
    // Only policies naming the public-good Fulcio or Rekor need it; they are refused without it.
    io.err(`warning: Sigstore trust material ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

function parseNoMatch(value: string | undefined): NoMatchPolicy | undefined {
  if (value === undefined || value === "allow" || value === "deny") return value;
  throw new ImportUsageError(
    value === "warn"
      ? "--no-match-policy warn cannot be expressed (policy.json accepts or refuses): use allow, which admits what warn admits, or deny"
      : `--no-match-policy must be allow or deny, not ${JSON.stringify(value)}`,
  );
}

export async function importMain(argv: readonly string[], io: Io): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        file: { type: "string", short: "f", multiple: true },
        out: { type: "string", short: "o" },
        "secret-namespace": { type: "string", default: "imagepolicy-system" },
        "policy-controller-namespace": { type: "string", default: "cosign-system" },
        "secret-key": { type: "string", default: "cosign.pub" },
        "no-match-policy": { type: "string" },
        "widen-globs": { type: "boolean", default: false },
        partial: { type: "boolean", default: false },
        "sigstore-trust": { type: "string", default: DEFAULT_TRUST },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
    if (values.help === true) {
      io.out(IMPORT_USAGE);
      return 0;
    }
    if ((values.file ?? []).length === 0) {
      throw new ImportUsageError("at least one -f <file-or-dir> is required");
    }
  } catch (err) {
    io.err(`error: ${(err as Error).message}\n${IMPORT_USAGE}`);
    return 2;
  }
  try {
    const docs = await readDocuments(values.file ?? []);
    const trust = await readTrust(values["sigstore-trust"], io);
    const result = importObjects(docs, {
      secretNamespace: values["secret-namespace"],
      policyControllerNamespace: values["policy-controller-namespace"],
      defaultSecretKey: values["secret-key"],
      noMatchPolicy: parseNoMatch(values["no-match-policy"]),
      widenGlobs: values["widen-globs"],
      partial: values.partial,
      trust,
    });
    for (const w of result.warnings) io.err(`warning: ${formatWarning(w)}`);
    for (const n of result.notes) io.err(`note: ${n}`);
    for (const s of result.secretCopies) {
      io.err(
        `copy: Secret ${s.fromNamespace}/${s.name} to ${s.toNamespace}/${s.name} with data key ${JSON.stringify(s.key)}` +
          (s.seen ? "" : ` (not in the input: the key name is assumed, --secret-key)`),
      );
    }
    if (result.ignored.length > 0) io.err(`ignored: ${result.ignored.join(", ")}`);
    for (const p of result.problems) io.err(`error: ${formatProblem(p)}`);

    const refused = result.problems.length > 0;
    if (refused && !values.partial) {
      io.err(`${result.problems.length} problem(s); nothing written`);
      return 1;
    }
    const text = emitYaml(result.objects);
    if (values.out === undefined) {
      if (text !== "") io.out(text.replace(/\n$/, ""));
    } else {
      await atomicWrite(path.resolve(values.out), text);
    }
    io.err(
      `${result.objects.length} object(s) written${values.out === undefined ? "" : ` to ${values.out}`}` +
        (refused ? `; ${result.problems.length} problem(s), those objects left out` : ""),
    );
    return refused ? 1 : 0;
  } catch (err) {
    io.err(`error: ${(err as Error).message}`);
    return 2;
  }
}

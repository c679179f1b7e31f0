// The comments config/ writes above a container's flags (config/manager/deployment.yaml says why
// --pause-image must match the nodes' CRI-O), carried into the chart's values.yaml next to the
// value that sets the flag, so the chart documents each flag with the manifests' own words. Pure.

import { isMap, isScalar, isSeq, parseAllDocuments } from "yaml";

export class ManifestCommentError extends Error {
  override readonly name = "ManifestCommentError";
}

/** command (a container's first argument) -> flag name -> the comment lines above it. */
export type FlagComments = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** The comments above `--flag=...` items of every container's args in the given manifests
 * (texts of multi-document YAML files). A command found in two workloads is an error. */
export function flagComments(manifests: readonly { path: string; text: string }[]): FlagComments {
  const out = new Map<string, Map<string, string>>();
  for (const { path, text } of manifests) {
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) {
        throw new ManifestCommentError(`${path}: ${doc.errors.map((e) => e.message).join("; ")}`);
      }
      const containers = doc.getIn(["spec", "template", "spec", "containers"], true);
      if (!isSeq(containers)) continue;
      for (const container of containers.items) {
        if (!isMap(container)) continue;
        const args = container.get("args", true);
        if (!isSeq(args)) continue;
        const [first, ...rest] = args.items;
        if (!isScalar(first) || typeof first.value !== "string") continue;
        const command = first.value;
        if (out.has(command)) {
          throw new ManifestCommentError(`${path}: a second workload runs ${command}`);
        }
        const comments = new Map<string, string>();
        for (const item of rest) {
          if (!isScalar(item) || typeof item.value !== "string") continue;
          const flag = /^--([a-z0-9-]+)/.exec(item.value)?.[1];
          const comment = item.commentBefore?.trim();
          if (flag === undefined || comment === undefined || comment === "") continue;
          comments.set(flag, comment.replace(/^ ?/gm, ""));
        }
        out.set(command, comments);
      }
    }
  }
  return out;
}

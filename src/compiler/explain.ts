// Which scope decides a pull, from which policies, with which requirements: for the cluster
// layer, the namespace layer and the combined file CRI-O would read.

import type { ObjectRef } from "../api/types.ts";
import type { PolicyRequirement } from "../policyjson/types.ts";
import { combinedRequirements, combinedScopes, decide, type ScopeIndex } from "./combine.ts";
import { render } from "./requirements.ts";
import { fallbackChain, type Scope } from "./scopes.ts";

export interface LayerDecision {
  readonly scope: Scope;
  readonly sources: readonly ObjectRef[];
  readonly requirements: readonly PolicyRequirement[];
}

export interface Explanation {
  readonly image: string;
  readonly chain: readonly Scope[];
  readonly cluster: LayerDecision | null;
  readonly namespace: LayerDecision | null;
  /** The file CRI-O reads for this pull and the scope of it that decides. */
  readonly file: string;
  readonly fileScope: Scope | null;
  readonly requirements: readonly PolicyRequirement[];
}

function layerDecision(index: ScopeIndex, image: string): LayerDecision | null {
  const d = decide(index, image);
  if (d === undefined) return null;
  return {
    scope: d.scope,
    sources: d.entry.sources,
    requirements: d.entry.requirements.map(render),
  };
}

/** `image` is a normalised reference (parseImage). */
export function explain(
  image: string,
  cluster: ScopeIndex,
  namespace: ScopeIndex | undefined,
): Explanation {
  const chain = fallbackChain(image);
  const layers = namespace === undefined ? [cluster] : [cluster, namespace];
  const inFile = new Set(combinedScopes(layers));
  const fileScope = chain.find((s) => inFile.has(s)) ?? null;
  const requirements =
    fileScope === null
      ? [{ type: "insecureAcceptAnything" } as const]
      : combinedRequirements(layers, fileScope).map(render);
  return {
    image,
    chain,
    cluster: layerDecision(cluster, image),
    namespace: namespace === undefined ? null : layerDecision(namespace, image),
    file:
      namespace?.namespace === undefined ? "cluster.json" : `policies/${namespace.namespace}.json`,
    fileScope,
    requirements,
  };
}

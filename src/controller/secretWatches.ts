// The Secrets the controller reads: only those a policy references (docs/security.md, rule 6).
//
// One informer per referenced Secret, listing and watching with the field selector
// metadata.name=<name> in its namespace. The API server authorizes such a list or watch against
// RBAC resourceNames (the request's name is taken from an exact metadata.name field selector), so
// a namespace admin can grant the controller exactly the Secrets its ImagePolicies name, and an
// unreferenced Secret costs the controller nothing: no cache, no event, no memory.
//
// A Secret whose informer has not listed yet (just referenced, or the controller may not read it)
// is "pending": policies that need it keep their published form until it is read. For its first
// seconds it is only "settling" (a restarted controller lists every referenced Secret anew), and a
// policy whose published form is its current generation keeps it without a word.

import { z } from "zod";
import type { SecretLookup } from "../compiler/validate.ts";
import type { Clock, Informer, KubeObject } from "../kube/index.ts";

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

export function secretKey(ref: SecretRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Makes (does not start) the informer of one Secret. */
export type SecretInformerFactory = (ref: SecretRef) => Informer;

const secretDataSchema = z.looseObject({ data: z.record(z.string(), z.string()).optional() });

const keySourceSchema = z.looseObject({
  keySecretRef: z.looseObject({ name: z.string(), namespace: z.string().optional() }).optional(),
});
const policyRefsSchema = z.looseObject({
  spec: z
    .looseObject({
      policy: z
        .looseObject({
          rootOfTrust: z
            .looseObject({
              publicKey: keySourceSchema
                .extend({ additionalKeys: z.array(keySourceSchema).optional() })
                .optional(),
            })
            .optional(),
        })
        .optional(),
    })
    .optional(),
});

/** The Secrets `policies` may read: a ClusterImagePolicy's only in the operator namespace (rule
 * 1: one naming another namespace is refused by plan() and reads nothing), an ImagePolicy's in
 * its own namespace. Sorted by key. */
export function referencedSecrets(
  policies: readonly KubeObject[],
  operatorNamespace: string,
): SecretRef[] {
  const refs = new Map<string, SecretRef>();
  for (const o of policies) {
    const p = policyRefsSchema.safeParse(o);
    if (!p.success) continue;
    const pk = p.data.spec?.policy?.rootOfTrust?.publicKey;
    for (const source of [pk, ...(pk?.additionalKeys ?? [])]) {
      const ref = source?.keySecretRef;
      if (ref === undefined) continue;
      const namespace = o.kind === "ClusterImagePolicy" ? ref.namespace : o.metadata.namespace;
      if (namespace === undefined) continue;
      if (o.kind === "ClusterImagePolicy" && namespace !== operatorNamespace) continue;
      const r = { namespace, name: ref.name };
      refs.set(secretKey(r), r);
    }
  }
  return [...refs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, r]) => r);
}

export class SecretWatches {
  readonly #factory: SecretInformerFactory;
  readonly #onChange: () => void;
  readonly #clock: Clock;
  readonly #informers = new Map<string, { readonly informer: Informer; readonly since: number }>();

  /** `onChange` runs on every event of a watched Secret and when its first list completes. */
  constructor(factory: SecretInformerFactory, onChange: () => void, clock: Clock) {
    this.#factory = factory;
    this.#onChange = onChange;
    this.#clock = clock;
  }

  /** Watches exactly `refs`: starts the new ones, stops (and forgets) the others. */
  async watch(refs: readonly SecretRef[]): Promise<void> {
    const wanted = new Map(refs.map((r) => [secretKey(r), r]));
    const stopping: Promise<void>[] = [];
    for (const [key, { informer }] of this.#informers) {
      if (wanted.has(key)) continue;
      this.#informers.delete(key);
      stopping.push(informer.stop());
    }
    for (const [key, ref] of wanted) {
      if (this.#informers.has(key)) continue;
      const informer = this.#factory(ref);
      this.#informers.set(key, { informer, since: this.#clock.now() });
      informer.onEvent(() => {
        this.#onChange();
      });
      informer.start();
      void informer.waitForSync().then(() => {
        if (this.#informers.get(key)?.informer === informer) this.#onChange();
      });
    }
    await Promise.all(stopping);
  }

  /** Keys (namespace/name) of watched Secrets not listed yet, split by whether they were
   * started less than `graceMs` ago (settling) or not (pending). */
  unread(graceMs: number): { pending: ReadonlySet<string>; settling: ReadonlySet<string> } {
    const pending = new Set<string>();
    const settling = new Set<string>();
    const now = this.#clock.now();
    for (const [key, { informer, since }] of this.#informers) {
      if (informer.synced) continue;
      if (now - since < graceMs) settling.add(key);
      else pending.add(key);
    }
    return { pending, settling };
  }

  /** How many Secrets are watched. */
  get size(): number {
    return this.#informers.size;
  }

  readonly lookup: SecretLookup = (namespace, name, key) => {
    const informer = this.#informers.get(secretKey({ namespace, name }))?.informer;
    const s = secretDataSchema.safeParse(informer?.get(name, namespace));
    return s.success ? s.data.data?.[key] : undefined;
  };

  async stop(): Promise<void> {
    const all = [...this.#informers.values()];
    this.#informers.clear();
    await Promise.all(all.map((i) => i.informer.stop()));
  }
}

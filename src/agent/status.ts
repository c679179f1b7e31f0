// Writing this node's ImagePolicyNodeStatus (the contract is src/nodeStatus.ts): created (or
// adopted) once with the Node as owner, then patched only when something other than timestamps
// changed, with a merge patch of the fields that changed.

import type { Logger } from "../kube/index.ts";
import type { KubeObject } from "../kube/index.ts";
import {
  nodeStatus,
  parseNodeStatusObject,
  patchBody,
  type NodeStatus,
  type Observation,
} from "../nodeStatus.ts";

/** The agent's writes to the API server: its own ImagePolicyNodeStatus only. */
export interface StatusApi {
  /** The object, or undefined when it does not exist. */
  read(name: string): Promise<KubeObject | undefined>;
  /** Creates it (or sets spec and owner) by server-side apply. */
  ensure(name: string, owner: { readonly name: string; readonly uid: string }): Promise<void>;
  /** JSON merge patch of the status subresource with `patch` (the body's `status`). */
  patchStatus(name: string, patch: Record<string, unknown>): Promise<void>;
}

export class StatusReporter {
  readonly #name: string;
  readonly #api: StatusApi;
  readonly #logger: Logger;
  #checked = false;
  #reported: NodeStatus | undefined;
  #generation: number | undefined;
  /** Status writes made (the benchmarks count them). */
  writes = 0;

  constructor(name: string, api: StatusApi, logger: Logger) {
    this.#name = name;
    this.#api = api;
    this.#logger = logger;
  }

  /** Reports `o`; returns false when the API refused or could not be reached (retry). */
  async report(nodeUid: string, o: Omit<Observation, "generation">, now: string): Promise<boolean> {
    const name = this.#name;
    try {
      if (!this.#checked) {
        const existing = await this.#api.read(name);
        let parsed: ReturnType<typeof parseNodeStatusObject> | undefined;
        try {
          parsed = existing === undefined ? undefined : parseNodeStatusObject(existing);
        } catch (err) {
          this.#logger.warn({ err }, "the ImagePolicyNodeStatus does not parse: rewriting it");
        }
        if (parsed?.ownerUids.includes(nodeUid) !== true || parsed.nodeName !== name) {
          await this.#api.ensure(name, { name, uid: nodeUid });
        }
        this.#generation = parsed?.generation;
        this.#reported = parsed?.status;
        this.#checked = true;
      }
      const next = nodeStatus({ ...o, generation: this.#generation }, this.#reported, now);
      const withTime: NodeStatus = { ...next, lastUpdateTime: now };
      const patch = patchBody(withTime, this.#reported);
      if (patch === undefined) return true;
      await this.#api.patchStatus(name, patch);
      this.writes += 1;
      this.#reported = withTime;
      return true;
    } catch (err) {
      this.#logger.warn({ err }, "cannot write ImagePolicyNodeStatus; will retry");
      // Read it again before the next patch: it may not be what this process believes.
      this.#checked = false;
      return false;
    }
  }
}

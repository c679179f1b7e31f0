// The agent's file operations, injected so that tests can observe every state the node's files
// pass through (and fail a write on purpose). Writes are atomic (src/atomicWrite.ts); the agent
// decides what to write from its manifest, never by reading a policy file back.

import { access, mkdir, readdir, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { atomicWriteSync, syncDirectory } from "../atomicWrite.ts";

export interface NodeFs {
  /** Replaces `path` atomically with `data` (text, or pieces written in order); the rename is
   * durable after the next sync(). */
  write(path: string, data: string | readonly Uint8Array[]): Promise<void>;
  /** Makes every write so far durable (one fsync per directory written to). */
  sync(): Promise<void>;
  /** Returns whether a file was there. */
  remove(path: string): Promise<boolean>;
  /** undefined when the file does not exist. */
  readText(path: string): Promise<string | undefined>;
  /** undefined when the file does not exist. */
  readBytes(path: string): Promise<Buffer | undefined>;
  exists(path: string): Promise<boolean>;
  /** Names in `dir`; empty when it does not exist. */
  list(dir: string): Promise<string[]>;
  mkdirp(path: string): Promise<void>;
}

export class NodeFsError extends Error {
  override readonly name = "NodeFsError";
}

const missing = (cause: unknown): boolean => (cause as NodeJS.ErrnoException).code === "ENOENT";

/** The node's real files. One per process: it remembers the directories written since the last
 * sync. */
export function realNodeFs(): NodeFs {
  const dirty = new Set<string>();
  return {
    // Synchronous: the agent writes one file at a time anyway, and gives the event loop back
    // between files (apply.ts); it spares a thread-pool round trip and the promises of five
    // calls per file (docs/scale.md).
    write(path, data) {
      try {
        atomicWriteSync(path, data);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new NodeFsError(String(err)));
      }
      dirty.add(dirname(path));
      return new Promise((resolve) => setImmediate(resolve));
    },
    async sync() {
      for (const dir of [...dirty]) {
        await syncDirectory(dir);
        dirty.delete(dir);
      }
    },
    ...fileReads,
  };
}

const fileReads = {
  async remove(path: string): Promise<boolean> {
    try {
      await rm(path);
      return true;
    } catch (cause) {
      if (missing(cause)) return false;
      throw new NodeFsError(`cannot remove ${path}`, { cause });
    }
  },
  async readText(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, "utf8");
    } catch (cause) {
      if (missing(cause)) return undefined;
      throw new NodeFsError(`cannot read ${path}`, { cause });
    }
  },
  async readBytes(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(path);
    } catch (cause) {
      if (missing(cause)) return undefined;
      throw new NodeFsError(`cannot read ${path}`, { cause });
    }
  },
  async exists(path: string): Promise<boolean> {
    try {
      await access(path);
      return true;
    } catch (cause) {
      if (missing(cause)) return false;
      throw new NodeFsError(`cannot look at ${path}`, { cause });
    }
  },
  async list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (cause) {
      if (missing(cause)) return [];
      throw new NodeFsError(`cannot list ${dir}`, { cause });
    }
  },
  async mkdirp(path: string): Promise<void> {
    try {
      await mkdir(path, { recursive: true, mode: 0o755 });
    } catch (cause) {
      throw new NodeFsError(`cannot create ${path}`, { cause });
    }
  },
};

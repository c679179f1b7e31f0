// The agent's file operations, injected so that tests can observe every state the node's files
// pass through (and fail a write on purpose). Writes are atomic (src/atomicWrite.ts); the agent
// decides what to write from its manifest, never by reading a policy file back.

import { accessSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { atomicWriteSync, syncDirectorySync } from "../atomicWrite.ts";

export interface NodeFs {
  /** Replaces `path` atomically with `data` (text, or pieces written in order); the rename is
   * durable after the next sync(). `data` is read before the promise settles and not kept: the
   * caller may reuse its buffers then (the executor assembles each file in the same one). */
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
  /** What identifies the file's current bytes without reading them (inode, size, mtime and ctime
   * in nanoseconds): it changes when the file is replaced or written. undefined when it does not
   * exist. */
  identity(path: string): Promise<string | undefined>;
  /** Names in `dir`; empty when it does not exist. */
  list(dir: string): Promise<string[]>;
  mkdirp(path: string): Promise<void>;
}

export class NodeFsError extends Error {
  override readonly name = "NodeFsError";
}

const missing = (cause: unknown): boolean => (cause as NodeJS.ErrnoException).code === "ENOENT";

/** The node's real files. One per process: it remembers the directories written since the last
 * sync.
 *
 * Every call is synchronous behind its promise: small files on a local disk, one at a time. An
 * asynchronous call is a round trip through libuv's thread pool, and on a busy node each one
 * waits for the scheduler twice; a namespace change made ~10 of them before its file was in
 * place, and with 30 agents on two cores they cost more than the change's own work
 * (docs/scale.md, "Propagation and faults"). The event loop is given back after each write
 * (setImmediate), so a change that writes hundreds of files does not hold the watches back. */
export function realNodeFs(): NodeFs {
  const dirty = new Set<string>();
  return {
    write(path, data) {
      return attempt(() => {
        atomicWriteSync(path, data);
        dirty.add(dirname(path));
      }).then(() => new Promise((resolve) => setImmediate(resolve)));
    },
    sync() {
      return attempt(() => {
        for (const dir of [...dirty]) {
          syncDirectorySync(dir);
          dirty.delete(dir);
        }
      });
    },
    ...fileReads,
  };
}

/** `f`'s result or error as a promise. */
function attempt<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new NodeFsError(String(err)));
  }
}

function ifExists<T>(f: () => T, what: string): Promise<T | undefined> {
  return attempt(() => {
    try {
      return f();
    } catch (cause) {
      if (missing(cause)) return undefined;
      throw new NodeFsError(what, { cause });
    }
  });
}

const fileReads = {
  remove(path: string): Promise<boolean> {
    return ifExists(() => {
      rmSync(path);
      return true;
    }, `cannot remove ${path}`).then((r) => r ?? false);
  },
  readText(path: string): Promise<string | undefined> {
    return ifExists(() => readFileSync(path, "utf8"), `cannot read ${path}`);
  },
  readBytes(path: string): Promise<Buffer | undefined> {
    return ifExists(() => readFileSync(path), `cannot read ${path}`);
  },
  exists(path: string): Promise<boolean> {
    return ifExists(() => {
      accessSync(path);
      return true;
    }, `cannot look at ${path}`).then((r) => r ?? false);
  },
  identity(path: string): Promise<string | undefined> {
    return ifExists(() => {
      const st = statSync(path, { bigint: true });
      return `${String(st.ino)}:${String(st.size)}:${String(st.mtimeNs)}:${String(st.ctimeNs)}`;
    }, `cannot look at ${path}`);
  },
  list(dir: string): Promise<string[]> {
    return ifExists(() => readdirSync(dir), `cannot list ${dir}`).then((r) => r ?? []);
  },
  mkdirp(path: string): Promise<void> {
    return attempt(() => {
      try {
        mkdirSync(path, { recursive: true, mode: 0o755 });
      } catch (cause) {
        throw new NodeFsError(`cannot create ${path}`, { cause });
      }
    });
  },
};

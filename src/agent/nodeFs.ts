// The agent's file operations, injected so that tests can observe every state the node's files
// pass through (and fail a write on purpose). Writes are atomic (src/atomicWrite.ts); the agent
// decides what to write from its manifest, never by reading a policy file back.

import { access, mkdir, readdir, readFile, rm } from "node:fs/promises";
import { atomicWrite } from "../atomicWrite.ts";

export interface NodeFs {
  /** Replaces `path` atomically with `data` (text, or pieces written in order). */
  write(path: string, data: string | readonly Uint8Array[]): Promise<void>;
  /** Returns whether a file was there. */
  remove(path: string): Promise<boolean>;
  /** undefined when the file does not exist. */
  readText(path: string): Promise<string | undefined>;
  exists(path: string): Promise<boolean>;
  /** Names in `dir`; empty when it does not exist. */
  list(dir: string): Promise<string[]>;
  mkdirp(path: string): Promise<void>;
}

export class NodeFsError extends Error {
  override readonly name = "NodeFsError";
}

const missing = (cause: unknown): boolean => (cause as NodeJS.ErrnoException).code === "ENOENT";

export const realNodeFs: NodeFs = {
  write: (path, data) => atomicWrite(path, data),
  async remove(path) {
    try {
      await rm(path);
      return true;
    } catch (cause) {
      if (missing(cause)) return false;
      throw new NodeFsError(`cannot remove ${path}`, { cause });
    }
  },
  async readText(path) {
    try {
      return await readFile(path, "utf8");
    } catch (cause) {
      if (missing(cause)) return undefined;
      throw new NodeFsError(`cannot read ${path}`, { cause });
    }
  },
  async exists(path) {
    try {
      await access(path);
      return true;
    } catch (cause) {
      if (missing(cause)) return false;
      throw new NodeFsError(`cannot look at ${path}`, { cause });
    }
  },
  async list(dir) {
    try {
      return await readdir(dir);
    } catch (cause) {
      if (missing(cause)) return [];
      throw new NodeFsError(`cannot list ${dir}`, { cause });
    }
  },
  async mkdirp(path) {
    try {
      await mkdir(path, { recursive: true, mode: 0o755 });
    } catch (cause) {
      throw new NodeFsError(`cannot create ${path}`, { cause });
    }
  },
};

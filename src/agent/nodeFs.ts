// The agent's file operations, injected so that tests can observe every state the node's files
// pass through (and fail a write on purpose).

import { mkdir, readFile, rm } from "node:fs/promises";
import { writeIfChanged } from "../atomicWrite.ts";

export interface NodeFs {
  /** Atomic; returns whether it wrote (false when the bytes were already there). */
  writeIfChanged(path: string, text: string): Promise<boolean>;
  /** Returns whether a file was there. */
  remove(path: string): Promise<boolean>;
  /** undefined when the file does not exist. */
  readText(path: string): Promise<string | undefined>;
  mkdirp(path: string): Promise<void>;
}

export class NodeFsError extends Error {
  override readonly name = "NodeFsError";
}

export const realNodeFs: NodeFs = {
  writeIfChanged: (path, text) => writeIfChanged(path, text),
  async remove(path) {
    try {
      await rm(path);
      return true;
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw new NodeFsError(`cannot remove ${path}`, { cause });
    }
  },
  async readText(path) {
    try {
      return await readFile(path, "utf8");
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new NodeFsError(`cannot read ${path}`, { cause });
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

// Atomic file replacement (docs/design.md "Files on the node"): temp file in the same directory,
// write, fsync, rename, fsync the directory. A reader sees the old file or the new one, never a
// partial one. The temp name starts with "." and ends in ".tmp" so that neither CRI-O's
// `<namespace>.json` lookup nor registries.d's `*.yaml` scan can pick it up.

import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
  writevSync,
} from "node:fs";
import { open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

// Temp names for the synchronous writer: random once per process, then a counter (a random
// suffix per file cost ~0.1 ms, a tenth of the agent's CPU for a cluster change: docs/scale.md).
// Unique across processes and restarts; "wx" refuses a name that exists anyway.
const PROCESS_SUFFIX = randomBytes(6).toString("hex");
let tmpCounter = 0;
function tmpSuffix(): string {
  tmpCounter += 1;
  return `${PROCESS_SUFFIX}-${String(tmpCounter)}`;
}

export class AtomicWriteError extends Error {
  override readonly name = "AtomicWriteError";
}

/** `content` may be pieces written in order (one writev, no copy into one buffer). With
 * `syncDirectory: false` the rename is not made durable here: the caller writes several files in
 * one directory and calls syncDirectory once (the agent does, at each point where the order of
 * its writes matters). */
export async function atomicWrite(
  path: string,
  content: string | Uint8Array | readonly Uint8Array[],
  options: { readonly syncDirectory?: boolean } = {},
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "wx", 0o644);
    try {
      if (typeof content === "string" || content instanceof Uint8Array) {
        await fh.writeFile(content);
      } else {
        let pieces = [...content];
        while (pieces.length > 0) {
          const { bytesWritten } = await fh.writev(pieces);
          pieces = rest(pieces, bytesWritten);
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    if (options.syncDirectory !== false) await syncDirectory(dir);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new AtomicWriteError(`cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** atomicWrite with synchronous calls: no thread-pool round trip and no promise per call, for a
 * process that writes many files one after the other (the agent: docs/scale.md). The rename is
 * made durable by syncDirectory. */
export function atomicWriteSync(path: string, content: string | readonly Uint8Array[]): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${tmpSuffix()}.tmp`);
  try {
    const fd = openSync(tmp, "wx", 0o644);
    try {
      if (typeof content === "string") writeFileSync(fd, content);
      else {
        let pieces = [...content];
        while (pieces.length > 0) pieces = rest(pieces, writevSync(fd, pieces));
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (cause) {
    rmSync(tmp, { force: true });
    throw new AtomicWriteError(`cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** Makes the renames done in `dir` durable (fsync of the directory). */
export async function syncDirectory(dir: string): Promise<void> {
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** syncDirectory with synchronous calls (the agent's writer, as atomicWriteSync). */
export function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** What writev left unwritten of `pieces` after `written` bytes. */
function rest(pieces: readonly Uint8Array[], written: number): Uint8Array[] {
  let skip = written;
  const out: Uint8Array[] = [];
  for (const p of pieces) {
    if (skip >= p.length) skip -= p.length;
    else {
      out.push(skip === 0 ? p : p.subarray(skip));
      skip = 0;
    }
  }
  return out;
}

/** Writes only when the bytes differ (docs/design.md rule 6). Returns whether it wrote. */
export async function writeIfChanged(path: string, content: string): Promise<boolean> {
  try {
    if ((await readFile(path, "utf8")) === content) return false;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new AtomicWriteError(`cannot read ${path}`, { cause });
    }
  }
  await atomicWrite(path, content);
  return true;
}

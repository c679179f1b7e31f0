// Entry point of `imagepolicy controller`. Placeholder until the controller lands.
import type { Io } from "../cli/io.ts";

export function main(_argv: readonly string[], io: Io): Promise<number> {
  io.err("imagepolicy controller: not implemented yet");
  return Promise.resolve(2);
}

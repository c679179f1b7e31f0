// Entry point of `imagepolicy agent`. Placeholder until the agent lands.
import type { Io } from "../cli/io.ts";

export function main(_argv: readonly string[], io: Io): Promise<number> {
  io.err("imagepolicy agent: not implemented yet");
  return Promise.resolve(2);
}

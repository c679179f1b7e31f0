// The flags a command documents in its usage text (src/controller/flags.ts USAGE,
// src/agent/config.ts AGENT_USAGE), read so that the chart offers a value for every flag the
// command really has, documented with the command's own words. Pure.
//
// Format: a first line `usage: ...`, then one entry per flag, `  --name [METAVAR]  description`,
// the description continued on lines indented deeper than the flag (or starting on the next line
// when the flag and its metavar are long).

export interface FlagDoc {
  /** Without the leading dashes. */
  readonly name: string;
  /** `PATH`, `N`, `[NS=]REF`, ...; empty when the usage shows none. */
  readonly metavar: string;
  /** The description, continuation lines joined with single spaces. */
  readonly description: string;
  /** The description says "(repeatable" (the flag may be given several times). */
  readonly repeatable: boolean;
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

const FLAG_LINE = /^ {2}--([a-z0-9][a-z0-9-]*)(?: ([^\s]+))?(?: {2,}(.*))?$/;
const CONTINUATION = /^ {4,}(\S.*)$/;

export function parseUsage(text: string): FlagDoc[] {
  const lines = text.split("\n");
  if (!lines[0]?.startsWith("usage: ")) {
    throw new UsageError(`a usage text starts with "usage: ", not ${JSON.stringify(lines[0])}`);
  }
  const flags: { name: string; metavar: string; parts: string[] }[] = [];
  for (const [i, line] of lines.slice(1).entries()) {
    if (line.trim() === "") continue;
    const flag = FLAG_LINE.exec(line);
    if (flag !== null) {
      const [, name = "", metavar = "", first] = flag;
      flags.push({ name, metavar, parts: first === undefined ? [] : [first.trim()] });
      continue;
    }
    const cont = CONTINUATION.exec(line);
    const last = flags.at(-1);
    if (cont === null || last === undefined) {
      throw new UsageError(`usage line ${i + 2} is neither a flag nor a continuation: ${line}`);
    }
    last.parts.push(cont[1] ?? "");
  }
  const seen = new Set<string>();
  return flags.map(({ name, metavar, parts }) => {
    if (seen.has(name)) throw new UsageError(`--${name} is documented twice`);
    seen.add(name);
    const description = parts.join(" ");
    return { name, metavar, description, repeatable: description.includes("(repeatable") };
  });
}

// JSON.parse silently keeps the last of duplicated keys; for security configuration a duplicate
// is an error (a reader and a writer could disagree about which one counts). This scanner walks
// the text once and reports the first duplicated key with its path, then defers to JSON.parse.

export class StrictJsonError extends Error {
  override readonly name = "StrictJsonError";
}

export function parseStrictJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new StrictJsonError(`invalid JSON: ${(cause as Error).message}`, { cause });
  }
  checkDuplicateKeys(text);
  return value;
}

function checkDuplicateKeys(text: string): void {
  // Only objects need tracking; JSON.parse has already proven the text well formed. A frame's path
  // is only spelled out for an error (every layer parse goes through here: docs/scale.md).
  const stack: { keys: Set<string> | null; pendingKey: string | null; index: number }[] = [];
  const pathOf = (depth: number): string => {
    let path = "$";
    for (let k = 0; k < depth; k++) {
      const f = stack[k];
      if (f === undefined) break;
      path += f.keys !== null ? `.${f.pendingKey ?? "?"}` : `[${f.index}]`;
    }
    return path;
  };
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const top = stack.at(-1);
      // A string directly inside an object, in key position, is followed by ':'.
      let j = end;
      while (j < text.length && isSpace(text.charCodeAt(j))) j++;
      if (top?.keys && text.charCodeAt(j) === COLON) {
        const raw = text.slice(i + 1, end - 1);
        const key = raw.includes("\\") ? (JSON.parse(text.slice(i, end)) as string) : raw;
        if (top.keys.has(key)) {
          throw new StrictJsonError(
            `duplicate key ${JSON.stringify(key)} at ${pathOf(stack.length - 1)}`,
          );
        }
        top.keys.add(key);
        top.pendingKey = key;
      }
      i = end;
      continue;
    }
    if (c === OPEN_OBJECT) stack.push({ keys: new Set(), pendingKey: null, index: 0 });
    else if (c === OPEN_ARRAY) stack.push({ keys: null, pendingKey: null, index: 0 });
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) stack.pop();
    else if (c === COMMA) {
      const top = stack.at(-1);
      if (top && top.keys === null) top.index++;
    }
    i++;
  }
}

const QUOTE = 0x22;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const BACKSLASH = 0x5c;

/** JSON's whitespace (JSON.parse accepted the text: nothing else appears between tokens). */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  return i;
}

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
  // Only objects need tracking; JSON.parse has already proven the text well formed.
  const stack: {
    keys: Set<string> | null;
    path: string;
    pendingKey: string | null;
    index: number;
  }[] = [];
  let i = 0;
  const childPath = (): string => {
    const top = stack.at(-1);
    if (top === undefined) return "$";
    if (top.keys !== null) return `${top.path}.${top.pendingKey ?? "?"}`;
    return `${top.path}[${top.index}]`;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      const top = stack.at(-1);
      // A string directly inside an object, in key position, is followed by ':'.
      let j = end;
      while (j < text.length && /\s/.test(text[j] ?? "")) j++;
      if (top?.keys && text[j] === ":") {
        const key = JSON.parse(text.slice(i, end)) as string;
        if (top.keys.has(key)) {
          throw new StrictJsonError(`duplicate key ${JSON.stringify(key)} at ${top.path}`);
        }
        top.keys.add(key);
        top.pendingKey = key;
      }
      i = end;
      continue;
    }
    if (c === "{") {
      stack.push({ keys: new Set(), path: childPath(), pendingKey: null, index: 0 });
    } else if (c === "[") {
      stack.push({ keys: null, path: childPath(), pendingKey: null, index: 0 });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      const top = stack.at(-1);
      if (top && top.keys === null) top.index++;
    }
    i++;
  }
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\") i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return i;
}

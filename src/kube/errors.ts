// Errors of the Kubernetes adapter: Error subclasses with the HTTP status and the cause, so callers
// test `isNotFound(err)` instead of reaching into response shapes.

export class KubeError extends Error {
  /** HTTP status of the failed request, when there was a response. */
  readonly status: number | undefined;
  constructor(message: string, options: ErrorOptions & { status?: number | undefined }) {
    super(message, options);
    this.name = new.target.name;
    this.status = options.status;
  }
}

/** A watch ended with 410 Gone (resourceVersion too old): the informer lists again. */
export class ResourceExpiredError extends KubeError {}

/** The KubeConfig could not be loaded. */
export class KubeConfigError extends Error {
  override readonly name = "KubeConfigError";
}

/** HTTP status carried by a client-node ApiException (`code`), a watch error (`statusCode`) or a
 * KubeError (`status`). */
export function statusOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  if (err instanceof KubeError) return err.status;
  for (const key of ["code", "statusCode"] as const) {
    const v: unknown = (err as Readonly<Record<string, unknown>>)[key];
    if (typeof v === "number") return v;
  }
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusOf(err) === 409;
export const isGone = (err: unknown): boolean => statusOf(err) === 410;

/** "<operation>: HTTP <status>: <the API server's message>" for anything client-node throws. */
export function describeFailure(operation: string, cause: unknown): string {
  const status = statusOf(cause);
  return `${operation}: ${status === undefined ? "" : `HTTP ${status}: `}${messageOf(cause)}`;
}

function messageOf(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const body: unknown = (err as Readonly<Record<string, unknown>>)["body"];
    const text = typeof body === "string" ? body : undefined;
    if (text !== undefined) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === "object" && parsed !== null) {
          const m: unknown = (parsed as Readonly<Record<string, unknown>>)["message"];
          if (typeof m === "string") return m;
        }
      } catch {
        return text.slice(0, 500);
      }
    }
  }
  if (err instanceof Error) return err.message.split("\n")[0] ?? err.message;
  return String(err);
}

// HTTP to the API server on node:http(s) alone: one keep-alive connection pool, TLS from the
// kubeconfig, a bearer token (a token FILE is re-read at least every minute and after every 401,
// because the kubelet replaces a projected ServiceAccount token while the pod runs, as client-go's
// cached token source does), and two shapes of call: a request with a whole body, and a stream
// of newline-separated JSON (a watch).
//
// Credentials of kubeconfig users with `exec` or `auth-provider` come from
// @kubernetes/client-node, imported on the first request of such a user only: it costs about
// 80 MiB of memory (docs/scale.md), which no in-cluster process should pay.

import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import type { RequestOptions } from "node:https";
import { http, https } from "../nodeHttp.ts";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { KubeConfigError, KubeError } from "./errors.ts";
import { KubeConfig } from "./kubeconfig.ts";

/** What the transport needs of @kubernetes/client-node's KubeConfig: a server and a way to put
 * credentials on a request. Tests that never dial pass one too. */
export interface ExternalKubeConfig {
  getCurrentCluster(): { readonly server: string } | null;
  applyToHTTPSOptions(options: RequestOptions): Promise<void>;
}

export interface TransportResponse {
  readonly status: number;
  readonly text: string;
}

export interface RequestInit {
  readonly body?: string;
  readonly contentType?: string;
  readonly signal?: AbortSignal | undefined;
  readonly timeoutMs?: number;
}

/** How long a token file is trusted before it is read again (client-go: one minute). */
const TOKEN_FILE_TTL_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 60_000;

export class Transport {
  readonly server: string;
  readonly #config: KubeConfig | ExternalKubeConfig;
  readonly #clock: Clock;
  readonly #https = new https.Agent({ keepAlive: true, maxSockets: 16 });
  readonly #http = new http.Agent({ keepAlive: true, maxSockets: 16 });
  #token: { readonly value: string; readonly readAt: number } | undefined;
  #plugin: Promise<ExternalKubeConfig> | undefined;

  constructor(config: KubeConfig | ExternalKubeConfig, clock: Clock = systemClock) {
    this.#config = config;
    this.#clock = clock;
    if (config instanceof KubeConfig) this.server = config.server;
    else {
      const cluster = config.getCurrentCluster();
      if (cluster === null) throw new KubeConfigError("the kubeconfig has no current cluster");
      this.server = cluster.server.replace(/\/+$/, "");
    }
  }

  /** One request; the whole response body as text. Network failures are KubeErrors without a
   * status. A 401 with a token file re-reads the file and tries once more. */
  async request(method: string, path: string, init: RequestInit = {}): Promise<TransportResponse> {
    const first = await this.#once(method, path, init, false);
    if (first.status !== 401 || !this.#rotates()) return first;
    return this.#once(method, path, init, true);
  }

  /** GETs `path` and calls `onLine` for every line of the body as it arrives. Resolves with the
   * status when the server ends the body (or `signal` aborts, or nothing arrived for
   * `idleTimeoutMs`); a non-200 answer resolves with its status and body text. */
  async stream(
    path: string,
    onLine: (line: string) => void,
    signal: AbortSignal,
    idleTimeoutMs: number,
  ): Promise<TransportResponse> {
    const res = await this.#open("GET", path, { signal, timeoutMs: idleTimeoutMs }, false);
    if (res.statusCode === 401 && this.#rotates()) this.#token = undefined;
    if (res.statusCode !== 200) {
      return { status: res.statusCode ?? 0, text: await bodyText(res) };
    }
    return new Promise<TransportResponse>((resolve, reject) => {
      let pending: Buffer[] = [];
      res.on("data", (chunk: Buffer) => {
        let start = 0;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
          pending.push(chunk.subarray(start, i));
          const line = Buffer.concat(pending).toString("utf8");
          pending = [];
          start = i + 1;
          if (line.trim() !== "") {
            try {
              onLine(line);
            } catch (err) {
              res.destroy(err instanceof Error ? err : new KubeError(String(err), {}));
              return;
            }
          }
        }
        if (start < chunk.length) pending.push(chunk.subarray(start));
      });
      res.on("end", () => {
        resolve({ status: 200, text: "" });
      });
      res.on("error", (err) => {
        if (signal.aborted || isIdle(err)) resolve({ status: 200, text: "" });
        else reject(new KubeError(`GET ${path}: ${err.message}`, { cause: err }));
      });
      res.on("close", () => {
        resolve({ status: 200, text: "" });
      });
    });
  }

  async #once(
    method: string,
    path: string,
    init: RequestInit,
    fresh: boolean,
  ): Promise<TransportResponse> {
    const res = await this.#open(method, path, init, fresh);
    if (res.statusCode === 401 && this.#rotates()) this.#token = undefined;
    return { status: res.statusCode ?? 0, text: await bodyText(res) };
  }

  #rotates(): boolean {
    return this.#config instanceof KubeConfig && this.#config.credentials.kind === "tokenFile";
  }

  async #open(
    method: string,
    path: string,
    init: RequestInit,
    freshToken: boolean,
  ): Promise<IncomingMessage> {
    const url = new URL(this.server + path);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (init.contentType !== undefined) headers["Content-Type"] = init.contentType;
    const options: RequestOptions = { method, headers };
    await this.#authenticate(options, headers, freshToken);
    const isHttp = url.protocol === "http:";
    options.agent = isHttp ? this.#http : this.#https;
    if (init.signal !== undefined) options.signal = init.signal;
    options.timeout = init.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (isHttp ? http.request : https.request)(url, options, resolve);
      req.on("timeout", () => {
        req.destroy(new IdleError(`${method} ${path}: no answer within ${options.timeout} ms`));
      });
      req.on("error", (cause) => {
        reject(new KubeError(`${method} ${path}: ${cause.message}`, { cause }));
      });
      if (init.body !== undefined) req.end(init.body);
      else req.end();
    });
  }

  async #authenticate(
    options: RequestOptions,
    headers: Record<string, string>,
    freshToken: boolean,
  ): Promise<void> {
    const config = this.#config;
    if (!(config instanceof KubeConfig)) {
      await this.#external(config, options, headers);
      return;
    }
    const tls = config.tls;
    options.rejectUnauthorized = tls.rejectUnauthorized;
    if (tls.ca !== undefined) options.ca = tls.ca;
    if (tls.cert !== undefined) options.cert = tls.cert;
    if (tls.key !== undefined) options.key = tls.key;
    if (tls.servername !== undefined) options.servername = tls.servername;
    const c = config.credentials;
    switch (c.kind) {
      case "none":
        return;
      case "token":
        headers["Authorization"] = `Bearer ${c.token}`;
        return;
      case "tokenFile":
        headers["Authorization"] = `Bearer ${await this.#tokenFrom(c.path, freshToken)}`;
        return;
      case "basic":
        headers["Authorization"] =
          `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
        return;
      case "plugin": {
        this.#plugin ??= loadPlugin(c.kubeconfigPath, c.context);
        await this.#external(await this.#plugin, options, headers);
        return;
      }
      default: {
        const _exhaustive: never = c;
        return _exhaustive;
      }
    }
  }

  /** Lets client-node set TLS and credentials, then keeps its options but not its agent (a new
   * one per request): the pool here is reused. */
  async #external(
    config: ExternalKubeConfig,
    options: RequestOptions,
    headers: Record<string, string>,
  ): Promise<void> {
    const probe: RequestOptions = { headers: {} };
    await config.applyToHTTPSOptions(probe);
    for (const key of ["ca", "cert", "key", "rejectUnauthorized", "servername", "auth"] as const) {
      if (probe[key] !== undefined) Object.assign(options, { [key]: probe[key] });
    }
    const extra = probe.headers;
    if (extra !== undefined && !Array.isArray(extra)) {
      for (const [k, v] of Object.entries(extra)) if (typeof v === "string") headers[k] = v;
    }
  }

  async #tokenFrom(file: string, fresh: boolean): Promise<string> {
    const now = this.#clock.now();
    const cached = this.#token;
    if (!fresh && cached !== undefined && now - cached.readAt < TOKEN_FILE_TTL_MS) {
      return cached.value;
    }
    let value: string;
    try {
      value = (await readFile(file, "utf8")).trim();
    } catch (cause) {
      // A token being replaced: keep using the last one rather than none.
      if (cached !== undefined) return cached.value;
      throw new KubeConfigError(`cannot read the token file ${file}`, { cause });
    }
    this.#token = { value, readAt: now };
    return value;
  }

  /** Closes idle pooled connections (the process can then exit without waiting for them). */
  close(): void {
    this.#https.destroy();
    this.#http.destroy();
  }
}

class IdleError extends Error {
  override readonly name = "IdleError";
}

function isIdle(err: unknown): boolean {
  return err instanceof IdleError || (err instanceof Error && err.cause instanceof IdleError);
}

async function loadPlugin(file: string, context: string): Promise<ExternalKubeConfig> {
  try {
    const { KubeConfig: ClientNodeKubeConfig } = await import("@kubernetes/client-node");
    const kc = new ClientNodeKubeConfig();
    kc.loadFromFile(file);
    kc.setCurrentContext(context);
    return kc;
  } catch (cause) {
    throw new KubeConfigError(
      `cannot resolve the credentials of ${file} with @kubernetes/client-node: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function bodyText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => {
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    res.on("error", reject);
  });
}

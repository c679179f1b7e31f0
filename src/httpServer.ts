// /metrics, /healthz and /readyz on listen addresses given by flags ("host:port", ":port").

import type { Server } from "node:http";
import { http } from "./nodeHttp.ts";
import type { AddressInfo } from "node:net";
/** A metrics registry: prom-client's Registry, or the agent's own (src/agent/metrics.ts). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface Endpoints {
  readonly registry?: MetricsSource;
  readonly healthy?: () => boolean;
  readonly ready?: () => boolean;
}

export class AddressError extends Error {
  override readonly name = "AddressError";
}

export function parseAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const portText = addr.slice(i + 1);
  const port = Number(portText);
  if (i === -1 || portText === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AddressError(`not a listen address (host:port or :port): ${JSON.stringify(addr)}`);
  }
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host: host === "" ? "0.0.0.0" : host, port };
}

export interface Listening {
  readonly url: string;
  close(): Promise<void>;
}

export async function serve(addr: string, e: Endpoints): Promise<Listening> {
  const { host, port } = parseAddress(addr);
  const server: Server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/metrics" && e.registry !== undefined) {
      const registry = e.registry;
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else if (path === "/healthz" && e.healthy !== undefined) {
      const ok = e.healthy();
      res.writeHead(ok ? 200 : 500).end(ok ? "ok\n" : "unhealthy\n");
    } else if (path === "/readyz" && e.ready !== undefined) {
      const ok = e.ready();
      res.writeHead(ok ? 200 : 503).end(ok ? "ok\n" : "not ready\n");
    } else res.writeHead(404).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.address.includes(":") ? `[${a.address}]` : a.address}:${String(a.port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

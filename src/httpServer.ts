// /metrics, /healthz and /readyz on listen addresses given by flags ("host:port", ":port").
//
// Who may read what (docs/security.md): /metrics is served on loopback addresses only (127.0.0.0/8,
// ::1, localhost): it tells which policies are refused and how the rollout goes, and nothing here
// authenticates its callers, so a sidecar or `kubectl port-forward` reads it, not the pod network.
// /healthz and /readyz answer the kubelet's probes on the pod's address, so they may listen
// anywhere, and they say nothing but ok / not ok.

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

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  const parts = v4.split(".");
  return (
    parts.length === 4 &&
    parts[0] === "127" &&
    parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)
  );
}

export interface Listening {
  readonly url: string;
  close(): Promise<void>;
}

export async function serve(addr: string, e: Endpoints): Promise<Listening> {
  const { host, port } = parseAddress(addr);
  if (e.registry !== undefined && !isLoopback(host)) {
    throw new AddressError(
      `metrics are served on a loopback address only (127.0.0.1:PORT or [::1]:PORT), not ${JSON.stringify(addr)}: nothing authenticates their readers`,
    );
  }
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

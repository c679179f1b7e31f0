// Where the API server is and how to authenticate, from a kubeconfig file or the in-cluster
// ServiceAccount (docs/scale.md says why this is not @kubernetes/client-node's KubeConfig).
//
// Read here: the current context's cluster (server, certificate-authority[-data],
// insecure-skip-tls-verify, tls-server-name) and user (client-certificate[-data] and
// client-key[-data], token, tokenFile, username/password). Relative file paths are relative to
// the kubeconfig's directory, as kubectl reads them. A user with an `exec` or `auth-provider`
// entry (cloud CLIs, OIDC) is a "plugin" user: its credentials are resolved by
// @kubernetes/client-node, loaded only then (transport.ts).
//
// In cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the ServiceAccount's CA
// and its token FILE, which the kubelet rotates (transport.ts re-reads it).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { KubeConfigError } from "./errors.ts";

export type KubeConfigSource =
  { readonly kind: "file"; readonly path: string } | { readonly kind: "in-cluster" };

/** PEM text or bytes, read once when the configuration is loaded. */
export type Pem = string | Buffer;

export interface TlsSettings {
  readonly ca?: Pem;
  readonly cert?: Pem;
  readonly key?: Pem;
  /** false only with insecure-skip-tls-verify. */
  readonly rejectUnauthorized: boolean;
  readonly servername?: string;
}

export type Credentials =
  | { readonly kind: "none" }
  | { readonly kind: "token"; readonly token: string }
  /** A bearer token in a file that is replaced while the process runs. */
  | { readonly kind: "tokenFile"; readonly path: string }
  | { readonly kind: "basic"; readonly username: string; readonly password: string }
  /** exec or auth-provider: resolved by @kubernetes/client-node from this file and context. */
  | { readonly kind: "plugin"; readonly kubeconfigPath: string; readonly context: string };

export class KubeConfig {
  /** e.g. https://10.96.0.1:443, without a trailing slash. */
  readonly server: string;
  readonly tls: TlsSettings;
  readonly credentials: Credentials;
  /** For messages: the file, or "in-cluster". */
  readonly origin: string;

  constructor(init: {
    server: string;
    tls: TlsSettings;
    credentials: Credentials;
    origin: string;
  }) {
    let url: URL;
    try {
      url = new URL(init.server);
    } catch (cause) {
      throw new KubeConfigError(
        `${init.origin}: server ${JSON.stringify(init.server)} is not a URL`,
        {
          cause,
        },
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new KubeConfigError(`${init.origin}: server ${init.server} is not http(s)`);
    }
    this.server = init.server.replace(/\/+$/, "");
    this.tls = init.tls;
    this.credentials = init.credentials;
    this.origin = init.origin;
  }
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Loads a kubeconfig file, or the in-cluster ServiceAccount configuration (from `env`, which
 * only main passes; the default keeps older callers working). */
export function loadKubeConfig(
  source: KubeConfigSource,
  env: Readonly<Record<string, string | undefined>> = process.env,
): KubeConfig {
  if (source.kind === "in-cluster") return inCluster(env, SERVICE_ACCOUNT_DIR);
  let text: string;
  try {
    text = readFileSync(source.path, "utf8");
  } catch (cause) {
    throw new KubeConfigError(
      `cannot load kubeconfig ${source.path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return fromKubeconfig(parseKubeconfigText(text, source.path), source.path);
}

/** The in-cluster configuration with the ServiceAccount files under `dir` (tests pass their own). */
export function inCluster(
  env: Readonly<Record<string, string | undefined>>,
  dir: string,
): KubeConfig {
  const host = env["KUBERNETES_SERVICE_HOST"];
  const port = env["KUBERNETES_SERVICE_PORT"];
  if (host === undefined || host === "" || port === undefined || port === "") {
    throw new KubeConfigError(
      "cannot load the in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set",
    );
  }
  let ca: Buffer;
  try {
    ca = readFileSync(path.join(dir, "ca.crt"));
  } catch (cause) {
    throw new KubeConfigError(
      `cannot load the in-cluster configuration: ${(cause as Error).message}`,
      { cause },
    );
  }
  return new KubeConfig({
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    tls: { ca, rejectUnauthorized: true },
    credentials: { kind: "tokenFile", path: path.join(dir, "token") },
    origin: "in-cluster",
  });
}

/** JSON (what tests write) needs no YAML parser; anything else loads `yaml` synchronously. */
function parseKubeconfigText(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Not JSON: YAML.
  }
  // A module, not input data: the cast names its type.
  const yaml = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  try {
    return yaml.parse(text) as unknown;
  } catch (cause) {
    throw new KubeConfigError(`cannot load kubeconfig ${file}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

type Doc = Readonly<Record<string, unknown>>;

function isDoc(v: unknown): v is Doc {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function named(list: unknown, name: string, field: string, file: string): Doc {
  if (Array.isArray(list)) {
    for (const item of list) {
      if (isDoc(item) && item["name"] === name) {
        const inner = item[field];
        if (isDoc(inner)) return inner;
        if (inner === undefined || inner === null) return {};
      }
    }
  }
  throw new KubeConfigError(`kubeconfig ${file}: no ${field} named ${JSON.stringify(name)}`);
}

function str(d: Doc, key: string, file: string): string | undefined {
  const v = d[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string")
    throw new KubeConfigError(`kubeconfig ${file}: ${key} is not a string`);
  return v;
}

/** Inline base64 data, else a file relative to the kubeconfig's directory. */
function pem(d: Doc, dataKey: string, fileKey: string, file: string): Pem | undefined {
  const data = str(d, dataKey, file);
  if (data !== undefined) return Buffer.from(data, "base64");
  const p = str(d, fileKey, file);
  if (p === undefined) return undefined;
  const full = path.resolve(path.dirname(file), p);
  try {
    return readFileSync(full);
  } catch (cause) {
    throw new KubeConfigError(`kubeconfig ${file}: cannot read ${fileKey} ${full}`, { cause });
  }
}

export function fromKubeconfig(doc: unknown, file: string): KubeConfig {
  if (!isDoc(doc)) throw new KubeConfigError(`kubeconfig ${file} is not a mapping`);
  const contextName = str(doc, "current-context", file);
  if (contextName === undefined) {
    throw new KubeConfigError("the kubeconfig has no current cluster");
  }
  const context = named(doc["contexts"], contextName, "context", file);
  const clusterName = str(context, "cluster", file);
  if (clusterName === undefined) throw new KubeConfigError("the kubeconfig has no current cluster");
  const cluster = named(doc["clusters"], clusterName, "cluster", file);
  const userName = str(context, "user", file);
  const user = userName === undefined ? {} : named(doc["users"], userName, "user", file);
  const server = str(cluster, "server", file);
  if (server === undefined) throw new KubeConfigError(`kubeconfig ${file}: cluster has no server`);
  const insecure = cluster["insecure-skip-tls-verify"] === true;
  const ca = pem(cluster, "certificate-authority-data", "certificate-authority", file);
  const cert = pem(user, "client-certificate-data", "client-certificate", file);
  const key = pem(user, "client-key-data", "client-key", file);
  const servername = str(cluster, "tls-server-name", file);
  const tls: TlsSettings = {
    rejectUnauthorized: !insecure,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(servername === undefined ? {} : { servername }),
  };
  let credentials: Credentials = { kind: "none" };
  const token = str(user, "token", file);
  const tokenFile = str(user, "tokenFile", file);
  const username = str(user, "username", file);
  if (user["exec"] !== undefined || user["auth-provider"] !== undefined) {
    credentials = { kind: "plugin", kubeconfigPath: file, context: contextName };
  } else if (token !== undefined) credentials = { kind: "token", token };
  else if (tokenFile !== undefined) {
    credentials = { kind: "tokenFile", path: path.resolve(path.dirname(file), tokenFile) };
  } else if (username !== undefined) {
    credentials = { kind: "basic", username, password: str(user, "password", file) ?? "" };
  }
  return new KubeConfig({ server, tls, credentials, origin: file });
}

// node:http and node:https, loaded with require rather than an ESM import. An ESM import of a
// builtin builds its module namespace, which evaluates every lazy export; node:http's pull in
// Node's bundled undici (fetch, WebSocket): about 11 MiB of resident memory in every process that
// only wanted an HTTP client (docs/scale.md). Types come from the modules themselves.

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** node:http. */
export const http = require("node:http") as typeof import("node:http");
/** node:https. */
export const https = require("node:https") as typeof import("node:https");

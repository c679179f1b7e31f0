// The large fixture shared by the benchmarks (bench/compile.ts, bench/controller.ts): 200
// ClusterImagePolicies covering exactly 500 distinct scopes and 2,000 ImagePolicies over 500
// namespaces, a pure function of the seed. A seeded PRNG picks every name, scope and policy, and
// the 30 P-256 keys are derived from it too, so the objects are identical on every run.

import { createECDH, createPublicKey } from "node:crypto";
import {
  clusterImagePolicySchema,
  imagePolicySchema,
  type AnyImagePolicy,
  type ClusterImagePolicy,
  type ImagePolicy,
} from "../src/api/types.ts";
import type { ScopeIndex } from "../src/compiler/combine.ts";
import {
  accepting,
  cip,
  ip,
  rejecting,
  withIdentity,
  withKey,
  withScopes,
} from "../test/support/builders.ts";

export const CLUSTER_POLICIES = 200;
export const CLUSTER_SCOPES = 500;
export const IMAGE_POLICIES = 2000;
export const NAMESPACES = 500;
export const KEYS = 30;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: small, fast, good enough to shape a fixture; never Math.random. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return at(items, this.int(items.length));
  }
  /** Index drawn with weights proportional to `weights`. */
  weighted(weights: readonly number[]): number {
    const total = weights.reduce((a, b) => a + b, 0);
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= at(weights, i);
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [at(out, j), at(out, i)];
    }
    return out;
  }
}

export class BenchError extends Error {
  override readonly name = "BenchError";
}

export function at<T>(items: readonly T[], i: number): T {
  const v = items[i];
  if (v === undefined) throw new BenchError(`index ${i} out of range (${items.length})`);
  return v;
}

/** Base64 of a PEM P-256 public key whose private scalar comes from `rng`. */
function p256PublicKey(rng: Rng): string {
  const d = Buffer.alloc(32);
  for (let i = 0; i < d.length; i++) d[i] = rng.int(256);
  d[0] = 1 + rng.int(0x7f); // non-zero and below the group order
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(d);
  const point = ecdh.getPublicKey(); // 0x04 || x || y
  const key = createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: point.subarray(1, 33).toString("base64url"),
      y: point.subarray(33, 65).toString("base64url"),
    },
    format: "jwk",
  });
  return Buffer.from(key.export({ type: "spki", format: "pem" }).toString()).toString("base64");
}

// ---------------------------------------------------------------------------------------------
// Fixture

const REGISTRIES = [
  "docker.io",
  "quay.io",
  "ghcr.io",
  "gcr.io",
  "registry.k8s.io",
  "public.ecr.aws",
  "mcr.microsoft.com",
  "registry.redhat.io",
  "nvcr.io",
  "registry.gitlab.com",
  "harbor.corp.example.com",
  "registry.internal.example.com:5000",
  "artifactory.example.net:8443",
  "registry.dev.example.org",
  "images.acme.io",
  "cr.eu.acme.io",
  "10.20.0.15:5000",
  "192.168.1.50",
  "172.16.4.2:443",
  "localhost:5000",
] as const;
/** Pulls cluster mostly on a few registries. */
const REGISTRY_WEIGHTS = REGISTRIES.map((_, i) => 1 / (i + 1) ** 0.6);
const WILDCARDS = ["*.example.com", "*.corp.example.com", "*.acme.io", "*.example.org"];
const ORGS = [
  "acme",
  "platform",
  "payments",
  "data",
  "ml",
  "infra",
  "security",
  "web",
  "mobile",
  "search",
  "observability",
  "identity",
  "storage",
  "networking",
  "release",
  "bitnami",
  "prometheus",
  "grafana",
  "jetstack",
  "istio",
];
const APPS = [
  "api",
  "worker",
  "frontend",
  "gateway",
  "scheduler",
  "ingest",
  "billing",
  "auth",
  "cache",
  "proxy",
  "exporter",
  "operator",
  "controller",
  "agent",
  "cli",
  "db-migrate",
  "notifier",
  "reporter",
  "nginx",
  "redis",
  "postgres",
  "busybox",
  "alpine",
  "pause",
  "envoy",
  "kafka",
];
const SUBS = ["base", "tools", "jobs", "batch", "debug", "fips", "slim", "distroless"];
const TAGS = ["v1", "v2.3.1", "1.36", "stable", "lts", "2024.06", "3.19", "release-1.30"];
const TEAMS = [
  "payments",
  "checkout",
  "search",
  "ads",
  "identity",
  "billing",
  "ml-platform",
  "data-eng",
  "observability",
  "security",
  "web",
  "mobile-api",
  "growth",
  "catalog",
  "inventory",
  "shipping",
  "support",
  "analytics",
  "infra",
  "storage",
  "messaging",
  "media",
  "notifications",
  "risk",
  "ledger",
];
const ENVS = [
  "dev",
  "staging",
  "prod",
  "qa",
  "ci",
  "sandbox",
  "eu",
  "us",
  "apac",
  "batch",
  "ml",
  "web",
  "api",
  "data",
  "ops",
  "edge",
  "canary",
  "perf",
  "demo",
  "tools",
];

/** A scope as a user writes it and in its normalised form (what makes it distinct). */
interface ScopeSpec {
  readonly raw: string;
  readonly norm: string;
}

function hostOf(norm: string): string {
  const slash = norm.indexOf("/");
  return slash === -1 ? norm : norm.slice(0, slash);
}

function repositoryScope(rng: Rng): ScopeSpec {
  const host = at(REGISTRIES, rng.weighted(REGISTRY_WEIGHTS));
  const depth = 1 + rng.weighted([0.35, 0.45, 0.2]);
  const path =
    depth === 1
      ? [rng.pick(APPS)]
      : depth === 2
        ? [rng.pick(ORGS), rng.pick(APPS)]
        : [rng.pick(ORGS), rng.pick(SUBS), rng.pick(APPS)];
  const tag = rng.chance(0.12) ? `:${rng.pick(TAGS)}` : "";
  const written = `${path.join("/")}${tag}`;
  if (host === "docker.io" && depth === 1) {
    // Docker Hub official images: written short half the time, normalised under library/.
    const norm = `docker.io/library/${written}`;
    return { raw: rng.chance(0.5) ? written : `docker.io/${written}`, norm };
  }
  return { raw: `${host}/${written}`, norm: `${host}/${written}` };
}

/** Exactly CLUSTER_SCOPES distinct normalised scopes: `*`, wildcards, hosts, repositories. */
function clusterScopePool(rng: Rng): ScopeSpec[] {
  const pool = new Map<string, ScopeSpec>();
  const add = (s: ScopeSpec): void => {
    if (pool.size < CLUSTER_SCOPES && !pool.has(s.norm)) pool.set(s.norm, s);
  };
  add({ raw: "*", norm: "" });
  for (const w of WILDCARDS) add({ raw: w, norm: w });
  for (const host of REGISTRIES) if (rng.chance(0.7)) add({ raw: host, norm: host });
  while (pool.size < CLUSTER_SCOPES) add(repositoryScope(rng));
  return [...pool.values()];
}

/** Splits `items` into `parts` non-empty, uneven runs. */
function partition<T>(rng: Rng, items: readonly T[], parts: number): T[][] {
  const cuts = new Set<number>();
  while (cuts.size < parts - 1) cuts.add(1 + rng.int(items.length - 1));
  const bounds = [0, ...[...cuts].sort((a, b) => a - b), items.length];
  return bounds.slice(1).map((end, i) => items.slice(at(bounds, i), end));
}

type Mutator = Parameters<typeof cip>[1];

/** A PublicKey policy: one main key, sometimes additional keys, sometimes an identity rule. */
function keyPolicy(
  rng: Rng,
  keys: readonly string[],
  main: string,
  scopes: readonly ScopeSpec[],
): Mutator[] {
  const extra = rng.chance(0.25)
    ? rng.shuffle(keys.filter((k) => k !== main)).slice(0, 1 + rng.int(2))
    : [];
  const out = [withKey(main, ...extra)];
  const firstHost = scopes.map((s) => hostOf(s.norm)).find((h) => h !== "" && !h.startsWith("*."));
  const r = rng.next();
  if (r < 0.2) out.push(withIdentity({ matchPolicy: "MatchRepository" }));
  else if (r < 0.25 && firstHost !== undefined) {
    out.push(
      withIdentity({
        matchPolicy: "RemapIdentity",
        remapIdentity: { prefix: firstHost, signedPrefix: "signing.acme.io/mirror" },
      }),
    );
  }
  return out;
}

function clusterPolicies(
  rng: Rng,
  keys: readonly string[],
  pool: ScopeSpec[],
): ClusterImagePolicy[] {
  const rest = rng.shuffle(pool.filter((s) => s.norm !== ""));
  const groups = partition(rng, rest, CLUSTER_POLICIES - 1);
  // A few scopes named by two policies (their requirements are ANDed); the union stays the pool.
  for (let i = 0; i < 25; i++) {
    const group = rng.pick(groups);
    const s = rng.pick(rest);
    if (!group.some((g) => g.norm === s.norm)) group.push(s);
  }
  const out = [cip("default-deny", withScopes("*"), rejecting)];
  groups.forEach((group, i) => {
    const raws = group.map((s) => s.raw);
    const host = hostOf(at(group, 0).norm)
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "");
    const name = `${host}-${String(i + 1).padStart(3, "0")}`;
    const r = rng.next();
    const policy =
      r < 0.08
        ? [accepting]
        : r < 0.13
          ? [rejecting]
          : keyPolicy(rng, keys, at(keys, rng.weighted(keys.map((_, k) => 1 / (k + 1)))), group);
    out.push(cip(name, withScopes(...raws), ...policy));
  });
  return out;
}

/** A scope below `base` (a host, wildcard-free repository): a deeper repository or a tag. */
function narrower(rng: Rng, base: ScopeSpec): ScopeSpec | undefined {
  if (base.norm === "" || base.norm.startsWith("*.")) return undefined;
  const lastSlash = base.norm.lastIndexOf("/");
  if (base.norm.includes(":", lastSlash === -1 ? base.norm.length : lastSlash)) return undefined;
  const depth = base.norm.split("/").length - 1;
  if (depth >= 1 && rng.chance(0.3)) {
    const tag = `:${rng.pick(TAGS)}`;
    return { raw: `${base.raw}${tag}`, norm: `${base.norm}${tag}` };
  }
  if (depth >= 4) return undefined;
  const child = `/${depth === 0 ? rng.pick(ORGS) : rng.pick(APPS)}`;
  if (base.raw === base.norm || !base.norm.startsWith("docker.io/library/")) {
    return { raw: `${base.raw}${child}`, norm: `${base.norm}${child}` };
  }
  // A short Docker Hub name gains a path component: the long form keeps library/.
  return { raw: `${base.norm}${child}`, norm: `${base.norm}${child}` };
}

function namespaceScopes(rng: Rng, pool: readonly ScopeSpec[]): ScopeSpec[] {
  const n = 1 + rng.weighted([0.4, 0.3, 0.2, 0.1]);
  const out = new Map<string, ScopeSpec>();
  while (out.size < n) {
    const r = rng.next();
    let s: ScopeSpec | undefined;
    if (r < 0.01) s = { raw: "*", norm: "" };
    else if (r < 0.36) s = rng.pick(pool.filter((p) => p.norm !== ""));
    else if (r < 0.75) s = narrower(rng, rng.pick(pool));
    else s = repositoryScope(rng);
    if (s !== undefined) out.set(s.norm, s);
  }
  return [...out.values()];
}

function namespacePolicies(rng: Rng, keys: readonly string[], pool: ScopeSpec[]): ImagePolicy[] {
  const names = TEAMS.flatMap((t) => ENVS.map((e) => `${t}-${e}`));
  const namespaces = rng.shuffle(names).slice(0, NAMESPACES);
  // Every namespace has one policy; the rest go to a few busy namespaces and a long tail.
  const counts = namespaces.map(() => 1);
  const weights = namespaces.map((_, i) => 1 / (i + 1) ** 0.7);
  for (let i = NAMESPACES; i < IMAGE_POLICIES; i++) {
    const k = rng.weighted(weights);
    counts[k] = at(counts, k) + 1;
  }
  const kinds = ["signed", "team-keys", "vendor", "base-images", "third-party", "exceptions"];
  const out: ImagePolicy[] = [];
  namespaces.forEach((ns, i) => {
    const teamKey = rng.pick(keys);
    for (let j = 0; j < at(counts, i); j++) {
      const scopes = namespaceScopes(rng, pool);
      const r = rng.next();
      const policy =
        r < 0.05
          ? [accepting]
          : r < 0.15
            ? [rejecting]
            : keyPolicy(rng, keys, rng.chance(0.7) ? teamKey : rng.pick(keys), scopes);
      out.push(
        ip(ns, `${rng.pick(kinds)}-${j + 1}`, withScopes(...scopes.map((s) => s.raw)), ...policy),
      );
    }
  });
  return out;
}

export interface Fixture {
  readonly objects: readonly AnyImagePolicy[];
  readonly keys: number;
  /** The keys the policies use (base64 of PEM), for benchmarks that edit them. */
  readonly keyData: readonly string[];
}

export function generateFixture(seed: number): Fixture {
  const rng = new Rng(seed);
  const keys = Array.from({ length: KEYS }, () => p256PublicKey(rng));
  const pool = clusterScopePool(rng);
  const objects = [...clusterPolicies(rng, keys, pool), ...namespacePolicies(rng, keys, pool)];
  return { objects, keys: keys.length, keyData: keys };
}

/** The fixture must be admissible and shaped as the issue says, or the figures mean nothing. */
export function checkFixture(fixture: Fixture, cluster: ScopeIndex, namespaces: number): void {
  const problems: string[] = [];
  for (const o of fixture.objects) {
    const r =
      o.kind === "ClusterImagePolicy"
        ? clusterImagePolicySchema.safeParse(o)
        : imagePolicySchema.safeParse(o);
    if (!r.success) problems.push(`${o.kind} ${o.metadata.name}: ${r.error.message}`);
  }
  const cips = fixture.objects.filter((o) => o.kind === "ClusterImagePolicy").length;
  const ips = fixture.objects.length - cips;
  if (cips !== CLUSTER_POLICIES) problems.push(`${cips} ClusterImagePolicies`);
  if (ips !== IMAGE_POLICIES) problems.push(`${ips} ImagePolicies`);
  if (cluster.scopes.size !== CLUSTER_SCOPES)
    problems.push(`${cluster.scopes.size} cluster scopes`);
  if (namespaces !== NAMESPACES) problems.push(`${namespaces} namespaces`);
  if (problems.length > 0) throw new BenchError(`bad fixture:\n${problems.join("\n")}`);
}

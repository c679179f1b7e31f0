// The enforcement probe: CRI-O's configuration read over a unix socket (a tiny HTTP server here;
// the real CRI-O is exercised by the e2e tests), parsed, and judged.

import { readFile, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  enforcement,
  fetchCrioConfig,
  parseCrioConfig,
  parseRuntimeVersion,
  type EnforcementInput,
} from "../../../src/agent/crioProbe.ts";
import { parseCrioVersion } from "../../../src/compiler/crioVersion.ts";

// `crio --config c.conf config` of CRI-O 1.36.3 with signature_policy set: keys at their default
// (signature_policy_dir here) are printed commented out.
const SAMPLE = readFile(path.join(import.meta.dirname, "fixtures/crio-1.36.3-config.toml"), "utf8");

const base: Omit<EnforcementInput, "config"> = {
  runtime: { name: "cri-o", version: "1.36.3" },
  crioVersion: parseCrioVersion("1.36.3"),
  expectedPolicyPath: "/etc/crio/imagepolicy/cluster.json",
  expectedPolicyDir: "/etc/crio/policies",
};

describe("parseCrioConfig", () => {
  it("reads CRI-O's own output, with defaults for commented-out keys", async () => {
    expect(parseCrioConfig(await SAMPLE)).toEqual({
      signaturePolicy: "/etc/crio/imagepolicy/cluster.json",
      signaturePolicyDir: "/etc/crio/policies",
    });
  });
  it("reads indented tables and explicit values", () => {
    const text = `[crio]\n  root = "/x"\n  [crio.image]\n    signature_policy = "/a.json"\n    signature_policy_dir = '/p'\n    insecure_registries = [\n    ]\n`;
    expect(parseCrioConfig(text)).toEqual({ signaturePolicy: "/a.json", signaturePolicyDir: "/p" });
  });
  it("refuses what is not CRI-O's configuration", () => {
    expect(() => parseCrioConfig("<html>nope</html>")).toThrow(/not a CRI-O configuration/);
    expect(() => parseCrioConfig("[other]\na = 1\n")).toThrow(/no \[crio\] table/);
  });
});

describe("enforcement", () => {
  it("is true when CRI-O reads both our paths", async () => {
    const e = enforcement({ ...base, config: { ok: true, text: await SAMPLE } });
    expect(e.enforcing).toBe(true);
    expect(e.reason).toContain("re-checked at container creation");
  });
  it.each<[string, Partial<EnforcementInput>, RegExp]>([
    [
      "another runtime",
      { runtime: { name: "containerd", version: "1.7.0" } },
      /containerd, not CRI-O/,
    ],
    [
      "socket missing",
      { config: { ok: false, reason: "cannot ask CRI-O at /s: socket missing" } },
      /socket missing/,
    ],
    ["default policy", { config: { ok: true, text: "[crio.image]\n" } }, /policy.json \(default\)/],
    [
      "other dir",
      {
        config: {
          ok: true,
          text: '[crio.image]\nsignature_policy = "/etc/crio/imagepolicy/cluster.json"\nsignature_policy_dir = "/x"\n',
        },
      },
      /signature_policy_dir is \/x/,
    ],
    [
      "CRI-O 1.27.0",
      {
        crioVersion: parseCrioVersion("1.27.0"),
        config: {
          ok: true,
          text: '[crio.image]\nsignature_policy = "/etc/crio/imagepolicy/cluster.json"\n',
        },
      },
      /reads only .*needs 1\.27\.1/,
    ],
    ["not TOML", { config: { ok: true, text: "404 page not found" } }, /not a CRI-O configuration/],
  ])("is false with a reason: %s", (_name, patch, reason) => {
    const e = enforcement({ ...base, config: { ok: true, text: "" }, ...patch });
    expect(e.enforcing).toBe(false);
    expect(e.reason).toMatch(reason);
  });
  it("says when images are not re-checked at creation (before 1.31)", () => {
    const e = enforcement({
      ...base,
      crioVersion: parseCrioVersion("1.30.2"),
      config: {
        ok: true,
        text: '[crio.image]\nsignature_policy = "/etc/crio/imagepolicy/cluster.json"\n',
      },
    });
    expect(e).toMatchObject({ enforcing: true });
    expect(e.reason).toMatch(/not re-checked .*1\.31/);
  });
  it("parses the kubelet's runtime version", () => {
    expect(parseRuntimeVersion("cri-o://1.34.0")).toEqual({ name: "cri-o", version: "1.34.0" });
    expect(parseRuntimeVersion("containerd://2.0.1")).toEqual({
      name: "containerd",
      version: "2.0.1",
    });
  });
});

describe("fetchCrioConfig over a unix socket", () => {
  let dir: string;
  let server: Server;
  let socket: string;
  const seen: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-probe-"));
    socket = path.join(dir, "crio.sock");
    const text = await SAMPLE;
    server = createServer((req, res) => {
      seen.push(`${req.method ?? ""} ${req.url ?? ""}`);
      if (req.url === "/config") {
        res.writeHead(200, { "content-type": "application/toml" }).end(text);
      } else res.writeHead(404).end("404 page not found\n");
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it("GETs /config and returns the TOML", async () => {
    const r = await fetchCrioConfig(socket, 2000);
    expect(r.ok).toBe(true);
    expect(seen).toContain("GET /config");
    if (r.ok) expect(enforcement({ ...base, config: r }).enforcing).toBe(true);
  });
  it("reports a missing socket", async () => {
    const r = await fetchCrioConfig(path.join(dir, "absent.sock"), 2000);
    expect(r).toEqual({ ok: false, reason: expect.stringContaining("socket missing") as string });
  });
});

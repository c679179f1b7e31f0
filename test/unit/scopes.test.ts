import { describe, expect, it } from "vitest";
import { fallbackChain, parseImage, parseScope } from "../../src/compiler/scopes.ts";

describe("parseScope", () => {
  it.each([
    ["*", ""],
    ["*.example.com", "*.example.com"],
    ["*.0.0.1", "*.0.0.1"],
    ["registry.example.com", "registry.example.com"],
    ["registry.example.com:5000", "registry.example.com:5000"],
    ["127.0.0.1:5000/ns/app", "127.0.0.1:5000/ns/app"],
    ["10.1.2.3", "10.1.2.3"],
    ["localhost:5000/app:v1", "localhost:5000/app:v1"],
    ["registry:5000", "registry:5000"],
    ["busybox", "docker.io/library/busybox"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["bitnami/redis", "docker.io/bitnami/redis"],
    // With the Docker Hub host written out, one component is a namespace, as in policy.json.
    ["docker.io/bitnami", "docker.io/bitnami"],
    ["index.docker.io/bitnami", "docker.io/bitnami"],
    ["docker.io/library", "docker.io/library"],
    ["reg.io/a/b@sha256:" + "a".repeat(64), "reg.io/a/b@sha256:" + "a".repeat(64)],
  ])("%s -> %s", (input, want) => {
    expect(parseScope(input)).toEqual({ ok: true, scope: want });
  });

  it.each([
    ["", "empty"],
    [" reg.io", "padded"],
    ["Reg.io/app", "invalid host"],
    ["reg.io/App", "invalid path component"],
    ["reg.io/*/app", '"*" is allowed only'],
    ["*.example.com:5000", "invalid wildcard"],
    ["*.example.com/app", "invalid wildcard"],
    ["reg.io:99999/app", "invalid port"],
    ["reg.io/app:v1@sha256:" + "a".repeat(64), "both a tag and a digest"],
    ["reg.io/app@sha256:abc", "invalid digest"],
    ["[::1]:5000/app", "IPv6"],
  ])("refuses %j", (input, reason) => {
    const r = parseScope(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });
});

describe("Docker Hub names: images and scopes", () => {
  it("reads docker.io/NAME as the official image in a pull, as a namespace in a scope", () => {
    expect(parseImage("docker.io/nginx")).toMatchObject({
      ok: true,
      reference: "docker.io/library/nginx:latest",
    });
    expect(parseImage("index.docker.io/nginx:1.27")).toMatchObject({
      ok: true,
      reference: "docker.io/library/nginx:1.27",
    });
    expect(parseScope("docker.io/nginx")).toEqual({ ok: true, scope: "docker.io/nginx" });
    // The namespace scope covers the namespace's repositories, as containers-image walks them.
    expect(fallbackChain("docker.io/bitnami/redis:7")).toContain("docker.io/bitnami");
  });
});

describe("fallbackChain", () => {
  it("walks tag, repository, parents, host, wildcards without port, then the * scope", () => {
    expect(fallbackChain("reg.example.com:5000/a/b:v1")).toEqual([
      "reg.example.com:5000/a/b:v1",
      "reg.example.com:5000/a/b",
      "reg.example.com:5000/a",
      "reg.example.com:5000",
      "*.example.com",
      "*.com",
      "",
    ]);
  });
  it("gives IP hosts wildcard parents", () => {
    expect(fallbackChain("127.0.0.1:5000/x")).toEqual([
      "127.0.0.1:5000/x",
      "127.0.0.1:5000",
      "*.0.0.1",
      "*.0.1",
      "*.1",
      "",
    ]);
  });
  it("walks wildcards from longest to shortest", () => {
    expect(fallbackChain("*.b.c")).toEqual(["*.b.c", "*.c", ""]);
  });
  it("has no wildcard parents for a dotless host, and no host without its port", () => {
    expect(fallbackChain("localhost:5000/x@sha256:" + "b".repeat(64))).toEqual([
      "localhost:5000/x@sha256:" + "b".repeat(64),
      "localhost:5000/x",
      "localhost:5000",
      "",
    ]);
  });
  it("normalises image references with :latest", () => {
    expect(parseImage("busybox")).toEqual({
      ok: true,
      reference: "docker.io/library/busybox:latest",
      repository: "docker.io/library/busybox",
    });
  });
});

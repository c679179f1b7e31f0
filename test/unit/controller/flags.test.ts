import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FlagError, parseFlags } from "../../../src/controller/flags.ts";
import { isLoopback, serve } from "../../../src/httpServer.ts";
import { Registry } from "prom-client";

describe("controller flags", () => {
  it("accepts exactly what config/manager/deployment.yaml passes", () => {
    const file = path.join(import.meta.dirname, "../../../config/manager/deployment.yaml");
    const deployment = parse(readFileSync(file, "utf8")) as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const [command, ...args] = deployment.spec.template.spec.containers[0]?.args ?? [];
    expect(command).toBe("controller");
    const config = parseFlags(
      args.map((a) =>
        a
          .replace("$(POD_NAMESPACE)", "imagepolicy-system")
          .replace("$(OPERATOR_IMAGE)", "ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0"),
      ),
      1,
    );
    expect(config?.namespace).toBe("imagepolicy-system");
    expect(config?.operatorImage).toBe("ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0");
  });

  it("refuses unknown flags", () => {
    expect(() => parseFlags(["--leader-elect"], 1)).toThrow(FlagError);
  });

  it("defaults to metrics on loopback, kube-system protected and no namespace lookaside", () => {
    const config = parseFlags([], 1);
    expect(config?.metricsAddr).toBe("127.0.0.1:8080");
    expect(config?.protectedNamespaces).toEqual(["kube-system"]);
    expect(config?.namespaceLookasidePrefixes).toEqual([]);
    expect(config?.quota).toEqual({ maxPolicies: 256, maxScopes: 1024, maxBytes: 262_144 });
    expect(parseFlags(["--protected-namespace="], 1)?.protectedNamespaces).toEqual([]);
  });

  it.each([
    [["--metrics-addr=:8080"], "loopback"],
    [["--metrics-addr=0.0.0.0:8080"], "loopback"],
    [["--metrics-addr=10.0.0.1:8080"], "loopback"],
    [["--protected-image=Team_A=registry.k8s.io/pause:3.10"], "not a namespace name"],
    [["--protected-image=registry.k8s.io/*"], "not an image reference"],
    [["--protected-namespace=Kube-System"], "not a namespace name"],
    [["--namespace-lookaside-prefix=file:///etc"], "http:// or https://"],
    [["--namespace-lookaside-prefix=https://sigs.example.com"], "ending in a path"],
    [["--namespace-max-scopes=0"], "positive integer"],
    [["--namespace-max-bytes=1e6"], "positive integer"],
  ])("refuses %j", (argv, message) => {
    expect(() => parseFlags(argv, 1)).toThrow(message);
  });

  it("parses protected images with and without a namespace", () => {
    const config = parseFlags(
      ["--protected-image=calico-system=quay.io/calico/node:v3.28", "--protected-image=quay.io/x"],
      1,
    );
    expect(config?.protectedImages).toEqual([
      { namespace: "calico-system", image: "quay.io/calico/node:v3.28" },
      { namespace: undefined, image: "quay.io/x" },
    ]);
  });
});

describe("metrics endpoint", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.255.0.9", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["localhost", true],
    ["0.0.0.0", false],
    ["::", false],
    ["10.0.0.1", false],
    ["127.0.0.256", false],
  ])("isLoopback(%s) is %s", (host, expected) => {
    expect(isLoopback(host)).toBe(expected);
  });

  it("is never served on a non-loopback address; health is", async () => {
    await expect(serve("0.0.0.0:0", { registry: new Registry() })).rejects.toThrow("loopback");
    const health = await serve("0.0.0.0:0", { healthy: () => true, ready: () => true });
    try {
      const port = new URL(health.url).port;
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(await res.text()).toBe("ok\n");
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    } finally {
      await health.close();
    }
  });
});

// The local control plane is real: the version is the one built, the namespace controller
// finalises deletions, and RBAC denies what a ServiceAccount was not granted.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.ts";

const versionOutput = z.object({
  clientVersion: z.object({ gitVersion: z.string() }).loose(),
  serverVersion: z.object({ gitVersion: z.string(), major: z.string() }).loose(),
});

describe("local control plane", () => {
  let dir: string;
  let plane: ControlPlane;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-control-plane-"));
    plane = await startControlPlane({ dir });
  });

  afterAll(async () => {
    await plane.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function kubectlOk(args: readonly string[]): Promise<string> {
    const result = await plane.kubectl(args);
    expect(result, `kubectl ${args.join(" ")}`).toMatchObject({ code: 0 });
    return result.stdout;
  }

  it("serves the Kubernetes version it was built at", async () => {
    const version = versionOutput.parse(JSON.parse(await kubectlOk(["version", "-o", "json"])));
    expect(plane.kubernetesVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(version.serverVersion.gitVersion).toBe(plane.kubernetesVersion);
    expect(version.serverVersion.major).toBe("1");
    expect(version.clientVersion.gitVersion).toBe(plane.kubernetesVersion);
  });

  it("deletes a namespace completely (the namespace controller runs)", async () => {
    await kubectlOk(["create", "namespace", "doomed"]);
    await kubectlOk(["create", "configmap", "contents", "-n", "doomed", "--from-literal=a=b"]);
    await kubectlOk(["delete", "namespace", "doomed", "--wait=false"]);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const get = await plane.kubectl(["get", "namespace", "doomed", "-o", "name"]);
      if (get.code !== 0 && get.stderr.includes("NotFound")) break;
      if (Date.now() > deadline) throw new Error(`namespace doomed still present: ${get.stdout}`);
      await delay(500);
    }
  });

  it("denies a ServiceAccount what RBAC does not grant", async () => {
    await kubectlOk(["create", "namespace", "rbac-check"]);
    await kubectlOk(["create", "serviceaccount", "reader", "-n", "rbac-check"]);
    const kubeconfig = await plane.serviceAccountKubeconfig("rbac-check", "reader");

    const whoami = await plane.kubectl([`--kubeconfig=${kubeconfig}`, "auth", "whoami"]);
    expect(whoami.code).toBe(0);
    expect(whoami.stdout).toContain("system:serviceaccount:rbac-check:reader");

    const canI = await plane.kubectl([
      `--kubeconfig=${kubeconfig}`,
      "auth",
      "can-i",
      "list",
      "secrets",
      "--all-namespaces",
    ]);
    expect(canI.stdout.trim()).toBe("no");
    expect(canI.code).toBe(1);

    const list = await plane.kubectl([`--kubeconfig=${kubeconfig}`, "get", "secrets", "-A"]);
    expect(list.code).not.toBe(0);
    expect(list.stderr).toContain("Forbidden");

    // The admin (system:masters) may.
    expect((await plane.kubectl(["auth", "can-i", "list", "secrets", "-A"])).stdout.trim()).toBe(
      "yes",
    );
  });

  it("keeps its data when the API server is stopped and started again", async () => {
    await kubectlOk(["create", "namespace", "survivor"]);
    await plane.stopApiServer();
    expect((await plane.kubectl(["get", "namespace", "survivor"])).code).not.toBe(0);
    await plane.startApiServer();
    expect(await kubectlOk(["get", "namespace", "survivor", "-o", "name"])).toBe(
      "namespace/survivor\n",
    );
  });
});

// End-to-end smoke test against a real CRI-O (test/support/crio.ts): a local registry holds a
// sigstore-signed image and unsigned ones (built with umoci, never pulled from the Internet), and
// CRI-O's signature_policy / signature_policy_dir decide each pull, per namespace, re-read on
// every pull. Also records what this machine can do beyond pulls: running a pod and a container,
// and CRI-O's re-check of the policy at container creation (CRI-O >= 1.31).
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCrio, type CommandResult, type Crio } from "../support/crio.ts";

class SmokeSetupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

const repoRoot = path.resolve(import.meta.dirname, "../..");
// Not reaching the Internet: Go clients never proxy loopback; everything else hits a closed port.
const offlineEnv: NodeJS.ProcessEnv = {
  ...process.env,
  HTTP_PROXY: "http://127.0.0.1:9",
  HTTPS_PROXY: "http://127.0.0.1:9",
  NO_PROXY: "127.0.0.1,localhost",
};

function run(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: opts.env ?? offlineEnv,
        timeout: opts.timeoutMs ?? 600_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8",
      },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
        else if (err.killed) resolve({ code: null, stdout, stderr });
        else reject(new SmokeSetupError(`cannot run ${file}`, { cause: err }));
      },
    );
  });
}

async function mustRun(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    throw new SmokeSetupError(
      `${file} ${args.join(" ")} exited with ${String(r.code)}:\n${r.stderr}\n${r.stdout}`,
    );
  }
  return r.stdout;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr !== null && typeof addr === "object") resolve(addr.port);
        else reject(new SmokeSetupError("no port"));
      });
    });
  });
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${String(process.pid)}`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

const staticBinaries = {
  // Never exits: the pod's infra (pause) process.
  pause: "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
  // Prints one line and exits 0: the workload container.
  hello: '#include <stdio.h>\nint main(void) { puts("hello from imagepolicy e2e"); return 0; }\n',
} as const;

interface Env {
  dir: string;
  registry: string;
  crio: Crio;
  policyDir: string;
  clusterPolicy: string;
  clusterDoc: (signedRepoRequirement: "key" | "reject") => string;
  stopRegistry: () => void;
}

let env: Env | undefined;
function e(): Env {
  if (env === undefined) throw new SmokeSetupError("environment not set up");
  return env;
}

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "imagepolicy-e2e-"));
  const toolBin = (await mustRun(path.join(repoRoot, "hack/tools/evaluator.sh"), []))
    .trim()
    .split("\n")
    .at(-1);
  if (toolBin === undefined || toolBin === "") {
    throw new SmokeSetupError("hack/tools/evaluator.sh printed no bin dir");
  }
  const tool = (name: string): string => path.join(toolBin, name);

  // Registry on a free loopback port.
  const port = await freePort();
  const registry = `127.0.0.1:${String(port)}`;
  await mkdir(path.join(dir, "registry"), { recursive: true });
  await writeFile(
    path.join(dir, "registry.yml"),
    [
      "version: 0.1",
      "log: { level: warn }",
      "storage:",
      `  filesystem: { rootdirectory: ${JSON.stringify(path.join(dir, "registry"))} }`,
      "  delete: { enabled: true }",
      `http: { addr: "${registry}" }`,
      "",
    ].join("\n"),
  );
  const { spawn } = await import("node:child_process");
  const { openSync, closeSync } = await import("node:fs");
  const regLog = openSync(path.join(dir, "registry.log"), "a");
  const reg = spawn(tool("registry"), ["serve", path.join(dir, "registry.yml")], {
    stdio: ["ignore", regLog, regLog],
    env: offlineEnv,
  });
  closeSync(regLog);
  const stopRegistry = (): void => {
    reg.kill("SIGKILL");
  };
  process.once("exit", stopRegistry);
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${registry}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 100 || reg.exitCode !== null) {
      throw new SmokeSetupError(
        `registry did not start:\n${await readFile(path.join(dir, "registry.log"), "utf8")}`,
      );
    }
    await delay(100);
  }

  // Static binaries and one tiny image per repository (different bytes, different digests).
  const files = path.join(dir, "files");
  await mkdir(files, { recursive: true });
  for (const [name, source] of Object.entries(staticBinaries)) {
    await writeFile(path.join(files, `${name}.c`), source);
    await mustRun("gcc", [
      "-static",
      "-Os",
      "-s",
      "-o",
      path.join(files, name),
      path.join(files, `${name}.c`),
    ]);
  }
  const layout = path.join(dir, "oci");
  await mustRun(tool("umoci"), ["init", "--layout", layout]);
  const images = ["signed", "nosig", "unsigned", "pause"] as const;
  for (const name of images) {
    const ref = `${layout}:${name}`;
    await mustRun(tool("umoci"), ["new", "--image", ref]);
    await writeFile(path.join(files, `name-${name}`), `imagepolicy e2e image ${name}\n`);
    await mustRun(tool("umoci"), [
      "insert",
      "--image",
      ref,
      path.join(files, `name-${name}`),
      "/etc/image-name",
    ]);
    await mustRun(tool("umoci"), ["insert", "--image", ref, path.join(files, "pause"), "/pause"]);
    await mustRun(tool("umoci"), ["insert", "--image", ref, path.join(files, "hello"), "/hello"]);
    await mustRun(tool("umoci"), [
      "config",
      "--image",
      ref,
      "--config.entrypoint",
      name === "pause" ? "/pause" : "/hello",
    ]);
  }

  // Sigstore key; signatures go to the registry as sigstore attachments.
  const keys = path.join(dir, "keys");
  await mkdir(keys, { recursive: true });
  await writeFile(path.join(keys, "passphrase"), "imagepolicy-e2e\n");
  await mustRun(tool("skopeo"), [
    "generate-sigstore-key",
    "--output-prefix",
    path.join(keys, "k"),
    "--passphrase-file",
    path.join(keys, "passphrase"),
  ]);
  const registriesD = path.join(dir, "registries.d");
  await mkdir(registriesD, { recursive: true });
  await writeFile(
    path.join(registriesD, "imagepolicy.yaml"),
    `docker:\n  ${registry}:\n    use-sigstore-attachments: true\n`,
  );
  const push = async (name: string, repo: string, sign: boolean): Promise<void> => {
    await mustRun(tool("skopeo"), [
      "--registries.d",
      registriesD,
      "copy",
      "--insecure-policy",
      "--dest-tls-verify=false",
      ...(sign
        ? [
            "--sign-by-sigstore-private-key",
            path.join(keys, "k.private"),
            "--sign-passphrase-file",
            path.join(keys, "passphrase"),
          ]
        : []),
      `oci:${layout}:${name}`,
      `docker://${registry}/${repo}:v1`,
    ]);
  };
  await push("signed", "signed/app", true);
  await push("nosig", "signed/nosig", false);
  await push("unsigned", "unsigned/app", false);
  await push("pause", "base/pause", false);

  // Policies: cluster.json requires the key under signed/, rejects unsigned/, accepts the rest
  // (the pause image); team-a.json rejects everything; team-b has no file.
  const publicKey = await readFile(path.join(keys, "k.pub"));
  const clusterDoc = (signedRepoRequirement: "key" | "reject"): string =>
    `${JSON.stringify(
      {
        default: [{ type: "insecureAcceptAnything" }],
        transports: {
          docker: {
            [`${registry}/signed`]: [
              signedRepoRequirement === "key"
                ? {
                    type: "sigstoreSigned",
                    keyData: publicKey.toString("base64"),
                    signedIdentity: { type: "matchRepoDigestOrExact" },
                  }
                : { type: "reject" },
            ],
            [`${registry}/unsigned`]: [{ type: "reject" }],
          },
        },
      },
      null,
      2,
    )}\n`;
  const policyDir = path.join(dir, "policies");
  await mkdir(policyDir, { recursive: true });
  const clusterPolicy = path.join(dir, "cluster.json");
  await writeAtomic(clusterPolicy, clusterDoc("key"));
  await writeAtomic(
    path.join(policyDir, "team-a.json"),
    `${JSON.stringify({ default: [{ type: "reject" }] }, null, 2)}\n`,
  );

  const crio = await startCrio({
    dir: path.join(dir, "crio"),
    signaturePolicy: clusterPolicy,
    signaturePolicyDir: policyDir,
    registriesDDir: registriesD,
    insecureRegistries: [registry],
    pauseImage: `${registry}/base/pause:v1`,
    pauseCommand: "/pause",
  });
  env = { dir, registry, crio, policyDir, clusterPolicy, clusterDoc, stopRegistry };
}, 3_600_000);

afterAll(async () => {
  if (env === undefined) return;
  await env.crio.stop();
  env.stopRegistry();
  if (process.env.IMAGEPOLICY_KEEP_E2E === undefined) {
    await rm(env.dir, { recursive: true, force: true });
  }
});

const refusal = /SignatureValidationFailed|rejected by policy|A signature was required/;

describe("CRI-O signature policy, end to end", () => {
  it("runs the CRI-O the cache built, with the generated policy paths", async () => {
    expect(e().crio.version).toMatch(/^1\.\d+\.\d+/);
    const config = await e().crio.configInfo();
    expect(config).toContain(`signature_policy = "${e().clusterPolicy}"`);
    expect(config).toContain(`signature_policy_dir = "${e().policyDir}"`);
  });

  it("allows the signed image with no namespace", async () => {
    const r = await e().crio.pull(`${e().registry}/signed/app:v1`);
    expect(r.output).not.toMatch(refusal);
    expect(r.ok).toBe(true);
  });

  it("refuses an image of a rejected repository", async () => {
    const r = await e().crio.pull(`${e().registry}/unsigned/app:v1`);
    console.info(`unsigned/app refusal: ${r.output}`);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(refusal);
  });

  it("refuses an unsigned image where the key is required", async () => {
    const r = await e().crio.pull(`${e().registry}/signed/nosig:v1`);
    console.info(`signed/nosig refusal: ${r.output}`);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(refusal);
  });

  it("uses <signature_policy_dir>/team-a.json for a pull in namespace team-a", async () => {
    const r = await e().crio.pull(`${e().registry}/signed/app:v1`, { namespace: "team-a" });
    console.info(`team-a refusal: ${r.output}`);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(refusal);
  });

  it("falls back to the cluster policy for a namespace without a file", async () => {
    const ok = await e().crio.pull(`${e().registry}/signed/app:v1`, { namespace: "team-b" });
    expect(ok.ok).toBe(true);
    const refused = await e().crio.pull(`${e().registry}/unsigned/app:v1`, {
      namespace: "team-b",
    });
    expect(refused.ok).toBe(false);
    expect(refused.output).toMatch(refusal);
  });

  it("re-reads cluster.json on the next pull, with no restart", async () => {
    const image = `${e().registry}/signed/app:v1`;
    await writeAtomic(e().clusterPolicy, e().clusterDoc("reject"));
    try {
      const refused = await e().crio.pull(image);
      console.info(`after the cluster.json change: ${refused.output}`);
      expect(refused.ok).toBe(false);
      expect(refused.output).toMatch(refusal);
    } finally {
      await writeAtomic(e().clusterPolicy, e().clusterDoc("key"));
    }
    expect((await e().crio.pull(image)).ok).toBe(true);
  });
});

// Beyond pulls: this machine runs a pod and a container through CRI-O, runc and conmon (pods
// without an infra container, see crio.podConfig), and CRI-O (>= 1.31) checks the policy again
// when a container is created from an image already present (the kubelet does not pull an image
// that is present): against <namespace>.json when it exists, else against signature_policy.
describe("CRI-O container creation", () => {
  const containerConfig = async (name: string, image: string): Promise<string> => {
    const file = path.join(e().dir, `container-${name}.json`);
    const config = {
      metadata: { name },
      image: { image, user_specified_image: image },
      log_path: `${name}.log`,
      // Same PID namespace mode as the pods of crio.podConfig (no infra container).
      linux: { security_context: { namespace_options: { network: 2, pid: 1 } } },
    };
    await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
    return file;
  };

  const mustCrictl = async (args: readonly string[]): Promise<string> => {
    const r = await e().crio.crictl(args);
    if (r.code !== 0) {
      throw new SmokeSetupError(
        `crictl ${args.join(" ")} exited with ${String(r.code)}: ${r.stderr}${r.stdout}\n${await e().crio.logTail(30)}`,
      );
    }
    return r.stdout.trim();
  };

  const runPod = async (namespace: string): Promise<string> => {
    const pod = await e().crio.podConfig(`pod-${namespace}`, namespace);
    return mustCrictl(["runp", pod]);
  };

  it("runs a pod and a container from the signed image (runc, conmon)", async () => {
    const image = `${e().registry}/signed/app:v1`;
    // Pulled with no namespace (allowed) and kept: the container is created from it.
    await mustCrictl(["pull", image]);
    await mustCrictl(["pull", `${e().registry}/base/pause:v1`]);
    const podId = await runPod("team-b");
    const pod = await e().crio.podConfig("pod-team-b", "team-b");
    const ctrId = await mustCrictl(["create", podId, await containerConfig("hello-b", image), pod]);
    await mustCrictl(["start", ctrId]);
    let state = "";
    for (let i = 0; i < 100 && state !== "CONTAINER_EXITED"; i++) {
      await delay(100);
      state = (
        await mustCrictl([
          "inspect",
          "--output",
          "go-template",
          "--template",
          "{{.status.state}}",
          ctrId,
        ])
      ).trim();
    }
    expect(state).toBe("CONTAINER_EXITED");
    const logs = await e().crio.crictl(["logs", ctrId]);
    expect(`${logs.stdout}${logs.stderr}`).toContain("hello from imagepolicy e2e");
  });

  it("checks the namespace policy again when creating a container from a present image", async () => {
    const image = `${e().registry}/signed/app:v1`;
    const images = await mustCrictl(["images", "--quiet", image]);
    expect(images).not.toBe("");
    const podId = await runPod("team-a");
    const pod = await e().crio.podConfig("pod-team-a", "team-a");
    const r = await e().crio.crictl([
      "create",
      podId,
      await containerConfig("hello-a", image),
      pod,
    ]);
    console.info(`create in team-a: code ${String(r.code)}: ${r.stderr}${r.stdout}`);
    expect(r.code).not.toBe(0);
    expect(`${r.stderr}${r.stdout}`).toMatch(refusal);
  });

  it("checks the changed cluster policy when creating a container in a namespace without a file", async () => {
    const image = `${e().registry}/signed/app:v1`;
    const podId = await mustCrictl(["pods", "--quiet", "--namespace", "team-b"]);
    const pod = await e().crio.podConfig("pod-team-b", "team-b");
    await writeAtomic(e().clusterPolicy, e().clusterDoc("reject"));
    try {
      const r = await e().crio.crictl([
        "create",
        podId.split("\n")[0] ?? "",
        await containerConfig("hello-b2", image),
        pod,
      ]);
      console.info(
        `create in team-b after cluster.json rejects: code ${String(r.code)}: ${r.stderr}${r.stdout}`,
      );
      expect(r.code).not.toBe(0);
      expect(`${r.stderr}${r.stdout}`).toMatch(refusal);
    } finally {
      await writeAtomic(e().clusterPolicy, e().clusterDoc("key"));
    }
  });
});

// What unrelated Secrets cost the controller (hack/bench-controller-secrets): a real control plane
// with config/default installed, the controller as a child process with its ServiceAccount's
// token, one ClusterImagePolicy and one ImagePolicy with inline keys. The controller's resident
// memory (VmRSS of its process) is sampled once it has published the layers; after 80 tiny
// Secrets no policy references (the control: as many objects, as much time, no weight); and after
// 80 Secrets of 700 KB no policy references, all in a namespace of their own.
//
// Target (docs/security.md, rule 6): the Secrets' weight costs the controller nothing: RSS after
// the large ones minus RSS after the tiny ones stays within the noise of a Node process (a few
// MB), not the ~55 MB they weigh.
// Prints one line per figure, then one JSON line.

import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { newPublicKey } from "../test/support/builders.ts";
import { startControlPlane } from "../test/support/controlPlane.ts";
import { freePort, startOperatorProcess } from "../test/support/operatorProcess.ts";
import { waitFor } from "../test/support/waitFor.ts";

class BenchError extends Error {
  override readonly name = "BenchError";
}

const repo = path.resolve(import.meta.dirname, "..");
const NS = "imagepolicy-system";
const TARGET_GROWTH_MB = 8;

const { values } = parseArgs({
  options: {
    secrets: { type: "string", default: "80" },
    "secret-kb": { type: "string", default: "700" },
  },
});
const SECRETS = Number(values.secrets);
const SECRET_KB = Number(values["secret-kb"]);

/** The pid of the node process whose command line holds `marker` (the controller's kubeconfig). */
async function pidOf(marker: string): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const args = cmdline.split("\0");
    if (
      args.includes("controller") &&
      args.some((a) => a.includes(marker)) &&
      !args[0]?.includes("setpriv")
    ) {
      return Number(entry);
    }
  }
  throw new BenchError(`no controller process with ${marker}`);
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${String(pid)}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new BenchError(`no VmRSS for ${String(pid)}`);
  return Number(kb) / 1024;
}

/** The lowest of `n` samples one second apart, after a settling pause: the garbage collector
 * runs when it likes, so the lowest sample is the closest to what the process retains. */
async function sampleRss(pid: number, n = 12): Promise<number> {
  await delay(5_000);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    samples.push(await rssMb(pid));
    await delay(1_000);
  }
  return Math.min(...samples);
}

const dir = await mkdtemp(path.join(tmpdir(), "imagepolicy-bench-secrets-"));
const cp = await startControlPlane({ dir: path.join(dir, "control-plane") });
const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
  const r = await cp.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (r.code !== 0) throw new BenchError(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
let controller: ReturnType<typeof startOperatorProcess> | undefined;
try {
  await kubectl(["apply", "--server-side", "-k", path.join(repo, "config/default")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  await cp.registerNode("node-a", "cri-o://1.34.0");
  const policy = (kind: string, namespace: string | undefined, scope: string): object => ({
    apiVersion: "imagepolicy.dev/v1alpha1",
    kind,
    metadata: { name: "p", ...(namespace === undefined ? {} : { namespace }) },
    spec: {
      scopes: [scope],
      policy: { rootOfTrust: { policyType: "PublicKey", publicKey: { keyData: newPublicKey() } } },
    },
  });
  await kubectl(["create", "namespace", "team-a"]);
  await kubectl(["create", "namespace", "unrelated"]);
  await kubectl(
    ["apply", "-f", "-"],
    [
      policy("ClusterImagePolicy", undefined, "registry.example.com"),
      policy("ImagePolicy", "team-a", "registry.example.com/a"),
    ]
      .map((o) => stringify(o))
      .join("---\n"),
  );
  const kubeconfig = await cp.serviceAccountKubeconfig(NS, "imagepolicy-controller");
  controller = startOperatorProcess(
    "controller",
    "controller",
    [
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${NS}`,
      `--metrics-addr=127.0.0.1:${String(await freePort())}`,
      `--health-addr=127.0.0.1:${String(await freePort())}`,
    ],
    path.join(dir, "controller.log"),
  );
  const c = controller;
  await waitFor(
    "the layers published",
    async () =>
      (await kubectl(["get", "configmaps", "-n", NS, "-o", "name"])).includes(
        "imagepolicy-layer-ns-team-a",
      )
        ? true
        : undefined,
    { timeoutMs: 120_000, context: () => c.logTail(30) },
  );
  const pid = await pidOf(kubeconfig);
  const idle = await sampleRss(pid);
  const create = async (prefix: string, bytes: number): Promise<void> => {
    const payload = path.join(dir, `payload-${prefix}`);
    await writeFile(payload, Buffer.alloc(bytes, "s"));
    for (let i = 0; i < SECRETS; i++) {
      await kubectl([
        "create",
        "secret",
        "generic",
        `${prefix}-${String(i)}`,
        "-n",
        "unrelated",
        `--from-file=data=${payload}`,
      ]);
    }
  };
  // The control: as many unreferenced objects, and as much time, without the weight.
  await create("tiny", 1);
  const control = await sampleRss(pid);
  await create("junk", SECRET_KB * 1024);
  const loaded = await sampleRss(pid);
  const growth = loaded - control;
  const weight = (SECRETS * SECRET_KB) / 1024;
  console.log(`controller RSS once the layers are published:      ${idle.toFixed(1)} MB`);
  console.log(
    `after ${String(SECRETS)} unreferenced Secrets of 1 byte (control):  ${control.toFixed(1)} MB`,
  );
  console.log(
    `after ${String(SECRETS)} unreferenced Secrets of ${String(SECRET_KB)} KB (${weight.toFixed(0)} MB): ${loaded.toFixed(1)} MB`,
  );
  console.log(
    `growth from their weight (large - tiny): ${growth.toFixed(1)} MB (target <= ${String(TARGET_GROWTH_MB)} MB) ${growth <= TARGET_GROWTH_MB ? "OK" : "OVER"}`,
  );
  console.log(
    JSON.stringify({
      idleMb: idle,
      controlMb: control,
      loadedMb: loaded,
      growthMb: growth,
      secrets: SECRETS,
      secretKb: SECRET_KB,
      targetGrowthMb: TARGET_GROWTH_MB,
    }),
  );
} finally {
  await controller?.stop();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
}

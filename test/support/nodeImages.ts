// The images a local node runs, pushed per run into a registry the node reaches (the host end of
// its veth) and signed there: signatures name the registry's address, which changes per run.
//
// - the operator image (hack/tools/operator-image.sh), signed with the cosign test key;
// - the pause image (hack/tools/node-images.sh `pause`), unsigned, served under the name CRI-O's
//   pause_image uses (registry.k8s.io/pause:3.10) through a registries.conf prefix rewrite, so
//   the controller's shipped --pause-image names what the node really runs;
// - test workloads (hack/tools/node-images.sh `app`, a busybox that sleeps), one repository per
//   signing: see `appImages`.
// Keys are the committed test keys of test/fixtures/keys.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { mustRun, offlineEnv } from "../evaluator/command.ts";
import { startRegistry, type RunningRegistry } from "../evaluator/registry.ts";
import type { RegistryEntry } from "./crio.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");

export class NodeImagesError extends Error {
  override readonly name = "NodeImagesError";
}
const keysDir = path.join(repoRoot, "test/fixtures/keys");

/** The pause image's name as CRI-O and the controller's --pause-image know it. */
export const pauseImageName = "registry.k8s.io/pause:3.10";

/** Test workloads: repository:tag under the registry. */
export const appImageNames = [
  "apps/signed:v1",
  "apps/signed-b:v1",
  "apps/unsigned:v1",
  "apps/cosigned:v1",
] as const;

export type AppImage = (typeof appImageNames)[number];

/** How each test workload is signed. */
export const appImageSigning: Readonly<Record<AppImage, Signing>> = {
  /** sigstore signature by key A (skopeo; the signature names the tag). */
  "apps/signed:v1": { kind: "sigstore", key: "a" },
  /** sigstore signature by key B. */
  "apps/signed-b:v1": { kind: "sigstore", key: "b" },
  /** no signature. */
  "apps/unsigned:v1": { kind: "none" },
  /** cosign sign --key (the signature names the repository only). */
  "apps/cosigned:v1": { kind: "cosign" },
};

type Signing =
  | { readonly kind: "none" }
  | { readonly kind: "sigstore"; readonly key: "a" | "b" }
  | { readonly kind: "cosign" };

export interface NodeImages {
  readonly registry: RunningRegistry;
  /** `<address>:<port>/imagepolicy-operator@sha256:...`: the operator image, cosign-signed. */
  readonly operator: string;
  /** The operator image's repository, `<address>:<port>/imagepolicy-operator`. */
  readonly operatorRepository: string;
  /** CRI-O's pause_image. */
  readonly pause: string;
  /** Full reference (with tag) of each test workload. */
  readonly apps: Readonly<Record<AppImage, string>>;
  /** Public keys, base64 of the PEM (what `publicKey.keyData` takes). */
  readonly keys: { readonly a: string; readonly b: string; readonly cosign: string };
  /** registries.conf entries the node needs to pull all of these. */
  readonly registries: readonly RegistryEntry[];
}

export interface NodeImagesOptions {
  /** Scratch directory (registry storage, signing configuration). */
  readonly dir: string;
  /** Local address the registry listens on (the node network's host address). */
  readonly address: string;
  /** hack/tools/evaluator.sh's bin directory (registry, skopeo, cosign). */
  readonly toolsBin: string;
  /** hack/tools/operator-image.sh's output, `<layout>:<tag>`. */
  readonly operatorLayout: string;
  /** hack/tools/node-images.sh's output, an OCI layout with `app` and `pause`. */
  readonly nodeImagesLayout: string;
}

export async function pushNodeImages(opts: NodeImagesOptions): Promise<NodeImages> {
  await mkdir(path.join(opts.dir, "home"), { recursive: true });
  const registriesConfFile = path.join(opts.dir, "registries.conf");
  await writeFile(registriesConfFile, "");
  const env = offlineEnv({
    HOME: path.join(opts.dir, "home"),
    DOCKER_CONFIG: path.join(opts.dir, "home", ".docker"),
    TUF_ROOT: path.join(opts.dir, "home", ".sigstore"),
    CONTAINERS_REGISTRIES_CONF: registriesConfFile,
    NO_PROXY: `127.0.0.1,localhost,${opts.address}`,
    no_proxy: `127.0.0.1,localhost,${opts.address}`,
  });
  const registry = await startRegistry({
    binary: path.join(opts.toolsBin, "registry"),
    dir: opts.dir,
    env,
    address: opts.address,
  });
  try {
    const R = registry.host;
    const policy = path.join(opts.dir, "push-policy.json");
    await writeFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const registriesD = path.join(opts.dir, "push-registries.d");
    await mkdir(registriesD, { recursive: true });
    await writeFile(
      path.join(registriesD, "push.yaml"),
      "default-docker:\n  use-sigstore-attachments: true\n",
    );
    const passphrase = path.join(keysDir, "passphrase");
    const cosignPassword = (await readFile(passphrase, "utf8")).trim();
    let n = 0;
    const push = async (source: string, target: string, signing: Signing): Promise<string> => {
      const digestFile = path.join(opts.dir, `digest-${String(n++)}`);
      const sign =
        signing.kind === "sigstore"
          ? [
              "--sign-by-sigstore-private-key",
              path.join(keysDir, `${signing.key}.private`),
              "--sign-passphrase-file",
              passphrase,
            ]
          : [];
      await mustRun(
        path.join(opts.toolsBin, "skopeo"),
        [
          "copy",
          "--quiet",
          "--policy",
          policy,
          "--registries.d",
          registriesD,
          "--dest-tls-verify=false",
          "--digestfile",
          digestFile,
          ...sign,
          source,
          `docker://${R}/${target}`,
        ],
        { env, timeout: 600_000 },
      );
      const digest = (await readFile(digestFile, "utf8")).trim();
      if (signing.kind === "cosign") {
        const repository = `${R}/${target.slice(0, target.lastIndexOf(":"))}`;
        await mustRun(
          path.join(opts.toolsBin, "cosign"),
          [
            "sign",
            "--key",
            path.join(keysDir, "cosign.key"),
            "--tlog-upload=false",
            "--allow-insecure-registry",
            "--allow-http-registry",
            "--yes",
            `${repository}@${digest}`,
          ],
          { env: { ...env, COSIGN_PASSWORD: cosignPassword } },
        );
      }
      return digest;
    };

    const operatorDigest = await push(`oci:${opts.operatorLayout}`, "imagepolicy-operator:dev", {
      kind: "cosign",
    });
    await push(`oci:${opts.nodeImagesLayout}:pause`, "pause:3.10", { kind: "none" });
    for (const name of appImageNames) {
      await push(`oci:${opts.nodeImagesLayout}:app`, name, appImageSigning[name]);
    }
    const key = async (name: string): Promise<string> =>
      (await readFile(path.join(keysDir, name))).toString("base64");
    return {
      registry,
      operator: `${R}/imagepolicy-operator@${operatorDigest}`,
      operatorRepository: `${R}/imagepolicy-operator`,
      pause: pauseImageName,
      apps: {
        "apps/signed:v1": `${R}/apps/signed:v1`,
        "apps/signed-b:v1": `${R}/apps/signed-b:v1`,
        "apps/unsigned:v1": `${R}/apps/unsigned:v1`,
        "apps/cosigned:v1": `${R}/apps/cosigned:v1`,
      },
      keys: { a: await key("a.pub"), b: await key("b.pub"), cosign: await key("cosign.pub") },
      registries: [
        { location: R },
        {
          prefix: pauseImageName.slice(0, pauseImageName.lastIndexOf(":")),
          location: `${R}/pause`,
        },
      ],
    };
  } catch (error) {
    await registry.stop();
    throw new NodeImagesError(
      `pushing the node's images failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

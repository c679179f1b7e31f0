// Pushing the fixture images into the local registry and signing them, per test run: the
// signatures name the registry's host:port, which changes from run to run.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { mustRun } from "./command.ts";
import type { ImageName } from "./environment.ts";

/** How one pushed image is signed. */
export type Signing =
  | { readonly kind: "none" }
  /** skopeo --sign-by-sigstore-private-key; `identity` overrides the signed reference. */
  | { readonly kind: "sigstore"; readonly key: "a" | "b" | "c"; readonly identity?: string }
  /** cosign sign --key, by digest: the signature names the repository only. */
  | { readonly kind: "cosign" }
  /** skopeo --sign-by (GPG simple signing) into the lookaside directory. */
  | { readonly kind: "gpg" };

export interface Push {
  readonly name: ImageName;
  /** Tag in the fixtures' OCI layout (hack/tools/fixtures.sh IMAGES). */
  readonly source: string;
  /** `127.0.0.1` or `localhost`. */
  readonly host: "127.0.0.1" | "localhost";
  /** Repository and tag under the registry. */
  readonly path: string;
  readonly signing: Signing;
}

export const mirrorIdentity = "registry.example.com/team/app:v1";

/**
 * Everything pushed, in order. `localhost/signed/app:v1` must come after `signed/app:v1`: it
 * pushes the same manifest again and adds a second signature to the same attachment.
 */
export const pushes: readonly Push[] = [
  {
    name: "signed/app:v1",
    source: "signed-app-v1",
    host: "127.0.0.1",
    path: "signed/app:v1",
    signing: { kind: "sigstore", key: "a" },
  },
  {
    name: "signed/app:v2",
    source: "signed-app-v2",
    host: "127.0.0.1",
    path: "signed/app:v2",
    signing: { kind: "sigstore", key: "b" },
  },
  {
    name: "signed/team/app:v1",
    source: "signed-team-app-v1",
    host: "127.0.0.1",
    path: "signed/team/app:v1",
    signing: { kind: "sigstore", key: "a" },
  },
  {
    name: "unsigned/app:v1",
    source: "unsigned-app-v1",
    host: "127.0.0.1",
    path: "unsigned/app:v1",
    signing: { kind: "none" },
  },
  {
    name: "wrong/app:v1",
    source: "wrong-app-v1",
    host: "127.0.0.1",
    path: "wrong/app:v1",
    signing: { kind: "sigstore", key: "c" },
  },
  {
    name: "cosign/app:v1",
    source: "cosign-app-v1",
    host: "127.0.0.1",
    path: "cosign/app:v1",
    signing: { kind: "cosign" },
  },
  {
    name: "gpg/app:v1",
    source: "gpg-app-v1",
    host: "127.0.0.1",
    path: "gpg/app:v1",
    signing: { kind: "gpg" },
  },
  {
    name: "mirror/app:v1",
    source: "mirror-app-v1",
    host: "127.0.0.1",
    path: "mirror/app:v1",
    signing: { kind: "sigstore", key: "a", identity: mirrorIdentity },
  },
  {
    name: "base/pause:3.10",
    source: "base-pause-3.10",
    host: "127.0.0.1",
    path: "base/pause:3.10",
    signing: { kind: "none" },
  },
  {
    name: "localhost/signed/app:v1",
    source: "signed-app-v1",
    host: "localhost",
    path: "signed/app:v1",
    signing: { kind: "sigstore", key: "a" },
  },
];

export interface SeedOptions {
  readonly skopeo: string;
  readonly cosign: string;
  /** Directory printed by hack/tools/fixtures.sh. */
  readonly fixtures: string;
  readonly port: number;
  /** Scratch directory of this run. */
  readonly work: string;
  /** Directory the GPG signatures are written to (served as `file://` lookaside). */
  readonly lookaside: string;
  /** A GNUPGHOME private to this run, holding the fixture secret key. */
  readonly gnupgHome: string;
  /** Environment for every tool (offline proxies, private HOME). */
  readonly env: NodeJS.ProcessEnv;
}

export interface Pushed {
  readonly reference: string;
  readonly digest: string;
}

/** Push and sign every image of `pushes`; returns each one's reference and digest. */
export async function seed(options: SeedOptions): Promise<Map<ImageName, Pushed>> {
  const { fixtures, port, work } = options;
  // The policy for reading the OCI sources; the registries.d for writing signatures.
  const policy = path.join(work, "push-policy.json");
  await writeFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const registriesD = path.join(work, "push-registries.d");
  await mkdir(registriesD, { recursive: true });
  await writeFile(
    path.join(registriesD, "push.yaml"),
    [
      "default-docker:",
      "  use-sigstore-attachments: true",
      "docker:",
      `  127.0.0.1:${port}/gpg:`,
      `    lookaside-staging: file://${options.lookaside}`,
      "",
    ].join("\n"),
  );
  const passphrase = path.join(fixtures, "keys", "passphrase");
  const fingerprint = (await readFile(path.join(fixtures, "gpg", "fingerprint"), "utf8")).trim();
  const cosignPassword = (await readFile(passphrase, "utf8")).trim();

  const pushed = new Map<ImageName, Pushed>();
  for (const push of pushes) {
    const reference = `${push.host}:${port}/${push.path}`;
    const digestFile = path.join(work, `digest-${pushed.size}`);
    const signArgs: string[] = [];
    const signing = push.signing;
    switch (signing.kind) {
      case "none":
      case "cosign":
        break;
      case "sigstore":
        signArgs.push(
          "--sign-by-sigstore-private-key",
          path.join(fixtures, "keys", `${signing.key}.private`),
          "--sign-passphrase-file",
          passphrase,
        );
        if (signing.identity !== undefined) signArgs.push("--sign-identity", signing.identity);
        break;
      case "gpg":
        signArgs.push("--sign-by", fingerprint);
        break;
      default: {
        const _exhaustive: never = signing;
        throw new Error(`unknown signing ${JSON.stringify(_exhaustive)}`);
      }
    }
    await mustRun(
      options.skopeo,
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
        ...signArgs,
        `oci:${path.join(fixtures, "oci")}:${push.source}`,
        `docker://${reference}`,
      ],
      { env: { ...options.env, GNUPGHOME: options.gnupgHome } },
    );
    const digest = (await readFile(digestFile, "utf8")).trim();
    if (signing.kind === "cosign") {
      const repository = reference.slice(0, reference.lastIndexOf(":"));
      await mustRun(
        options.cosign,
        [
          "sign",
          "--key",
          path.join(fixtures, "keys", "cosign.key"),
          "--tlog-upload=false",
          "--allow-insecure-registry",
          "--allow-http-registry",
          "--yes",
          `${repository}@${digest}`,
        ],
        { env: { ...options.env, COSIGN_PASSWORD: cosignPassword } },
      );
    }
    pushed.set(push.name, { reference, digest });
  }
  return pushed;
}

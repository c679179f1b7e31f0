// The environment test/evaluator/globalSetup.ts provides to the evaluator tests through vitest's
// `provide`/`inject`: a local registry holding signed, unsigned and wrongly signed images, the
// keys that signed them, and the real containers-image evaluator (skopeo).

/** Names of the fixture images; `images[name]` is the full reference to pull. */
export const imageNames = [
  /** sigstore-signed (skopeo) with key A, signature names `127.0.0.1:<port>/signed/app:v1` */
  "signed/app:v1",
  /** sigstore-signed with key B */
  "signed/app:v2",
  /** sigstore-signed with key A, for parent-namespace scopes */
  "signed/team/app:v1",
  /** no signature at all */
  "unsigned/app:v1",
  /** sigstore-signed with key C, which no test trusts */
  "wrong/app:v1",
  /** signed by `cosign sign --key`; the signature names only the repository */
  "cosign/app:v1",
  /** GPG simple signing; the signature is in the lookaside directory `gpg.lookaside` */
  "gpg/app:v1",
  /** sigstore-signed with key A, the signature names `mirrorIdentity` (for remapIdentity) */
  "mirror/app:v1",
  /** unsigned */
  "base/pause:3.10",
  /**
   * `localhost:<port>/signed/app:v1`: the same image as `signed/app:v1`, with a second key-A
   * signature naming the `localhost:<port>` host.
   */
  "localhost/signed/app:v1",
] as const;

export type ImageName = (typeof imageNames)[number];

export type SigstoreKeyName = "a" | "b" | "c" | "cosign";

export interface EvaluatorEnvironment {
  /** `127.0.0.1:<port>`: the registry, plain HTTP. */
  readonly registry: string;
  /** `localhost:<port>`: the same registry under another host name. */
  readonly registryLocalhost: string;
  /** Full reference (with tag) of each fixture image. */
  readonly images: Readonly<Record<ImageName, string>>;
  /** Manifest digest (`sha256:...`) of each fixture image, as pushed. */
  readonly digests: Readonly<Record<ImageName, string>>;
  /** Identity named by the signature of `mirror/app:v1`. */
  readonly mirrorIdentity: string;
  /** Public keys, base64 of the PEM file: what `sigstoreSigned.keyData` takes. */
  readonly keys: Readonly<Record<SigstoreKeyName, string>>;
  /** Paths of the same public keys as PEM files: what `sigstoreSigned.keyPath` takes. */
  readonly keyFiles: Readonly<Record<SigstoreKeyName, string>>;
  readonly gpg: {
    /** Public keyring, base64 of the binary export: what `signedBy.keyData` takes. */
    readonly keyring: string;
    /** Path of the same keyring file: what `signedBy.keyPath` takes. */
    readonly keyringFile: string;
    readonly fingerprint: string;
    /** `file://` URL of the lookaside directory holding the GPG signatures (registries.d `lookaside`). */
    readonly lookaside: string;
  };
  /** Path of the skopeo wrapper (skopeo 1.18, containers-image 5.34). */
  readonly skopeo: string;
  /**
   * An empty registries.conf (`CONTAINERS_REGISTRIES_CONF`), so that a registries.conf on the
   * host cannot change the results.
   */
  readonly registriesConf: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    evaluator: EvaluatorEnvironment;
  }
}

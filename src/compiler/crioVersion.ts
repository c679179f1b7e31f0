// CRI-O versions and the policy features each can parse (docs/design.md "Runtime compatibility").
// An unknown field makes containers/image reject the whole policy file, failing every pull on the
// node, so a feature the target cannot parse is refused, never emitted.

export interface CrioVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

export class CrioVersionError extends Error {
  override readonly name = "CrioVersionError";
}

/** Accepts "1.34", "1.34.2", "v1.34.2" and the kubelet's "cri-o://1.34.2". */
export function parseCrioVersion(text: string): CrioVersion {
  const m = /^(?:cri-o:\/\/)?v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$/.exec(text.trim());
  if (!m) throw new CrioVersionError(`not a CRI-O version: ${JSON.stringify(text)}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export function formatCrioVersion(v: CrioVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

export function compareCrioVersions(a: CrioVersion, b: CrioVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** Features whose first CRI-O release matters to the compiler or the agent. */
export const FEATURES = {
  sigstoreSigned: { since: { major: 1, minor: 25, patch: 0 }, what: "sigstoreSigned (PublicKey)" },
  fulcio: {
    since: { major: 1, minor: 27, patch: 0 },
    what: "fulcio with rekorPublicKeyData (FulcioCAWithRekor)",
  },
  multipleKeys: {
    since: { major: 1, minor: 32, patch: 0 },
    what: "keyDatas / rekorPublicKeyDatas (more than one key)",
  },
  pki: { since: { major: 1, minor: 33, patch: 0 }, what: "pki (PKI)" },
  namespaceFiles: {
    since: { major: 1, minor: 27, patch: 1 },
    what: "signature_policy_dir (per-namespace policy files)",
  },
  recheckAtCreate: {
    since: { major: 1, minor: 31, patch: 0 },
    what: "policy re-check at container creation",
  },
} as const satisfies Record<string, { since: CrioVersion; what: string }>;

export type Feature = keyof typeof FEATURES;

export function supports(target: CrioVersion, feature: Feature): boolean {
  return compareCrioVersions(target, FEATURES[feature].since) >= 0;
}

/** The newest CRI-O the compiler knows; the CLI's default target. */
export const LATEST_KNOWN: CrioVersion = { major: 1, minor: 34, patch: 0 };

// The Sigstore public-good trust material the import puts into policies that name the public
// Fulcio or Rekor instance: config/sigstore/public-good.yaml, vendored as data by
// hack/refresh-sigstore-trust.ts. Parsed here from its text; the CLI reads the file.

import { parse } from "yaml";
import { z } from "zod";

export class SigstoreTrustError extends Error {
  override readonly name = "SigstoreTrustError";
}

export interface SigstoreTrust {
  readonly fulcioUrl: string;
  /** base64 of the PEM CA chain, as fulcioCAWithRekor.fulcioCAData takes it */
  readonly fulcioCAData: string;
  readonly rekorUrl: string;
  /** base64 of the PEM public key, as rekorKeyData takes it */
  readonly rekorKeyData: string;
}

const schema = z.looseObject({
  fulcio: z.looseObject({ url: z.url(), fulcioCAData: z.base64().min(1) }),
  rekor: z.looseObject({ url: z.url(), rekorKeyData: z.base64().min(1) }),
});

export function parseSigstoreTrust(text: string): SigstoreTrust {
  let value: unknown;
  try {
    value = parse(text, { uniqueKeys: true });
  } catch (cause) {
    throw new SigstoreTrustError(`unreadable trust material: ${(cause as Error).message}`, {
      cause,
    });
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new SigstoreTrustError(`unexpected trust material: ${r.error.message}`, {
      cause: r.error,
    });
  }
  return {
    fulcioUrl: r.data.fulcio.url,
    fulcioCAData: r.data.fulcio.fulcioCAData,
    rekorUrl: r.data.rekor.url,
    rekorKeyData: r.data.rekor.rekorKeyData,
  };
}

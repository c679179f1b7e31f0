// vitest globalSetup of the `evaluator` project: builds (or reuses from the cache) the real
// containers-image evaluator and the fixtures, starts a local registry, pushes and signs the
// fixture images, and provides the environment to the tests (see environment.ts).
//
// Any missing component fails the run with an error saying what is missing; nothing is skipped.
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import type { TestProject } from "vitest/node";

import { mustRun, offlineEnv, runCommand } from "./command.ts";
import {
  imageNames,
  type EvaluatorEnvironment,
  type ImageName,
  type SigstoreKeyName,
} from "./environment.ts";
import { startRegistry, type RunningRegistry } from "./registry.ts";
import { mirrorIdentity, seed } from "./seed.ts";

export class EvaluatorSetupError extends Error {
  override readonly name = "EvaluatorSetupError";
}

const repoRoot = path.resolve(import.meta.dirname, "..", "..");

async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new EvaluatorSetupError(`evaluator tests: ${what} failed: ${detail}`, { cause: err });
  }
}

/** Run a hack/tools script that prints one directory on stdout. */
async function toolDir(script: string): Promise<string> {
  const stdout = await mustRun(path.join(repoRoot, "hack", "tools", script), [], {
    timeout: 900_000,
  });
  const dir = stdout.trim().split("\n").at(-1);
  if (dir === undefined || dir === "") {
    throw new EvaluatorSetupError(`hack/tools/${script} printed no directory`);
  }
  return dir;
}

/** A record with exactly `keys`, each value computed from its key. */
async function recordOf<K extends string, V>(
  keys: readonly K[],
  value: (key: K) => V | Promise<V>,
): Promise<Record<K, V>> {
  const entries = await Promise.all(keys.map(async (key) => [key, await value(key)] as const));
  // Every key of K is present: `keys` lists them all (imageNames is the `as const` source of K).
  return Object.fromEntries(entries) as Record<K, V>;
}

async function base64Of(file: string): Promise<string> {
  return (await readFile(file)).toString("base64");
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const bin = await step("hack/tools/evaluator.sh (trixie skopeo, cosign, registry)", () =>
    toolDir("evaluator.sh"),
  );
  const fixtures = await step("hack/tools/fixtures.sh (images and keys)", () =>
    toolDir("fixtures.sh"),
  );

  const work = await mkdtemp(path.join(tmpdir(), "imagepolicy-evaluator-"));
  let registry: RunningRegistry | undefined;
  const gnupgHome = path.join(work, "gnupg");
  const teardown = async (): Promise<void> => {
    await registry?.stop();
    await runCommand("gpgconf", ["--kill", "all"], {
      env: { ...process.env, GNUPGHOME: gnupgHome },
    });
    await rm(work, { recursive: true, force: true });
  };

  try {
    // A private HOME and an empty registries.conf: nothing from the host (credentials, mirrors
    // another engineer installed in /etc/containers) changes what the tests see.
    const registriesConf = path.join(work, "registries.conf");
    await writeFile(registriesConf, "");
    for (const dir of ["home", "tuf", "run"]) await mkdir(path.join(work, dir));
    const env = offlineEnv({
      HOME: path.join(work, "home"),
      TUF_ROOT: path.join(work, "tuf"),
      XDG_RUNTIME_DIR: path.join(work, "run"),
      DOCKER_CONFIG: path.join(work, "home", ".docker"),
      CONTAINERS_REGISTRIES_CONF: registriesConf,
    });

    registry = await step("starting docker-registry", () =>
      startRegistry({ binary: path.join(bin, "registry"), dir: work, env }),
    );
    const port = registry.port;

    await cp(path.join(fixtures, "gnupg"), gnupgHome, { recursive: true });
    await chmod(gnupgHome, 0o700);
    const lookaside = path.join(work, "lookaside");
    await mkdir(lookaside);

    const pushed = await step("pushing and signing the fixture images", () =>
      seed({
        skopeo: path.join(bin, "skopeo"),
        cosign: path.join(bin, "cosign"),
        fixtures,
        port,
        work,
        lookaside,
        gnupgHome,
        env,
      }),
    );

    const pushedImage = (name: ImageName): { reference: string; digest: string } => {
      const image = pushed.get(name);
      if (image === undefined)
        throw new EvaluatorSetupError(`fixture image ${name} was not pushed`);
      return image;
    };
    const images = await recordOf(imageNames, (name) => pushedImage(name).reference);
    const digests = await recordOf(imageNames, (name) => pushedImage(name).digest);

    const keyNames: readonly SigstoreKeyName[] = ["a", "b", "c", "cosign"];
    const keyFiles = await recordOf(keyNames, (name) => path.join(fixtures, "keys", `${name}.pub`));
    const keys = await recordOf(keyNames, (name) => base64Of(keyFiles[name]));
    const keyringFile = path.join(fixtures, "gpg", "pubring.gpg");

    const environment: EvaluatorEnvironment = {
      registry: registry.host,
      registryLocalhost: `localhost:${port}`,
      images,
      digests,
      mirrorIdentity,
      keys,
      keyFiles,
      gpg: {
        keyring: await base64Of(keyringFile),
        keyringFile,
        fingerprint: (await readFile(path.join(fixtures, "gpg", "fingerprint"), "utf8")).trim(),
        lookaside: pathToFileURL(lookaside).href,
      },
      skopeo: path.join(bin, "skopeo"),
      registriesConf,
    };
    project.provide("evaluator", environment);
    console.info(
      `evaluator environment ready in ${String(Date.now() - started)} ms: registry ${registry.host}`,
    );
  } catch (err) {
    await teardown();
    const detail = err instanceof Error ? err.message : String(err);
    throw new EvaluatorSetupError(detail, { cause: err });
  }
  return teardown;
}

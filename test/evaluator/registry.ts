// A throwaway local registry (docker-registry, distribution 2.8) on 127.0.0.1 (or another local
// address), plain HTTP, storage in a directory the caller owns.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";

export class RegistryError extends Error {
  override readonly name = "RegistryError";
}

export interface RunningRegistry {
  /** `<address>:<port>` */
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** The registry wrapper made by hack/tools/evaluator.sh. */
  readonly binary: string;
  /** Empty directory for the configuration, the storage and the log. */
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Local address to listen on (default 127.0.0.1), e.g. a local node's veth address. */
  readonly address?: string;
}

async function freePort(host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (address === null || typeof address === "string") {
    throw new RegistryError("could not pick a free port");
  }
  return address.port;
}

function config(storage: string, address: string, port: number): string {
  return [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${address}:${port}`,
    // One instance, never behind a load balancer; a fixed secret silences the warning.
    "  secret: imagepolicy-operator-tests",
    "",
  ].join("\n");
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timedOut = await Promise.race([exited.then(() => false), delay(5_000).then(() => true)]);
  if (timedOut) {
    child.kill("SIGKILL");
    await exited;
  }
}

async function startOnce(
  options: RegistryOptions,
  port: number,
  attempt: number,
): Promise<RunningRegistry> {
  const configPath = path.join(options.dir, `config-${attempt}.yml`);
  const address = options.address ?? "127.0.0.1";
  await writeFile(configPath, config(path.join(options.dir, "storage"), address, port));
  const child = spawn(options.binary, ["serve", configPath], {
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const append = (chunk: Buffer): void => {
    log = (log + chunk.toString("utf8")).slice(-16_384);
  };
  child.stdout.on("data", append);
  child.stderr.on("data", append);
  let spawnError: Error | undefined;
  child.on("error", (err) => {
    spawnError = err;
  });

  const url = `http://${address}:${port}/v2/`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (spawnError !== undefined) {
      throw new RegistryError(`cannot start ${options.binary}`, { cause: spawnError });
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new RegistryError(
        `registry exited (${String(child.exitCode ?? child.signalCode)}) before serving ${url}:\n${log}`,
      );
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopProcess(child);
      throw new RegistryError(`registry did not answer on ${url} within 15 s:\n${log}`);
    }
    await delay(50);
  }
  return {
    host: `${address}:${port}`,
    port,
    stop: () => stopProcess(child),
  };
}

/** Start the registry on a free port; retries when another process took the port first. */
export async function startRegistry(options: RegistryOptions): Promise<RunningRegistry> {
  const errors: Error[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options, await freePort(options.address ?? "127.0.0.1"), attempt);
    } catch (err) {
      if (!(err instanceof RegistryError)) {
        throw new RegistryError("starting the registry failed", { cause: err });
      }
      errors.push(err);
      if (!/address already in use/.test(err.message))
        throw new RegistryError(err.message, { cause: err });
    }
  }
  throw new RegistryError("registry could not bind a free port in 3 attempts", {
    cause: new AggregateError(errors),
  });
}

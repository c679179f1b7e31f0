// Entry point of the `imagepolicy` binary: parses arguments, runs one command, sets the exit code.
// The only place that calls process.exit.

import { parseArgs } from "node:util";
import { CrioVersionError, LATEST_KNOWN, parseCrioVersion } from "../compiler/crioVersion.ts";
import { processIo, type Io } from "./io.ts";

const USAGE = `usage:
  imagepolicy controller [flags]   (imagepolicy controller --help)
  imagepolicy agent [flags]        (imagepolicy agent --help)
  imagepolicy compile -f <file-or-dir>... -o <outdir> [--crio-version X.Y]
  imagepolicy validate -f <file-or-dir>... [--crio-version X.Y] [-o json]
  imagepolicy explain --image REF [--namespace NS] -f <file-or-dir>... [--crio-version X.Y]
  imagepolicy explain --live --image REF [-n NS] [--node NODE] [--kubeconfig FILE]
      [--operator-namespace imagepolicy-system]   (also: kubectl imagepolicy explain ...)
  imagepolicy import -f <file-or-dir>... [-o FILE] [flags]   (imagepolicy import --help)`;

class UsageError extends Error {
  override readonly name = "UsageError";
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  // Long-running commands parse their own flags. Every command loads only its own modules: the
  // agent, on every node, does not carry the compiler CLI (docs/scale.md).
  if (command === "controller") return (await import("../controller/main.ts")).main(rest, io);
  if (command === "agent") return (await import("../agent/main.ts")).main(rest, io);
  if (command === "import") return (await import("./importCommand.ts")).importMain(rest, io);
  try {
    const { values } = parseArgs({
      args: [...rest],
      options: {
        file: { type: "string", short: "f", multiple: true },
        out: { type: "string", short: "o" },
        "crio-version": { type: "string" },
        image: { type: "string" },
        namespace: { type: "string", short: "n" },
        live: { type: "boolean" },
        node: { type: "string" },
        kubeconfig: { type: "string" },
        "operator-namespace": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) {
      io.out(USAGE);
      return 0;
    }
    const files = values.file ?? [];
    const live = command === "explain" && values.live === true;
    if (files.length === 0 && (command === "compile" || (command === "explain" && !live))) {
      throw new UsageError("at least one -f <file-or-dir> is required");
    }
    const crioVersion =
      values["crio-version"] === undefined
        ? LATEST_KNOWN
        : parseCrioVersion(values["crio-version"]);
    switch (command) {
      case "compile":
        if (values.out === undefined) throw new UsageError("-o <outdir> is required");
        return await (
          await import("./compileCommand.ts")
        ).compileCommand({ files, outDir: values.out, crioVersion }, io);
      case "validate":
        return await (
          await import("./validateCommand.ts")
        ).validateCommand(
          { files, crioVersion, ...(values.out === undefined ? {} : { output: values.out }) },
          io,
        );
      case "explain":
        if (values.image === undefined) throw new UsageError("--image is required");
        if (values.live === true) {
          return await (
            await import("./explainLive.ts")
          ).liveExplainCommand(
            {
              image: values.image,
              operatorNamespace: values["operator-namespace"] ?? "imagepolicy-system",
              ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
              ...(values.node === undefined ? {} : { node: values.node }),
              ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
            },
            io,
          );
        }
        return await (
          await import("./explainCommand.ts")
        ).explainCommand(
          {
            files,
            image: values.image,
            crioVersion,
            ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
          },
          io,
        );
      default:
        throw new UsageError(
          command === undefined ? "a command is required" : `unknown command ${command}`,
        );
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      err instanceof CrioVersionError ||
      (err as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ) {
      io.err(`error: ${(err as Error).message}\n${USAGE}`);
      return 2;
    }
    // I/O and manifest syntax errors: exit 2 with the message, no stack trace for users.
    io.err(`error: ${(err as Error).message}`);
    return 2;
  }
}

if (import.meta.main) {
  process.exitCode = await run(process.argv.slice(2), processIo);
}

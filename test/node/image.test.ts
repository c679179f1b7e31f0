// The operator image CI builds without Docker (hack/tools/operator-image.sh) against the
// Dockerfile users build: the final stage's USER, WORKDIR, ENV and ENTRYPOINT against the image's
// OCI configuration, and every COPY against the image's files (/app/package.json byte for byte,
// /app/bin and /app/src file for file, /app/node_modules package for package against
// package-lock.json's production packages), and the Node binary against the base image's major.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { toolOutput } from "../support/node.ts";

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "../..");

class ImageTestError extends Error {
  override readonly name = "ImageTestError";
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile's final stage

interface FinalStage {
  readonly baseArg: string;
  readonly user: string;
  readonly workdir: string;
  readonly env: Readonly<Record<string, string>>;
  readonly entrypoint: readonly string[];
  /** COPY source -> destination (relative destinations resolved against WORKDIR). */
  readonly copies: readonly {
    readonly from?: string;
    readonly src: string;
    readonly dest: string;
  }[];
  /** The commands of RUN lines. The only one this test knows fills Node's compile cache. */
  readonly runs: readonly string[];
}

/** Parses the instructions this Dockerfile uses; any other instruction in the final stage fails. */
function parseDockerfile(text: string): FinalStage {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const args = new Map<string, string>();
  let stage: string[] = [];
  for (const line of lines) {
    const m = /^ARG\s+(\w+)=(\S+)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined && stage.length === 0) args.set(m[1], m[2]);
    if (line.startsWith("FROM ")) stage = [];
    stage.push(line);
  }
  const from = /^FROM\s+\$\{(\w+)\}$/.exec(stage[0] ?? "");
  const baseArg = args.get(from?.[1] ?? "");
  if (baseArg === undefined) throw new ImageTestError(`unexpected final FROM: ${stage[0] ?? ""}`);
  let user = "";
  let workdir = "/";
  const env: Record<string, string> = {};
  let entrypoint: string[] = [];
  const copies: { from?: string; src: string; dest: string }[] = [];
  const runs: string[] = [];
  for (const line of stage.slice(1)) {
    const [instruction = "", ...rest] = line.split(/\s+/);
    const value = line.slice(instruction.length).trim();
    switch (instruction) {
      case "ENV": {
        const [k, v] = value.split("=");
        if (k === undefined || v === undefined) throw new ImageTestError(`ENV ${value}`);
        env[k] = v;
        break;
      }
      case "WORKDIR":
        workdir = value;
        break;
      case "USER":
        user = value;
        break;
      case "ENTRYPOINT":
        entrypoint = z.array(z.string()).parse(JSON.parse(value));
        break;
      case "COPY": {
        const fromFlag = rest[0]?.startsWith("--from=") === true ? rest.shift() : undefined;
        const [src, dest] = rest;
        if (src === undefined || dest === undefined || rest.length !== 2) {
          throw new ImageTestError(`COPY ${value}`);
        }
        copies.push({
          ...(fromFlag === undefined ? {} : { from: fromFlag.slice("--from=".length) }),
          src: src.replace(/^\.\//, ""),
          dest: path.posix.resolve(workdir, dest),
        });
        break;
      }
      case "RUN":
        // Only the compile-cache line: it adds files under NODE_COMPILE_CACHE and nothing else.
        if (env.NODE_COMPILE_CACHE === undefined || !value.startsWith("node src/cli/main.ts ")) {
          throw new ImageTestError(`a RUN line this test does not know: ${line}`);
        }
        runs.push(value);
        break;
      default:
        throw new ImageTestError(
          `the final stage has an instruction this test does not know: ${line}`,
        );
    }
  }
  return { baseArg, user, workdir, env, entrypoint, copies, runs };
}

// ---------------------------------------------------------------------------------------------
// The built image

const indexSchema = z.looseObject({
  manifests: z.array(
    z.looseObject({
      digest: z.string(),
      annotations: z.record(z.string(), z.string()).optional(),
    }),
  ),
});
const manifestSchema = z.looseObject({
  config: z.looseObject({ digest: z.string() }),
  layers: z.array(z.looseObject({ digest: z.string(), mediaType: z.string() })),
});
const configSchema = z.looseObject({
  config: z.looseObject({
    User: z.string().optional(),
    WorkingDir: z.string().optional(),
    Env: z.array(z.string()).optional(),
    Entrypoint: z.array(z.string()).optional(),
    Cmd: z.array(z.string()).nullable().optional(),
  }),
});

interface Image {
  readonly config: z.infer<typeof configSchema>["config"];
  /**
   * Every regular file and symlink of the flattened image -> the sha256 of a file's content, or
   * `-> target` for a symlink. Device nodes and directories are left out.
   */
  readonly files: ReadonlyMap<string, string>;
}

async function readImage(reference: string): Promise<Image> {
  const at = reference.lastIndexOf(":");
  const layout = reference.slice(0, at);
  const tag = reference.slice(at + 1);
  const blob = (digest: string): string => path.join(layout, "blobs", ...digest.split(":"));
  const index = indexSchema.parse(
    JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")),
  );
  const entry = index.manifests.find(
    (m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag,
  );
  if (entry === undefined) throw new ImageTestError(`no tag ${tag} in ${layout}`);
  const manifest = manifestSchema.parse(JSON.parse(await readFile(blob(entry.digest), "utf8")));
  const config = configSchema.parse(
    JSON.parse(await readFile(blob(manifest.config.digest), "utf8")),
  );
  // Flatten the layers in order: later layers add or replace files (no whiteouts are expected).
  const files = new Map<string, string>();
  const scratch = await mkdtemp(path.join(tmpdir(), "imagepolicy-image-test-"));
  try {
    for (const [i, layer] of manifest.layers.entries()) {
      const dir = path.join(scratch, String(i));
      await mkdir(dir);
      await execFileAsync("tar", [
        "-xzf",
        blob(layer.digest),
        "-C",
        dir,
        "--no-same-owner",
        "--no-same-permissions",
        "--exclude=./dev/*",
        "--exclude=dev/*",
      ]);
      for (const f of await walk(dir)) {
        const rel = `/${path.relative(dir, f)}`;
        if (path.basename(rel).startsWith(".wh.")) throw new ImageTestError(`whiteout ${rel}`);
        const st = await lstat(f);
        if (st.isSymbolicLink()) files.set(rel, `-> ${await readlink(f)}`);
        else if (st.isFile()) files.set(rel, await sha256(f));
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { config: config.config, files };
}

/** Every non-directory entry under `dir` (symlinks are not followed). */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

async function sha256(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

const lockSchema = z.looseObject({
  packages: z.record(
    z.string(),
    z.looseObject({ dev: z.boolean().optional(), optional: z.boolean().optional() }),
  ),
});

// ---------------------------------------------------------------------------------------------

let stage: FinalStage;
let image: Image;

beforeAll(async () => {
  stage = parseDockerfile(await readFile(path.join(repoRoot, "Dockerfile"), "utf8"));
  image = await readImage(await toolOutput("operator-image.sh"));
}, 900_000);

describe("the operator image built without Docker matches the Dockerfile", () => {
  it("has the final stage's user, working directory, environment and entrypoint", () => {
    expect(image.config.User).toBe(stage.user);
    expect(image.config.WorkingDir).toBe(stage.workdir);
    expect(image.config.Entrypoint).toEqual(stage.entrypoint);
    expect(image.config.Cmd ?? []).toEqual([]);
    for (const [k, v] of Object.entries(stage.env)) expect(image.config.Env).toContain(`${k}=${v}`);
    expect(stage.user).toBe("65532:65532");
  });

  it("runs the Node major of the Dockerfile's base image, found on PATH as `node`", async () => {
    const major = /^node:(\d+)-/.exec(stage.baseArg)?.[1];
    expect(major).toBeDefined();
    expect(stage.entrypoint[0]).toBe("node");
    expect(image.files.has("/usr/local/bin/node")).toBe(true);
    const pathEnv = image.config.Env?.find((e) => e.startsWith("PATH="));
    expect(pathEnv?.split("=")[1]?.split(":")).toContain("/usr/local/bin");
    const pinned = z
      .looseObject({ devDependencies: z.looseObject({ node: z.string() }) })
      .parse(JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")));
    expect(pinned.devDependencies.node.split(".")[0]).toBe(major);
  });

  it("holds exactly what the COPY lines copy into /app", async () => {
    const fromStages = stage.copies.filter((cp) => cp.from !== undefined);
    expect(fromStages).toEqual([
      { from: "deps", src: "/app/node_modules", dest: "/app/node_modules" },
      { from: "native", src: "/build/malloc-trim.node", dest: "/app/native/malloc-trim.node" },
    ]);
    const expected = new Map<string, string>();
    // The native stage's addon: native/build.sh's output, as hack/tools/malloc-trim.sh builds it.
    expected.set("/app/native/malloc-trim.node", await sha256(await toolOutput("malloc-trim.sh")));
    for (const cp of stage.copies.filter((x) => x.from === undefined)) {
      const src = path.join(repoRoot, cp.src);
      if ((await stat(src)).isDirectory()) {
        for (const f of await walk(src)) {
          expected.set(path.posix.join(cp.dest, path.relative(src, f)), await sha256(f));
        }
      } else {
        // `COPY package.json ./`: WORKDIR-relative destinations were resolved to /app.
        const dest = cp.dest === stage.workdir ? path.posix.join(cp.dest, cp.src) : cp.dest;
        expected.set(dest, await sha256(src));
      }
    }
    // Everything from the build context, byte for byte ...
    for (const [dest, hash] of expected) expect(image.files.get(dest), dest).toBe(hash);
    // ... and nothing else outside node_modules and the compile cache the RUN line fills.
    const cache = stage.env.NODE_COMPILE_CACHE;
    const appFiles = [...image.files.keys()]
      .filter((f) => f.startsWith("/app/") && !f.startsWith("/app/node_modules/"))
      .filter((f) => cache === undefined || !f.startsWith(`${cache}/`))
      .sort();
    expect(appFiles).toEqual([...expected.keys()].sort());
  });

  it("builds the agent's malloc_trim addon in a native stage with native/build.sh", async () => {
    const dockerfile = await readFile(path.join(repoRoot, "Dockerfile"), "utf8");
    const native = /^FROM \$\{(\w+)\} AS native\n(?:.*\n)*?RUN (.*)$/m.exec(dockerfile);
    expect(native?.[1]).toBe("NODE_BUILD_IMAGE");
    expect(native?.[2]).toBe("native/build.sh /usr/local/include/node malloc-trim.node");
    // The same Node release line as the final stage's base, so the headers match the binary.
    const arg = (name: string): string | undefined =>
      new RegExp(`^ARG ${name}=(\\S+)$`, "m").exec(dockerfile)?.[1];
    expect(arg("NODE_BUILD_IMAGE")?.split("-")[0]).toBe(arg("NODE_IMAGE")?.split("-")[0]);
  });

  it("holds Node's compile cache where NODE_COMPILE_CACHE says, filled by the RUN line", () => {
    const cache = stage.env.NODE_COMPILE_CACHE;
    expect(stage.runs).toHaveLength(1);
    expect(cache).toBeDefined();
    // One directory per Node release and architecture, holding one entry per module loaded.
    const entries = [...image.files.keys()].filter((f) => f.startsWith(`${cache ?? ""}/v24.`));
    expect(entries.length).toBeGreaterThan(50);
  });

  it("holds the production packages of package-lock.json in /app/node_modules, and no others", async () => {
    const lock = lockSchema.parse(
      JSON.parse(await readFile(path.join(repoRoot, "package-lock.json"), "utf8")),
    );
    const entries = Object.entries(lock.packages).filter(([p]) => p.startsWith("node_modules/"));
    const production = new Set(entries.filter(([, m]) => m.dev !== true).map(([p]) => p));
    const required = [...production].filter((p) => lock.packages[p]?.optional !== true);
    // A package directory: node_modules/<name> or node_modules/@<scope>/<name>, possibly nested.
    const packageDir = /^node_modules\/(?:@[^/]+\/)?[^/]+(?:\/node_modules\/(?:@[^/]+\/)?[^/]+)*$/;
    const installed = new Set(
      [...image.files.keys()]
        .filter((f) => f.startsWith("/app/node_modules/") && f.endsWith("/package.json"))
        .map((f) => f.slice("/app/".length, -"/package.json".length))
        .filter((p) => packageDir.test(p)),
    );
    expect(required.length).toBeGreaterThan(10);
    expect(required.filter((p) => !installed.has(p))).toEqual([]);
    // No devDependency (vitest, typescript, eslint, the `node` binary package, ...).
    expect([...installed].filter((p) => !production.has(p))).toEqual([]);
  });
});

// The agent names key files (src/agent/keyFiles.ts: keyPath, keyPaths, signedBy keyPath) where the
// compiler inlines keys (keyData, keyDatas): the real containers-image evaluator must reach the
// same verdict on both, for every image of the fixture registry.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { NodeFiles } from "../../src/agent/files.ts";
import { nodePaths } from "../../src/agent/hostPaths.ts";
import type { LayerInput } from "../../src/agent/layers.ts";
import { realNodeFs } from "../../src/agent/nodeFs.ts";
import { registriesIndex } from "../../src/agent/registriesDFile.ts";
import { combine, indexLayer } from "../../src/compiler/combine.ts";
import { LATEST_KNOWN } from "../../src/compiler/crioVersion.ts";
import { parseLayer, serializeLayer, type Layer } from "../../src/compiler/layer.ts";
import type { Requirement } from "../../src/compiler/requirements.ts";
import { layerRevision } from "../../src/layerConfigMap.ts";
import { imageNames } from "./environment.ts";
import { evaluateAll } from "./harness.ts";

const env = inject("evaluator");
let scratch = "";

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "imagepolicy-keyfiles-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function layerOf(namespace: string | undefined, entries: [string, Requirement][]): Layer {
  return {
    ...(namespace === undefined ? {} : { namespace }),
    policies: entries.map(([scope, requirement], i) => ({
      name: `p${String(i)}`,
      scopes: [scope],
      requirement,
    })),
  };
}

describe("key files on the node", () => {
  it("give the verdicts of the inlined keys, for every fixture image", async () => {
    const reg = env.registry;
    const keys = (...k: ("a" | "b")[]): Requirement => ({
      kind: "sigstoreKeys",
      keys: k.map((n) => env.keys[n]).sort(),
    });
    const cluster = layerOf(undefined, [
      [`${reg}/signed/app`, keys("a")], // keyPath
      [`${reg}/signed/team`, keys("a", "b")], // keyPaths
      [`${reg}/wrong`, keys("a", "b")],
      [`${reg}/unsigned`, keys("b")],
      [`${reg}/mirror`, keys("b")],
      [`${reg}/cosign`, keys("a")],
      [`${reg}/gpg`, { kind: "gpg", keyring: env.gpg.keyring, lookaside: env.gpg.lookaside }],
    ]);
    const team = layerOf("team-x", [[`${reg}/signed`, keys("b")]]);

    const host = path.join(scratch, "node");
    const locations = {
      root: "/",
      policyPath: path.join(host, "etc/crio/imagepolicy/cluster.json"),
      policyDir: path.join(host, "etc/crio/policies"),
      registriesD: path.join(host, "etc/containers/registries.d"),
      systemRegistriesD: path.join(host, "usr/share/containers/registries.d"),
      registriesConf: path.join(host, "etc/containers/registries.conf"),
      crioSocket: path.join(host, "run/crio.sock"),
    };
    const paths = nodePaths(locations);
    const files = new NodeFiles(
      paths,
      locations.policyDir,
      realNodeFs(),
      pino({ level: "silent" }),
    );
    await files.load();
    const texts = new Map<string, string>();
    const input = (l: Layer): { text: string; revision: string } => {
      const text = serializeLayer(l);
      const t = { text, revision: layerRevision(text) };
      texts.set(t.revision, text);
      return t;
    };
    const out = await files.reconcile({
      cluster: input(cluster),
      namespaces: new Map<string, LayerInput>([["team-x", { ok: true, layer: input(team) }]]),
      needs: (rev) => {
        const t = texts.get(rev);
        return t === undefined ? undefined : registriesIndex(parseLayer(t));
      },
      inputs: { registries: [], otherKeys: new Map(), problems: [] },
      target: LATEST_KNOWN,
      text: (rev) => texts.get(rev),
    });
    expect(out.result.error).toBeUndefined();

    // The compiler's documents for the same layers, keys inline.
    const inline = async (name: string, ...layers: Layer[]): Promise<string> => {
      const r = combine(layers.map(indexLayer), LATEST_KNOWN);
      if (!r.ok) throw new Error(r.problems.join("; "));
      const file = path.join(scratch, name);
      await writeFile(file, r.text);
      return file;
    };
    const pairs = [
      { node: paths.clusterJson, compiler: await inline("cluster.json", cluster) },
      {
        node: path.join(paths.policyDir, "team-x.json"),
        compiler: await inline("team-x.json", cluster, team),
      },
    ];
    for (const p of pairs) {
      const text = await readFile(p.node, "utf8");
      expect(text).toContain('"keyPath"');
      expect(text).toContain('"keyPaths"');
      expect(text).not.toContain('"keyData"');
    }

    const images = imageNames.filter((n) => n !== "localhost/signed/app:v1");
    const cases = pairs.flatMap((p) =>
      images.flatMap((image) =>
        [p.node, p.compiler].map((policyPath) => ({
          policyPath,
          registriesDDir: paths.registriesD,
          image: env.images[image],
        })),
      ),
    );
    const results = await evaluateAll(cases);
    const verdicts = results.map((r) => r.allowed);
    let allowed = 0;
    for (let i = 0; i < verdicts.length; i += 2) {
      expect(
        verdicts[i],
        `${cases[i]?.image ?? ""} under ${cases[i]?.policyPath ?? ""}: ${results[i]?.output ?? ""}`,
      ).toBe(verdicts[i + 1]);
      if (verdicts[i] === true) allowed += 1;
    }
    // Both verdicts occur, with key files (sigstore, several keys, GPG) deciding.
    expect(allowed).toBeGreaterThanOrEqual(4);
    expect(verdicts.length / 2 - allowed).toBeGreaterThanOrEqual(4);
  });
});

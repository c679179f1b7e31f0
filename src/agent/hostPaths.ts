// Host paths and file names of the agent's files (docs/internals.md "Files on a node").
//
// Every path a flag names is a path as the host (and CRI-O) sees it; the agent reaches it under
// `--root` (a DaemonSet mounts the host at e.g. /host; tests give each agent its own directory).
// A namespace becomes a file name only when it is a DNS-1123 label, so no name can leave the
// policy directory or collide with the manifest.

import path from "node:path";
import { KEYS_DIR } from "./keyFiles.ts";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

export class HostPathError extends Error {
  override readonly name = "HostPathError";
}

/** `hostPath` (absolute, as the host sees it) as the agent reaches it under `root`. */
export function underRoot(root: string, hostPath: string): string {
  if (!path.isAbsolute(hostPath)) {
    throw new HostPathError(`host path ${JSON.stringify(hostPath)} is not absolute`);
  }
  const normalised = path.normalize(hostPath);
  return path.join(path.resolve(root), normalised);
}

export const CLUSTER_FILE = "cluster.json";
export const MANIFEST_FILE = ".imagepolicy-manifest";
export const REGISTRIES_D_FILE = "imagepolicy.yaml";

/** `<namespace>.json`, or undefined when the namespace is not a DNS-1123 label. */
export function namespaceFileName(namespace: string): string | undefined {
  return isDns1123Label(namespace) ? `${namespace}.json` : undefined;
}

/** The paths the agent writes, already under `--root`. */
export interface NodePaths {
  readonly clusterJson: string;
  readonly manifest: string;
  readonly policyDir: string;
  readonly registriesD: string;
  readonly registriesDFile: string;
  readonly systemRegistriesD: string;
  readonly registriesConf: string;
  readonly crioSocket: string;
  /** The key files (keyFiles.ts), beside cluster.json. */
  readonly keysDir: string;
  /** The same directory as the host (CRI-O) sees it: what policy files name. */
  readonly hostKeysDir: string;
}

export interface HostLocations {
  readonly root: string;
  readonly policyPath: string;
  readonly policyDir: string;
  readonly registriesD: string;
  readonly systemRegistriesD: string;
  readonly registriesConf: string;
  readonly crioSocket: string;
}

export function nodePaths(h: HostLocations): NodePaths {
  const clusterJson = underRoot(h.root, h.policyPath);
  const registriesD = underRoot(h.root, h.registriesD);
  const policyDir = underRoot(h.root, h.policyDir);
  if (path.dirname(clusterJson) === policyDir) {
    // CRI-O would read cluster.json as the policy of a namespace named "cluster".
    throw new HostPathError("--policy-path must not be inside --policy-dir");
  }
  if (path.join(path.dirname(clusterJson), KEYS_DIR) === policyDir) {
    throw new HostPathError(
      `--policy-dir must not be the ${KEYS_DIR} directory beside --policy-path`,
    );
  }
  return {
    clusterJson,
    manifest: path.join(path.dirname(clusterJson), MANIFEST_FILE),
    policyDir,
    registriesD,
    registriesDFile: path.join(registriesD, REGISTRIES_D_FILE),
    systemRegistriesD: underRoot(h.root, h.systemRegistriesD),
    registriesConf: underRoot(h.root, h.registriesConf),
    crioSocket: underRoot(h.root, h.crioSocket),
    keysDir: path.join(path.dirname(clusterJson), KEYS_DIR),
    hostKeysDir: path.join(path.dirname(path.normalize(h.policyPath)), KEYS_DIR),
  };
}

const LAYER_FILE = /^\.imagepolicy-cluster-layer-([0-9a-f]{16})$/;

/** `.imagepolicy-cluster-layer-<revision>`, beside the manifest: the text of a cluster layer
 * cluster.json may hold (manifest.ts). */
export function layerFileName(revision: string): string {
  const name = `.imagepolicy-cluster-layer-${revision}`;
  if (!LAYER_FILE.test(name)) throw new HostPathError(`not a layer revision: ${revision}`);
  return name;
}

/** The revision of a layer file name, or undefined for any other name. */
export function layerFileRevision(name: string): string | undefined {
  return LAYER_FILE.exec(name)?.[1];
}

/** Where the text of cluster layer `revision` is kept. */
export function layerFilePath(paths: NodePaths, revision: string): string {
  return path.join(path.dirname(paths.manifest), layerFileName(revision));
}

/** The path of `<namespace>.json`; undefined for a name that is not a DNS-1123 label. */
export function namespaceFilePath(paths: NodePaths, namespace: string): string | undefined {
  const name = namespaceFileName(namespace);
  if (name === undefined) return undefined;
  const p = path.join(paths.policyDir, name);
  // Belt and braces: the label regex already excludes "/", "." and "..".
  return path.dirname(p) === paths.policyDir ? p : undefined;
}

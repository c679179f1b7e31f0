// A real local Kubernetes control plane for tests: etcd, kube-apiserver (RBAC on, loopback by
// default) and kube-controller-manager (namespace deletion, garbage collection, ServiceAccount
// tokens), built by hack/tools/control-plane.sh and run as child processes with their logs under
// `dir`. For a cluster with a real kubelet (test/support/node.ts) it also runs kube-scheduler,
// listens on an address the node's network namespace reaches, publishes that address as the
// `kubernetes` Service's endpoint, and issues client certificates for the node's components.
//
// Nothing here is skipped: a binary that cannot be built or a process that does not become ready
// throws with the tail of its log.
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { ManagedProcess } from "./managedProcess.ts";

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ControlPlaneOptions {
  /** Working directory for certificates, kubeconfigs, etcd data and process logs. */
  readonly dir: string;
  /** Directory of CustomResourceDefinition YAML files to apply and wait for. */
  readonly crdDir?: string;
  /** How long each process may take to become ready (default 120 s). */
  readonly readyTimeoutMs?: number;
  /**
   * The one address kube-apiserver listens on and advertises (default 127.0.0.1). A non-loopback
   * address (a real node's pods dial it through the `kubernetes` Service) is also published as
   * that Service's endpoint, which a loopback address cannot be.
   */
  readonly address?: string;
  /** Path of a kube-scheduler binary to run too (hack/tools/kubelet.sh builds one). */
  readonly scheduler?: string;
}

/** Identity of a client certificate: the user name (CN) and groups (O). */
export interface ClientIdentity {
  readonly user: string;
  readonly groups?: readonly string[];
}

export interface ControlPlane {
  /** Kubernetes version the binaries were built at, e.g. `v1.37.2`. */
  readonly kubernetesVersion: string;
  /** Directory holding kube-apiserver, kube-controller-manager, kubectl and etcd. */
  readonly binDir: string;
  /** Admin kubeconfig (client certificate in group system:masters). */
  readonly kubeconfigPath: string;
  /** API server URL, `https://<address>:<port>`. */
  readonly server: string;
  /** The cluster CA's certificate (PEM file): it signs every certificate here. */
  readonly caCertPath: string;
  /** The Service ClusterIP range (`--service-cluster-ip-range`). */
  readonly serviceClusterIpRange: string;
  /**
   * Writes a kubeconfig at `file` holding a new client certificate for `identity`, signed by the
   * cluster CA (e.g. `system:node:<name>` in `system:nodes` for a kubelet); returns `file`.
   */
  clientKubeconfig(file: string, identity: ClientIdentity): Promise<string>;
  /** Runs kubectl with the admin kubeconfig; never throws on a non-zero exit code. */
  kubectl(args: readonly string[], options?: { readonly stdin?: string }): Promise<CommandResult>;
  /**
   * Requests a token for an existing ServiceAccount (TokenRequest API, `kubectl create token`)
   * and writes a kubeconfig that uses it; returns the kubeconfig's path.
   */
  serviceAccountKubeconfig(
    namespace: string,
    name: string,
    options?: { readonly boundNode?: string },
  ): Promise<string>;
  /** Creates a Node (no kubelet behind it) whose status reports `containerRuntimeVersion`, e.g.
   * `cri-o://1.34.0`: what the controller and the agents read the runtime from. */
  registerNode(name: string, containerRuntimeVersion: string): Promise<void>;
  /** Stops kube-apiserver only; etcd and its data stay. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits for /readyz. */
  startApiServer(): Promise<void>;
  /** Stops every process. Safe to call more than once. */
  stop(): Promise<void>;
}

export class ControlPlaneError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** hack/tools/control-plane.sh failed. */
export class ControlPlaneBuildError extends ControlPlaneError {}

/** A process exited or did not become ready in time. */
export class ControlPlaneStartError extends ControlPlaneError {}

const repoRoot = path.resolve(import.meta.dirname, "../..");
const buildScript = path.join(repoRoot, "hack/tools/control-plane.sh");
const logTailLines = 60;
// kube-apiserver stops listening at once on SIGTERM but then waits ~10 s+ for open watches to
// drain; nothing here needs that drain, so processes get SIGKILL after this grace period.
const stopGraceMs = 3_000;
const serviceClusterIpRange = "10.96.0.0/16";

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = path.resolve(opts.dir);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  await mkdir(dir, { recursive: true });

  const binDir = await buildBinaries(dir);
  const kubernetesVersion = versionFromBinDir(binDir);
  const bin = (name: string): string => path.join(binDir, name);
  const address = opts.address ?? "127.0.0.1";
  const loopback = address === "127.0.0.1";

  const pki = await createPki(dir, address);
  const [etcdClientPort, etcdPeerPort, apiPort, kcmPort, schedulerPort] = await freePorts(5);
  const server = `https://${address}:${apiPort}`;

  const kubeconfigPath = path.join(dir, "admin.kubeconfig");
  await writeKubeconfig(kubeconfigPath, server, pki.caCert, {
    "client-certificate-data": b64(pki.admin.cert),
    "client-key-data": b64(pki.admin.key),
  });
  const kcmKubeconfig = path.join(dir, "kube-controller-manager.kubeconfig");
  await writeKubeconfig(kcmKubeconfig, server, pki.caCert, {
    "client-certificate-data": b64(pki.controllerManager.cert),
    "client-key-data": b64(pki.controllerManager.key),
  });

  const clientKubeconfig = async (file: string, identity: ClientIdentity): Promise<string> => {
    const subject = [...(identity.groups ?? []).map((g) => `/O=${g}`), `/CN=${identity.user}`];
    const name = `client-${path.basename(file).replace(/[^A-Za-z0-9._-]/g, "_")}`;
    const pair = await signedPair(path.join(dir, "pki"), name, subject.join(""), [
      "extendedKeyUsage=clientAuth",
    ]);
    await writeKubeconfig(file, server, pki.caCert, {
      "client-certificate-data": b64(await readFile(pair.cert, "utf8")),
      "client-key-data": b64(await readFile(pair.key, "utf8")),
    });
    return file;
  };

  const processes = new Set<ManagedProcess>();
  const killAllNow = (): void => {
    for (const p of processes) p.killNow();
  };
  process.once("exit", killAllNow);

  const launch = (name: string, args: readonly string[]): ManagedProcess => {
    const p = ManagedProcess.spawn(name, bin(name), args, path.join(dir, "logs", `${name}.log`), {
      stopGraceMs,
    });
    processes.add(p);
    return p;
  };

  const etcdArgs = [
    "--name=default",
    `--data-dir=${path.join(dir, "etcd-data")}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClientPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClientPort}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
    "--unsafe-no-fsync",
    "--log-level=warn",
  ];
  const apiServerArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
    `--bind-address=${address}`,
    `--advertise-address=${address}`,
    `--secure-port=${apiPort}`,
    `--cert-dir=${path.join(dir, "apiserver-certs")}`,
    `--tls-cert-file=${pki.paths.apiServerCert}`,
    `--tls-private-key-file=${pki.paths.apiServerKey}`,
    `--client-ca-file=${pki.paths.caCert}`,
    "--authorization-mode=Node,RBAC",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${pki.paths.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${pki.paths.serviceAccountPrivateKey}`,
    `--service-cluster-ip-range=${serviceClusterIpRange}`,
    // The `kubernetes` Service's endpoints cannot name a loopback address; any other address is
    // published there (the default lease reconciler), so pods reach this API server.
    ...(loopback ? ["--endpoint-reconciler-type=none"] : []),
    // Kubelets may modify only their own Node and their pods (with the Node authorizer above).
    "--enable-admission-plugins=NodeRestriction",
    // Logs, exec and port-forward through a kubelet: the kubelet authenticates this certificate
    // against the cluster CA, and authorizes it (system:masters) through the API server.
    `--kubelet-client-certificate=${pki.paths.kubeletClientCert}`,
    `--kubelet-client-key=${pki.paths.kubeletClientKey}`,
    "--kubelet-preferred-address-types=InternalIP",
    "--allow-privileged=true",
    "--profiling=false",
  ];
  const controllerManagerArgs = [
    `--kubeconfig=${kcmKubeconfig}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${kcmPort}`,
    `--cert-dir=${path.join(dir, "kube-controller-manager-certs")}`,
    // Every default controller; without a cloud provider the cloud ones do not start.
    "--controllers=*",
    "--use-service-account-credentials=true",
    `--root-ca-file=${pki.paths.caCert}`,
    `--service-account-private-key-file=${pki.paths.serviceAccountPrivateKey}`,
    `--cluster-signing-cert-file=${pki.paths.caCert}`,
    `--cluster-signing-key-file=${pki.paths.caKey}`,
    "--leader-elect=false",
    "--profiling=false",
  ];

  let apiServer: ManagedProcess | undefined;
  const startApiServer = async (): Promise<void> => {
    if (apiServer !== undefined && !apiServer.exited) {
      throw new ControlPlaneError("kube-apiserver is already running");
    }
    const p = launch("kube-apiserver", apiServerArgs);
    apiServer = p;
    await p
      .waitReady(readyTimeoutMs, () =>
        httpsOk(`${server}/readyz`, {
          ca: pki.caCert,
          cert: pki.admin.cert,
          key: pki.admin.key,
        }),
      )
      .catch(async (error: unknown) => {
        await p.stop();
        throw new ControlPlaneStartError(error instanceof Error ? error.message : String(error), {
          cause: error,
        });
      });
  };
  const stopApiServer = async (): Promise<void> => {
    if (apiServer === undefined) return;
    await apiServer.stop();
    processes.delete(apiServer);
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Reverse start order: clients first, storage last.
    for (const p of [...processes].reverse()) {
      await p.stop();
      processes.delete(p);
    }
    process.removeListener("exit", killAllNow);
  };

  const kubectl = (
    args: readonly string[],
    options?: { readonly stdin?: string },
  ): Promise<CommandResult> =>
    runCommand(
      bin("kubectl"),
      [`--kubeconfig=${kubeconfigPath}`, `--cache-dir=${path.join(dir, "kubectl-cache")}`, ...args],
      options?.stdin,
    );

  try {
    const etcd = launch("etcd", etcdArgs);
    await etcd.waitReady(readyTimeoutMs, () => httpOk(`http://127.0.0.1:${etcdClientPort}/health`));
    await startApiServer();
    const kcm = launch("kube-controller-manager", controllerManagerArgs);
    await kcm.waitReady(readyTimeoutMs, () =>
      httpsOk(`https://127.0.0.1:${kcmPort}/healthz`, { rejectUnauthorized: false }),
    );
    if (opts.scheduler !== undefined) {
      const schedulerKubeconfig = await clientKubeconfig(
        path.join(dir, "kube-scheduler.kubeconfig"),
        { user: "system:kube-scheduler" },
      );
      const scheduler = ManagedProcess.spawn(
        "kube-scheduler",
        opts.scheduler,
        [
          `--kubeconfig=${schedulerKubeconfig}`,
          `--authentication-kubeconfig=${schedulerKubeconfig}`,
          `--authorization-kubeconfig=${schedulerKubeconfig}`,
          "--bind-address=127.0.0.1",
          `--secure-port=${schedulerPort}`,
          `--cert-dir=${path.join(dir, "kube-scheduler-certs")}`,
          "--leader-elect=false",
          "--profiling=false",
        ],
        path.join(dir, "logs", "kube-scheduler.log"),
        { stopGraceMs },
      );
      processes.add(scheduler);
      await scheduler.waitReady(readyTimeoutMs, () =>
        httpsOk(`https://127.0.0.1:${schedulerPort}/healthz`, { rejectUnauthorized: false }),
      );
    }
    // The ServiceAccount admission plugin refuses pods until the token controller has created
    // a namespace's `default` ServiceAccount; callers create pods in kube-system right away.
    await waitForDefaultServiceAccount(kubectl, "kube-system", readyTimeoutMs);
    if (opts.crdDir !== undefined) await installCrds(kubectl, path.resolve(opts.crdDir));
  } catch (error) {
    await stop();
    const detail = error instanceof Error ? error.message : String(error);
    throw new ControlPlaneStartError(`the control plane in ${dir} did not start: ${detail}`, {
      cause: error,
    });
  }

  const serviceAccountKubeconfig = async (
    namespace: string,
    name: string,
    options?: { readonly boundNode?: string },
  ): Promise<string> => {
    // A token bound to a Node object carries the `authentication.kubernetes.io/node-name` extra,
    // as the kubelet's pod-bound tokens do: what the agent's ValidatingAdmissionPolicy checks.
    const node = options?.boundNode;
    const bound =
      node === undefined ? [] : ["--bound-object-kind=Node", `--bound-object-name=${node}`];
    const token = await kubectl([
      "create",
      "token",
      name,
      "-n",
      namespace,
      "--duration=24h",
      ...bound,
    ]);
    if (token.code !== 0 || token.stdout.trim() === "") {
      throw new ControlPlaneError(
        `kubectl create token ${namespace}/${name} failed (exit ${token.code}): ${token.stderr.trim()}`,
      );
    }
    const file = path.join(
      dir,
      `serviceaccount-${namespace}-${name}${node === undefined ? "" : `-${node}`}.kubeconfig`,
    );
    await writeKubeconfig(file, server, pki.caCert, { token: token.stdout.trim() });
    return file;
  };

  const registerNode = async (name: string, containerRuntimeVersion: string): Promise<void> => {
    const status = { status: { nodeInfo: { containerRuntimeVersion } } };
    for (const args of [
      ["create", "-f", "-"],
      ["patch", "node", name, "--subresource=status", "--type=merge", "-p", JSON.stringify(status)],
    ]) {
      const stdin = JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name } });
      const r = await kubectl(args, { stdin });
      if (r.code !== 0) {
        throw new ControlPlaneError(
          `kubectl ${args.join(" ")} (exit ${r.code}): ${r.stderr.trim()}`,
        );
      }
    }
  };

  return {
    kubernetesVersion,
    binDir,
    kubeconfigPath,
    server,
    caCertPath: pki.paths.caCert,
    serviceClusterIpRange,
    clientKubeconfig,
    kubectl,
    serviceAccountKubeconfig,
    registerNode,
    stopApiServer,
    startApiServer,
    stop,
  };
}

async function buildBinaries(dir: string): Promise<string> {
  const result = await runCommand(buildScript, []).catch((error: unknown) => {
    throw new ControlPlaneBuildError(`cannot run ${buildScript}`, { cause: error });
  });
  await writeFile(path.join(dir, "control-plane-build.log"), result.stderr);
  const binDir = result.stdout.trim();
  if (result.code !== 0 || binDir === "") {
    throw new ControlPlaneBuildError(
      `${buildScript} failed (exit ${result.code}):\n${tail(result.stderr, logTailLines)}`,
    );
  }
  return binDir;
}

function versionFromBinDir(binDir: string): string {
  const match = /control-plane-(v\d+\.\d+\.\d+)-etcd-/.exec(binDir);
  if (match?.[1] === undefined) {
    throw new ControlPlaneBuildError(`cannot read the Kubernetes version from ${binDir}`);
  }
  return match[1];
}

async function installCrds(
  kubectl: (args: readonly string[]) => Promise<CommandResult>,
  crdDir: string,
): Promise<void> {
  const apply = await kubectl(["apply", "--server-side", "-f", crdDir]);
  if (apply.code !== 0) {
    throw new ControlPlaneError(`applying CRDs from ${crdDir} failed: ${apply.stderr.trim()}`);
  }
  const wait = await kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "-f",
    crdDir,
  ]);
  if (wait.code !== 0) {
    throw new ControlPlaneError(
      `CRDs from ${crdDir} did not become Established: ${wait.stderr.trim()}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

function runCommand(file: string, args: readonly string[], stdin?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      resolve({
        code: code ?? (signal === null ? -1 : 128),
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
    // A child that exits without reading its input is reported by its exit code, not EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin ?? "");
  });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

// ---------------------------------------------------------------------------------------------
// Network

async function freePorts(count: number): Promise<number[]> {
  // Hold every listener open until all ports are chosen, so the same port is not returned twice.
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => {
            resolve(s);
          });
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") {
      throw new ControlPlaneError("cannot read a listening port");
    }
    return address.port;
  });
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => {
            resolve();
          });
        }),
    ),
  );
  return ports;
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("timeout", () => req.destroy(new ControlPlaneError(`timeout: ${url}`)));
    req.once("error", reject);
    req.end();
  });
}

interface TlsOptions {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly rejectUnauthorized?: boolean;
}

function httpsOk(url: string, tls: TlsOptions): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ...tls, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("timeout", () => req.destroy(new ControlPlaneError(`timeout: ${url}`)));
    req.once("error", reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Certificates and kubeconfigs

interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

interface Pki {
  readonly caCert: string;
  readonly admin: KeyPair;
  readonly controllerManager: KeyPair;
  readonly paths: {
    readonly kubeletClientCert: string;
    readonly kubeletClientKey: string;
    readonly caCert: string;
    readonly caKey: string;
    readonly apiServerCert: string;
    readonly apiServerKey: string;
    readonly serviceAccountPublicKey: string;
    readonly serviceAccountPrivateKey: string;
  };
}

async function createPki(dir: string, address: string): Promise<Pki> {
  const pkiDir = path.join(dir, "pki");
  await mkdir(pkiDir, { recursive: true });
  const p = (name: string): string => path.join(pkiDir, name);

  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-days",
    "3650",
    "-subj",
    "/CN=imagepolicy-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  const apiServer = await signedPair(pkiDir, "apiserver", "/CN=kube-apiserver", [
    "extendedKeyUsage=serverAuth",
    `subjectAltName=IP:127.0.0.1,${address === "127.0.0.1" ? "" : `IP:${address},`}` +
      "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default," +
      "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1",
  ]);
  const kubeletClient = await signedPair(
    pkiDir,
    "apiserver-kubelet-client",
    "/O=system:masters/CN=kube-apiserver-kubelet-client",
    ["extendedKeyUsage=clientAuth"],
  );
  const admin = await signedPair(pkiDir, "admin", "/O=system:masters/CN=kubernetes-admin", [
    "extendedKeyUsage=clientAuth",
  ]);
  const controllerManager = await signedPair(
    pkiDir,
    "kube-controller-manager",
    "/CN=system:kube-controller-manager",
    ["extendedKeyUsage=clientAuth"],
  );

  const serviceAccount = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  await writeFile(p("sa.pub"), serviceAccount.publicKey);
  await writeFile(p("sa.key"), serviceAccount.privateKey, { mode: 0o600 });

  return {
    caCert: await readFile(p("ca.crt"), "utf8"),
    admin: { cert: await readFile(admin.cert, "utf8"), key: await readFile(admin.key, "utf8") },
    controllerManager: {
      cert: await readFile(controllerManager.cert, "utf8"),
      key: await readFile(controllerManager.key, "utf8"),
    },
    paths: {
      kubeletClientCert: kubeletClient.cert,
      kubeletClientKey: kubeletClient.key,
      caCert: p("ca.crt"),
      caKey: p("ca.key"),
      apiServerCert: apiServer.cert,
      apiServerKey: apiServer.key,
      serviceAccountPublicKey: p("sa.pub"),
      serviceAccountPrivateKey: p("sa.key"),
    },
  };
}

/** Creates `<name>.key` and `<name>.crt` signed by the CA in pkiDir; returns their paths. */
async function signedPair(
  pkiDir: string,
  name: string,
  subject: string,
  extensions: readonly string[],
): Promise<KeyPair> {
  const key = path.join(pkiDir, `${name}.key`);
  const csr = path.join(pkiDir, `${name}.csr`);
  const cert = path.join(pkiDir, `${name}.crt`);
  const ext = path.join(pkiDir, `${name}.ext`);
  await writeFile(ext, `${["keyUsage=critical,digitalSignature", ...extensions].join("\n")}\n`);
  await openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    subject,
  ]);
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    path.join(pkiDir, "ca.crt"),
    "-CAkey",
    path.join(pkiDir, "ca.key"),
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "365",
    "-extfile",
    ext,
  ]);
  return { cert, key };
}

async function openssl(args: readonly string[]): Promise<void> {
  const result = await runCommand("openssl", args).catch((error: unknown) => {
    throw new ControlPlaneError("cannot run openssl", { cause: error });
  });
  if (result.code !== 0) {
    throw new ControlPlaneError(
      `openssl ${args.join(" ")} failed (exit ${result.code}): ${result.stderr.trim()}`,
    );
  }
}

function b64(pem: string): string {
  return Buffer.from(pem, "utf8").toString("base64");
}

async function writeKubeconfig(
  file: string,
  server: string,
  caCert: string,
  user: Readonly<Record<string, string>>,
): Promise<void> {
  // JSON is YAML; kubectl reads either.
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "local", cluster: { server, "certificate-authority-data": b64(caCert) } }],
    users: [{ name: "user", user }],
    contexts: [{ name: "local", context: { cluster: "local", user: "user" } }],
    "current-context": "local",
  };
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

async function waitForDefaultServiceAccount(
  kubectl: (args: readonly string[]) => Promise<CommandResult>,
  namespace: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await kubectl(["get", "serviceaccount", "default", "-n", namespace, "-o", "name"]);
    if (r.code === 0) return;
    if (Date.now() > deadline) {
      throw new ControlPlaneError(
        `ServiceAccount ${namespace}/default was not created within ${String(timeoutMs)} ms: ${r.stderr}`,
      );
    }
    await delay(200);
  }
}

// Where the cluster is: --kubeconfig, else in-cluster (a Pod's service account), else
// $KUBECONFIG or ~/.kube/config. No cluster at all is a clear error pointing at the demo; so is
// a kubeconfig that no retry can cure (missing, unreadable, without a current cluster).
//
// The service account is read natively (in-cluster.ts). A kubeconfig is read by client-node in a
// child process (kubeconfig-loader.ts) that prints the request options and exits: importing
// client-node costs a process ~85 MB RSS for good, and a worker thread measured no better (its
// isolate's memory stayed mapped after it exited). The first load blocks (the commands check
// the kubeconfig before anything starts); later loads run beside the sidecar: after a 401, and
// every 5 minutes for credentials client-node would renew by itself (exec plugins, auth
// providers). A kubeconfig with a proxy-url is the exception: its agent cannot cross processes,
// so client-node is loaded in the sidecar's process, as before.

import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { RequestOptions } from "node:http";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KubeHaproxyError } from "../errors.ts";
import { agentFor, type ApiAccess, type ApiRequestOptions } from "./api-access.ts";
import { SERVICE_ACCOUNT_DIR, ServiceAccountAccess } from "./in-cluster.ts";

/** What the loader is asked: `path` for --kubeconfig, else client-node's default (`kubeconfig`: $KUBECONFIG). */
export interface LoaderRequest {
  /** The kubeconfig as messages name it. */
  readonly source: string;
  readonly path?: string;
  readonly kubeconfig?: string;
}

/** applyToHTTPSOptions' result as plain data; byte values base64. */
export interface WireCredentials {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly pfx?: string;
  readonly passphrase?: string;
  readonly rejectUnauthorized?: boolean;
  readonly servername?: string;
  readonly headers: Record<string, string>;
  readonly auth?: string;
}

export type LoaderAnswer =
  | { readonly ok: false; readonly message: string }
  | {
      readonly ok: true;
      readonly server: string;
      readonly proxy: boolean;
      readonly dynamic: boolean;
      readonly credentials: WireCredentials | { readonly error: string };
    };

export interface LoadOptions {
  /** The service account folder. @default /var/run/secrets/kubernetes.io/serviceaccount */
  readonly serviceAccountDir?: string;
}

const LOADER = fileURLToPath(new URL("./kubeconfig-loader.ts", import.meta.url));
const LOAD_TIMEOUT_MS = 60_000;
export const DYNAMIC_MAX_AGE_MS = 5 * 60_000;

// One access per kubeconfig in a process: the command's check, the watch and the Node read share
// it (one load, one refresh after a 401).
const loaded = new Map<string, ApiAccess>();

export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv, options: LoadOptions = {}): ApiAccess {
  const serviceAccountDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  let request: LoaderRequest;
  if (path) {
    if (!existsSync(path)) throw new KubeHaproxyError("E_BAD_OPTION", `--kubeconfig: no such file: ${path}`);
    request = { source: `--kubeconfig ${path}`, path };
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(join(serviceAccountDir, "token"))) {
    return memo(JSON.stringify([serviceAccountDir, env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT]), () => new ServiceAccountAccess(env, { dir: serviceAccountDir }));
  } else if (env.KUBECONFIG || existsSync(join(homedir(), ".kube", "config"))) {
    const missing = (env.KUBECONFIG ?? "").split(delimiter).find((file) => file !== "" && !existsSync(file));
    if (missing !== undefined) throw new KubeHaproxyError("E_BAD_OPTION", `KUBECONFIG: no such file: ${missing}`);
    request = env.KUBECONFIG ? { source: `KUBECONFIG=${env.KUBECONFIG}`, kubeconfig: env.KUBECONFIG } : { source: "~/.kube/config" };
  } else {
    throw new KubeHaproxyError(
      "E_BAD_OPTION",
      "no cluster found: pass --kubeconfig, run in a Pod, or set $KUBECONFIG (or try `npm run demo` for a simulated cluster)",
    );
  }
  return memo(JSON.stringify([request, homedir()]), () => {
    const first = settle(runLoaderSync(request));
    return first.proxy ? new ClientNodeAccess(request, first.server) : new KubeconfigAccess(request, first);
  });
}

function memo(key: string, make: () => ApiAccess): ApiAccess {
  let access = loaded.get(key);
  if (access === undefined) loaded.set(key, (access = make()));
  return access;
}

/** A kubeconfig's access: its request options as the loader gave them, loaded again when stale. */
class KubeconfigAccess implements ApiAccess {
  readonly server: string;
  readonly #request: LoaderRequest;
  readonly #dynamic: boolean;
  #current: Promise<ApiRequestOptions>;
  #loadedAt = performance.now();
  #stale = false;

  constructor(request: LoaderRequest, first: Loaded) {
    this.#request = request;
    this.server = first.server;
    this.#dynamic = first.dynamic;
    this.#current = this.#keep(Promise.resolve(first));
  }

  requestOptions(): Promise<ApiRequestOptions> {
    if (this.#stale || (this.#dynamic && performance.now() - this.#loadedAt >= DYNAMIC_MAX_AGE_MS)) {
      this.#stale = false;
      this.#loadedAt = performance.now();
      this.#current = this.#keep(runLoader(this.#request).then(settle));
    }
    return this.#current;
  }

  refused(): void {
    this.#stale = true;
  }

  /** The options of a load; a failed one (the loader, or applying the credentials) is loaded again next time. */
  #keep(load: Promise<Loaded>): Promise<ApiRequestOptions> {
    const options = load.then((answer) => {
      if ("error" in answer.credentials) throw new KubeHaproxyError("E_API_REQUEST", answer.credentials.error);
      return requestOptionsOf(answer.server, answer.credentials);
    });
    options.catch(() => {
      if (this.#current === options) this.#stale = true;
    });
    return options;
  }
}

/** A kubeconfig with a proxy-url: client-node in this process, applied to every request, as before. */
class ClientNodeAccess implements ApiAccess {
  readonly server: string;
  readonly #request: LoaderRequest;
  #kubeConfig: Promise<{ applyToHTTPSOptions(options: RequestOptions): Promise<void> }> | undefined;

  constructor(request: LoaderRequest, server: string) {
    this.#request = request;
    this.server = server;
  }

  async requestOptions(): Promise<ApiRequestOptions> {
    this.#kubeConfig ??= import("@kubernetes/client-node").then(({ KubeConfig }) => {
      const kubeConfig = new KubeConfig();
      if (this.#request.path !== undefined) kubeConfig.loadFromFile(this.#request.path);
      else kubeConfig.loadFromDefault();
      return kubeConfig;
    });
    const options: ApiRequestOptions = { headers: {} };
    await (await this.#kubeConfig).applyToHTTPSOptions(options);
    return options;
  }

  refused(): void {} // client-node renews what it can by itself
}

type Loaded = Extract<LoaderAnswer, { ok: true }>;

function settle(answer: LoaderAnswer): Loaded {
  if (!answer.ok) throw new KubeHaproxyError("E_BAD_OPTION", answer.message);
  return answer;
}

function requestOptionsOf(server: string, wire: WireCredentials): ApiRequestOptions {
  const bytes = (value: string | undefined): Buffer | undefined => (value === undefined ? undefined : Buffer.from(value, "base64"));
  const tls = {
    ...(wire.ca !== undefined ? { ca: bytes(wire.ca) } : {}),
    ...(wire.cert !== undefined ? { cert: bytes(wire.cert) } : {}),
    ...(wire.key !== undefined ? { key: bytes(wire.key) } : {}),
    ...(wire.pfx !== undefined ? { pfx: bytes(wire.pfx) } : {}),
    ...(wire.passphrase !== undefined ? { passphrase: wire.passphrase } : {}),
    ...(wire.rejectUnauthorized !== undefined ? { rejectUnauthorized: wire.rejectUnauthorized } : {}),
    ...(wire.servername !== undefined ? { servername: wire.servername } : {}),
  };
  return { agent: agentFor(server, tls), headers: { ...wire.headers }, ...(wire.auth !== undefined ? { auth: wire.auth } : {}) };
}

function loaderCommand(request: LoaderRequest): { readonly args: string[]; readonly env: NodeJS.ProcessEnv } {
  const env = { ...process.env };
  if (request.kubeconfig !== undefined) env.KUBECONFIG = request.kubeconfig;
  else delete env.KUBECONFIG;
  return { args: [LOADER, JSON.stringify(request)], env };
}

function runLoaderSync(request: LoaderRequest): LoaderAnswer {
  const { args, env } = loaderCommand(request);
  const run = spawnSync(process.execPath, args, { env, encoding: "utf8", timeout: LOAD_TIMEOUT_MS, maxBuffer: 16 * 2 ** 20 });
  return parseAnswer(request, run.error, run.stdout, run.stderr);
}

function runLoader(request: LoaderRequest): Promise<LoaderAnswer> {
  const { args, env } = loaderCommand(request);
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env, encoding: "utf8", timeout: LOAD_TIMEOUT_MS, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      resolve(parseAnswer(request, error ?? undefined, stdout, stderr));
    });
  });
}

/** The loader's one line; a loader that could not run or answer is a kubeconfig not loaded, with why. */
function parseAnswer(request: LoaderRequest, error: Error | undefined, stdout: string, stderr: string): LoaderAnswer {
  const line = stdout.trim();
  if (line !== "") {
    try {
      return JSON.parse(line) as LoaderAnswer;
    } catch {
      // reported below
    }
  }
  // The loader's own last words first: execFile's error message is the whole command line.
  const why = stderr.trim().split("\n").at(-1) || error?.message.split("\n")[0] || "no answer";
  return { ok: false, message: `${request.source}: not loaded (${why})` };
}

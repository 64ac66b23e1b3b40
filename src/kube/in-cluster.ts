// The production path: a Pod's service account, read natively (no client-node in the process).
// The server is $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the CA is read once (as
// client-go does), and the token is read again when it is a minute old or the API server
// answered 401: projected service account tokens are rotated by the kubelet (client-go's
// cached token file source re-reads every minute for the same reason).

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isIPv6 } from "node:net";
import { join } from "node:path";
import { KubeHaproxyError } from "../errors.ts";
import { agentFor, type ApiAccess, type ApiRequestOptions } from "./api-access.ts";

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
export const TOKEN_MAX_AGE_MS = 60_000;

export interface InClusterOptions {
  /** The service account folder (token, ca.crt). @default SERVICE_ACCOUNT_DIR */
  readonly dir?: string;
  /** @default performance.now */
  readonly now?: () => number;
}

const SOURCE = "the in-cluster service account";

export class ServiceAccountAccess implements ApiAccess {
  readonly server: string;
  readonly #agent: ReturnType<typeof agentFor>;
  readonly #tokenFile: string;
  readonly #now: () => number;
  // The token as last read (a pending read shared by concurrent requests); undefined: read it again.
  #token: Promise<string> | undefined;
  #readAt = 0;

  constructor(env: NodeJS.ProcessEnv, options: InClusterOptions = {}) {
    const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
    const host = env.KUBERNETES_SERVICE_HOST ?? "";
    const port = env.KUBERNETES_SERVICE_PORT ?? "";
    // client-node's rule, kept: these ports are plain HTTP (a local proxy), every other is HTTPS.
    const scheme = port === "80" || port === "8080" || port === "8001" ? "http" : "https";
    this.server = `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
    if (!URL.canParse(this.server) || port === "") {
      throw new KubeHaproxyError("E_BAD_OPTION", `${SOURCE}: KUBERNETES_SERVICE_HOST/PORT make no valid server URL (${JSON.stringify(this.server)})`);
    }
    let ca: Buffer | undefined;
    if (scheme === "https") {
      try {
        ca = readFileSync(join(dir, "ca.crt"));
      } catch (error) {
        throw new KubeHaproxyError("E_BAD_OPTION", `${SOURCE}: not usable (${(error as Error).message})`, { cause: error });
      }
    }
    this.#agent = agentFor(this.server, ca === undefined ? {} : { ca });
    this.#tokenFile = join(dir, "token");
    this.#now = options.now ?? (() => performance.now());
  }

  async requestOptions(): Promise<ApiRequestOptions> {
    if (this.#token === undefined || this.#now() - this.#readAt >= TOKEN_MAX_AGE_MS) {
      this.#readAt = this.#now();
      const read = readFile(this.#tokenFile, "utf8").then((text) => text.trim());
      // A failed read is not kept: the next request reads again.
      read.catch(() => {
        if (this.#token === read) this.#token = undefined;
      });
      this.#token = read;
    }
    const token = await this.#token;
    return { agent: this.#agent, headers: { Authorization: `Bearer ${token}` } };
  }

  refused(): void {
    this.#token = undefined;
  }
}

// Until the API server has given both initial lists, run and render wait for it. The watch
// logs every failed attempt; while waiting, the commands say instead, plainly and once, what
// they wait for, then again at a slow interval (run) or in their final error (render), and
// tell a failure no retry can cure from one that may pass.

import { loadKubeConfig } from "../kube/kubeconfig.ts";
import { interceptLogger, type Logger } from "../log.ts";

/**
 * The API server the kubeconfig points to. Loading it first turns what no retry can cure (no
 * such file, not a kubeconfig, no current cluster) into one line and exit 2 at once.
 */
export function apiServer(kubeconfig: string | undefined, env: NodeJS.ProcessEnv): string {
  return loadKubeConfig(kubeconfig, env).server;
}

export type ApiFailure = "permanent" | "transient";

/**
 * Pure: a failed list or watch, as the watch reports it, is permanent when the same kubeconfig
 * can never succeed: credentials refused (401), a certificate that does not verify, a file the
 * kubeconfig names that is missing, an API without the resources (404). Everything else —
 * refused or cut connections, timeouts, 5xx, 403 (RBAC may be applied later) — may pass.
 */
export function classifyApiFailure(reason: string): ApiFailure {
  if (/\bHTTP (401|404)\b/.test(reason)) return "permanent";
  if (/certificate|altnames|ERR_TLS_CERT|wrong version number/i.test(reason)) return "permanent";
  if (/\bENOENT\b|no such file/i.test(reason)) return "permanent";
  return "transient";
}

export interface ApiWait {
  /** The logger to hand to the watch: its failures are summarised while waiting. */
  readonly log: Logger;
  /** Resolves with the first failure that classifies as permanent. */
  readonly permanent: Promise<string>;
  /** The latest failure, if any. */
  lastFailure(): string | undefined;
  /** Both lists arrived: log normally again. */
  done(): void;
}

export interface ApiWaitOptions {
  /** The API server, as the messages name it. */
  readonly server: string;
  /** Repeat "still waiting" this often; undefined: never. */
  readonly reportEveryMs?: number;
}

// The watch reports "<resource> watch failed (<reason>); restarting in <n> ms"; the sidecar
// adds "restarted the <resource> watch (<why>)". Both are the same event while waiting.
const FAILED = /watch failed \((.*)\); restarting/s;
const ABOUT_WATCH = /\bwatch\b/;

export function apiWait(log: Logger, options: ApiWaitOptions): ApiWait {
  const { server, reportEveryMs } = options;
  const started = performance.now();
  const elapsed = (): string => `${Math.round((performance.now() - started) / 1000)} s`;
  let waiting = true;
  let last: string | undefined;
  let markPermanent!: (reason: string) => void;
  const permanent = new Promise<string>((resolve) => (markPermanent = resolve));
  const timer = reportEveryMs === undefined ? undefined : setInterval(() => {
    if (last !== undefined) log.warn(`still waiting for the API server at ${server} after ${elapsed()}: ${last}`);
  }, reportEveryMs);
  timer?.unref();

  const wrapped = interceptLogger(log, (type, message) => {
    if (!waiting || type !== "warn" || !ABOUT_WATCH.test(message)) return false;
    const reason = FAILED.exec(message)?.[1];
    if (reason === undefined) {
      log.debug(message);
      return true;
    }
    if (last === undefined) {
      const next = reportEveryMs === undefined ? "" : `; reporting again every ${Math.round(reportEveryMs / 1000)} s`;
      log.warn(`waiting for the API server at ${server} to list Services and EndpointSlices: ${reason}; retrying${next} (nothing is programmed before both lists arrive)`);
    } else {
      log.debug(message);
    }
    last = reason;
    if (classifyApiFailure(reason) === "permanent") markPermanent(reason);
    return true;
  });

  return {
    log: wrapped,
    permanent,
    lastFailure: () => last,
    done() {
      if (!waiting) return;
      waiting = false;
      clearInterval(timer);
      if (last !== undefined) log.info(`the API server at ${server} answered after ${elapsed()}`);
    },
  };
}

// Watching Services and EndpointSlices: list, then watch from the list's resourceVersion, over
// node:http(s) with client-node's authentication (list.ts), keeping each object pruned to the
// fields translation reads (objects.ts). client-node's informers kept every whole object and
// decoded the watch through undici's fetch, a web stream, Readable.fromWeb and readline; here
// one byte-level line splitter and JSON.parse per line (measured in bench/PROFILE.md and
// bench/RESULTS.md, issue 14).
//
// What happens when:
// - the watch ends cleanly (a server-side timeout): watch again from the last resourceVersion,
//   at once, then after 1, 2, 4 … 30 s while ends follow each other with no event between;
// - the watch is refused with 410 Gone, or says so in an ERROR event: list again (the relist
//   adds and updates what it finds, then deletes what is gone: make before break), watch again;
// - no byte for 30 s (an idle connection a proxy may have cut silently): watch again at once;
// - anything else (a failed list, a 500, a refused or cut connection, an unreadable line):
//   restart, once per failure, with capped backoff, re-watching from the last resourceVersion;
// - connected but nothing delivered (no event, bookmark or reconnect) for --watch-stall-timeout:
//   restart.
// Each restart takes one token of --kube-api-qps; the list it may make runs on that token.
// Events carry objects whose resourceVersion changed; an unchanged one (a relist) is no event.

import { EventEmitter } from "node:events";
import type { ClientRequest } from "node:http";
import { KubeHaproxyError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ApiAccess } from "./api-access.ts";
import { LineSplitter } from "./lines.ts";
import { apiGet, apiUrl, httpError, listEach } from "./list.ts";
import { pruneEndpointSlice, pruneService, type V1EndpointSlice, type V1Service } from "./objects.ts";
import { TokenBucket } from "./token-bucket.ts";

export type WatchEventType = "add" | "update" | "delete";
export type Resource = "services" | "endpointslices";

export interface ClusterWatchOptions {
  /** The loaded kubeconfig or service account (kubeconfig.ts). */
  readonly kubeConfig: ApiAccess;
  readonly log: Logger;
  /** Watch one namespace only. */
  readonly namespace?: string;
  /** Label selector for Services (kube-proxy's). */
  readonly serviceSelector?: string;
  /** Requests per second / burst for lists and restarts. */
  readonly qps?: number;
  readonly burst?: number;
  /** @default 5 min */
  readonly stallTimeoutMs?: number;
  /** @default 500 … 30000 */
  readonly restartMinMs?: number;
  readonly restartMaxMs?: number;
  /** No byte on an open watch for this long: open it again from its resourceVersion (not a restart). @default 30 s, client-node's */
  readonly idleReopenMs?: number;
  /** Where lists and restarts wait for --kube-api-qps. @default a TokenBucket from qps and burst */
  readonly limiter?: Limiter;
}

/** Resolves when the caller may make one request to the API server. */
export interface Limiter {
  take(): Promise<void>;
}

type Events = {
  service: [type: WatchEventType, service: V1Service];
  endpointslice: [type: WatchEventType, slice: V1EndpointSlice];
  /** A watch was restarted by us (after an error, or a stall). */
  restart: [resource: Resource, reason: string];
  /** Handling an event threw (a bug downstream): reported, and the watch goes on. */
  handlerError: [resource: Resource, key: string, error: unknown];
};

/** Both watches, restarted when they fail; `start()` resolves once both lists have arrived. */
export class ClusterWatch extends EventEmitter<Events> {
  readonly #services: ResourceWatch<V1Service>;
  readonly #slices: ResourceWatch<V1EndpointSlice>;

  constructor(options: ClusterWatchOptions) {
    super();
    const limiter = options.limiter ?? new TokenBucket(options.qps ?? 5, options.burst ?? 10);
    const ns = options.namespace;
    const common = { ...options, limiter };
    this.#services = new ResourceWatch<V1Service>({
      ...common,
      resource: "services",
      path: ns ? `/api/v1/namespaces/${encodeURIComponent(ns)}/services` : "/api/v1/services",
      labelSelector: options.serviceSelector || undefined,
      prune: pruneService,
      emit: (type, obj) => this.emit("service", type, obj),
      restarted: (reason) => this.emit("restart", "services", reason),
      handlerFailed: (key, error) => this.emit("handlerError", "services", key, error),
    });
    this.#slices = new ResourceWatch<V1EndpointSlice>({
      ...common,
      resource: "endpointslices",
      path: ns ? `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/endpointslices` : "/apis/discovery.k8s.io/v1/endpointslices",
      prune: pruneEndpointSlice,
      emit: (type, obj) => this.emit("endpointslice", type, obj),
      restarted: (reason) => this.emit("restart", "endpointslices", reason),
      handlerFailed: (key, error) => this.emit("handlerError", "endpointslices", key, error),
    });
  }

  /** Starts both watches; resolves when both initial lists have arrived. */
  async start(): Promise<void> {
    await Promise.all([this.#services.start(), this.#slices.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#services.stop(), this.#slices.stop()]);
  }

  services(): V1Service[] {
    return this.#services.list();
  }

  endpointSlices(): V1EndpointSlice[] {
    return this.#slices.list();
  }
}

interface Kept {
  readonly metadata?: { readonly namespace?: string; readonly name?: string; readonly resourceVersion?: string };
}

interface ResourceWatchOptions<T extends Kept> {
  readonly resource: Resource;
  readonly kubeConfig: ApiAccess;
  readonly log: Logger;
  readonly path: string;
  readonly labelSelector?: string;
  readonly limiter: Limiter;
  readonly prune: (raw: unknown) => T;
  readonly emit: (type: WatchEventType, obj: T) => void;
  readonly restarted: (reason: string) => void;
  readonly handlerFailed: (key: string, error: unknown) => void;
  readonly stallTimeoutMs?: number;
  readonly restartMinMs?: number;
  readonly restartMaxMs?: number;
  readonly idleReopenMs?: number;
}

const REWATCH_MAX_MS = 30_000;

interface WatchLine {
  readonly type?: string;
  readonly object?: { readonly code?: number; readonly message?: string; readonly metadata?: { readonly resourceVersion?: string } };
}

class ResourceWatch<T extends Kept> {
  readonly #options: ResourceWatchOptions<T>;
  // The objects as last seen, pruned, by namespace/name: the one copy (ClusterState shares them).
  readonly #objects = new Map<string, T>();
  // Where the watch resumes; "" means list first.
  #resourceVersion = "";
  // Resolves once a list has succeeded: "nothing is programmed before both lists arrived".
  readonly #listed: Promise<void>;
  #markListed!: () => void;
  #stopped = true;
  // A restart is scheduled or in progress: a failure seen meanwhile is the same failure.
  #restarting = false;
  // The token a restart took, for the list it may make.
  #tokenHeld = false;
  #failures = 0;
  // Clean ends of the watch in a row with no event between them (the re-watch backoff).
  #quietEnds = 0;
  #lastActivity = 0;
  #lastByte = 0;
  // The open watch request; a callback of any other request is stale and ignored.
  #request: ClientRequest | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(options: ResourceWatchOptions<T>) {
    this.#options = options;
    this.#listed = new Promise((resolve) => (this.#markListed = resolve));
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#touch();
    this.#armStallCheck(this.#options.stallTimeoutMs ?? 5 * 60_000);
    await this.#connect();
    await this.#listed;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#stallTimer);
    this.#closeWatch();
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  #touch(): void {
    this.#lastActivity = performance.now();
  }

  /** Lists if there is no resourceVersion to resume from, then opens the watch; a failure goes to #onError. */
  async #connect(): Promise<void> {
    this.#touch();
    try {
      if (this.#resourceVersion === "") await this.#list();
      if (!this.#stopped) await this.#openWatch();
    } catch (error) {
      this.#onError(error);
    }
  }

  async #list(): Promise<void> {
    if (this.#tokenHeld) this.#tokenHeld = false;
    else await this.#options.limiter.take();
    if (this.#stopped) return;
    const seen = new Set<string>();
    const resourceVersion = await listEach(this.#options.kubeConfig, this.#options.path, this.#options.labelSelector, (raw) => {
      seen.add(this.#upsert(this.#options.prune(raw)));
    });
    for (const [key, obj] of this.#objects) {
      if (seen.has(key)) continue;
      this.#objects.delete(key);
      this.#deliver("delete", obj, key);
    }
    this.#resourceVersion = resourceVersion ?? "";
    this.#markListed();
    this.#touch();
  }

  async #openWatch(): Promise<void> {
    const url = apiUrl(this.#options.kubeConfig, this.#options.path, {
      watch: "true",
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: "true",
      labelSelector: this.#options.labelSelector,
    });
    this.#closeWatch();
    this.#lastByte = performance.now();
    this.#armIdleCheck();
    let sent: ClientRequest | undefined;
    const answer = await apiGet(this.#options.kubeConfig, url, undefined, (req) => (sent = this.#request = req)).catch((error: unknown) => {
      // Our own abort (a stop, an idle reopen) of a request still waiting for its answer is no failure.
      if (sent !== undefined && this.#request !== sent) return undefined;
      throw error;
    });
    if (answer === undefined) return;
    const { req, res } = answer;
    if (this.#request !== req) return void req.destroy();
    if (res.statusCode === 410) {
      this.#closeWatch();
      this.#resourceVersion = "";
      return this.#connect();
    }
    if (res.statusCode !== 200) throw await httpError(url, res);
    this.#lastByte = performance.now();
    this.#touch();
    const lines = new LineSplitter((line) => this.#onLine(line));
    res.on("data", (chunk: Buffer) => {
      if (this.#request !== req) return;
      this.#lastByte = performance.now();
      try {
        lines.push(chunk);
      } catch (error) {
        this.#failed(req, error);
      }
    });
    res.on("error", () => {}); // 'close' tells whether the stream was complete
    res.on("close", () => {
      if (!res.complete) return this.#failed(req, new KubeHaproxyError("E_API_REQUEST", `GET ${url.pathname}: the watch connection was cut`));
      try {
        lines.end();
      } catch (error) {
        return this.#failed(req, error);
      }
      this.#ended(req);
    });
  }

  #onLine(line: string): void {
    let event: WatchLine;
    try {
      event = JSON.parse(line) as WatchLine;
    } catch {
      throw new KubeHaproxyError("E_API_REQUEST", `an unreadable watch event: ${line.slice(0, 100)}`);
    }
    this.#touch();
    this.#failures = 0;
    this.#quietEnds = 0;
    const object = event.object;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
        this.#upsert(this.#options.prune(object));
        break;
      case "DELETED": {
        const gone = this.#options.prune(object);
        const key = keyOf(gone);
        if (this.#objects.delete(key)) this.#deliver("delete", gone, key);
        break;
      }
      case "BOOKMARK":
        break;
      case "ERROR":
        // 410: the version is too old; the server ends the stream and we list again.
        if (object?.code === 410) this.#resourceVersion = "";
        else this.#options.log.warn(`${this.#options.resource} watch: the API server reports ${object?.code ?? "an error"}: ${object?.message ?? ""}`);
        return;
      default:
        throw new KubeHaproxyError("E_API_REQUEST", `a watch event of unknown type ${JSON.stringify(event.type)}`);
    }
    this.#resourceVersion = object?.metadata?.resourceVersion ?? this.#resourceVersion;
  }

  /** Records an added or updated object; an unchanged resourceVersion is no event. Returns its key. */
  #upsert(obj: T): string {
    const key = keyOf(obj);
    const known = this.#objects.get(key);
    const version = obj.metadata?.resourceVersion;
    if (known && version !== undefined && known.metadata?.resourceVersion === version) return key;
    this.#objects.set(key, obj);
    this.#deliver(known ? "update" : "add", obj, key);
    return key;
  }

  #deliver(type: WatchEventType, obj: T, key: string): void {
    this.#touch();
    try {
      this.#options.emit(type, obj);
    } catch (error) {
      this.#options.handlerFailed(key, error);
    }
  }

  /** The server ended the watch: watch again (or list first, after a 410). */
  #ended(req: ClientRequest): void {
    if (this.#request !== req || this.#stopped) return;
    this.#closeWatch();
    const delay = this.#quietEnds === 0 ? 0 : Math.min(REWATCH_MAX_MS, 1000 * 2 ** (this.#quietEnds - 1));
    this.#quietEnds++;
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  #failed(req: ClientRequest, error: unknown): void {
    if (this.#request !== req) return;
    this.#closeWatch();
    this.#onError(error);
  }

  #closeWatch(): void {
    clearTimeout(this.#idleTimer);
    const req = this.#request;
    this.#request = undefined;
    req?.destroy();
  }

  /** Opens the watch again when no byte arrived for idleReopenMs (also while waiting for its headers). */
  #armIdleCheck(): void {
    const idleMs = this.#options.idleReopenMs ?? 30_000;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#stopped || this.#restarting) return;
      if (performance.now() - this.#lastByte < idleMs) return this.#armIdleCheck();
      this.#closeWatch();
      void this.#connect();
    }, Math.max(0, idleMs - (performance.now() - this.#lastByte)));
    this.#idleTimer.unref();
  }

  #onError(error: unknown): void {
    if (this.#stopped || this.#restarting) return;
    this.#restarting = true;
    this.#closeWatch();
    const delay = Math.min(this.#options.restartMaxMs ?? 30_000, (this.#options.restartMinMs ?? 500) * 2 ** this.#failures++);
    this.#options.log.warn(`${this.#options.resource} watch failed (${describe(error)}); restarting in ${delay} ms`);
    this.#retryTimer = setTimeout(() => void this.#restart("error"), delay);
  }

  /** Checks for silence exactly when the stall timeout would expire. */
  #armStallCheck(stallMs: number): void {
    if (stallMs <= 0 || this.#stopped) return;
    const quietFor = performance.now() - this.#lastActivity;
    this.#stallTimer = setTimeout(() => {
      if (this.#stopped) return;
      if (!this.#restarting && performance.now() - this.#lastActivity >= stallMs) {
        this.#options.log.warn(`${this.#options.resource} watch saw nothing for ${Math.round(stallMs / 1000)} s; restarting it`);
        this.#restarting = true;
        void this.#restart("stall");
      }
      this.#armStallCheck(stallMs);
    }, Math.max(0, stallMs - quietFor));
    this.#stallTimer.unref();
  }

  async #restart(reason: string): Promise<void> {
    this.#retryTimer = undefined;
    try {
      if (this.#stopped) return;
      this.#options.restarted(reason);
      this.#closeWatch();
      await this.#options.limiter.take();
      if (this.#stopped) return;
      this.#tokenHeld = true;
      this.#touch();
      // From here, a failure is a new one: the restart that answers it is a new restart.
      this.#restarting = false;
      await this.#connect();
    } finally {
      this.#tokenHeld = false; // a restart that made no list spent its token on the watch
    }
  }
}

function keyOf(obj: Kept): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

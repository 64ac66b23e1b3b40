// Watching Services and EndpointSlices with @kubernetes/client-node informers (list + watch).
//
// What client-node 2.x does on its own: re-watches from the last resourceVersion when a watch
// ends cleanly, re-lists on 410 Gone, reconnects a watch that sent no bytes for 30 s. What it
// does not do: any other error (a failed list, a 500, a refused or cut connection) stops the
// informer for good after one "error" event — so we restart it, once per failure, with capped
// backoff. And a watch that stays connected but delivers nothing (not an event, not a bookmark,
// not a reconnect) for --watch-stall-timeout is restarted. Each restart takes one token of
// --kube-api-qps; the list it may make runs on that token.

import { EventEmitter } from "node:events";
import { ListWatch, Watch, type KubeConfig, type KubernetesObject, type V1EndpointSlice, type V1Service } from "@kubernetes/client-node";
import type { Logger } from "../log.ts";
import { listAll, type ListResult } from "./list.ts";
import { TokenBucket } from "./token-bucket.ts";

export type WatchEventType = "add" | "update" | "delete";
export type Resource = "services" | "endpointslices";

export interface ClusterWatchOptions {
  readonly kubeConfig: KubeConfig;
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
  /** Handling an event threw (a bug downstream): client-node would drop it silently. */
  handlerError: [resource: Resource, key: string, error: unknown];
};

/** Both informers, restarted when they fail; `start()` resolves once both lists have arrived. */
export class ClusterWatch extends EventEmitter<Events> {
  readonly #services: ResourceWatch<V1Service>;
  readonly #slices: ResourceWatch<V1EndpointSlice>;

  constructor(options: ClusterWatchOptions) {
    super();
    const limiter = options.limiter ?? new TokenBucket(options.qps ?? 5, options.burst ?? 10);
    const { kubeConfig } = options;
    const ns = options.namespace;
    const labelSelector = options.serviceSelector || undefined;
    const common = { ...options, limiter };
    const servicesPath = ns ? `/api/v1/namespaces/${encodeURIComponent(ns)}/services` : "/api/v1/services";
    const slicesPath = ns ? `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/endpointslices` : "/apis/discovery.k8s.io/v1/endpointslices";
    this.#services = new ResourceWatch<V1Service>({
      ...common,
      resource: "services",
      path: servicesPath,
      labelSelector,
      list: () => listAll<V1Service>(kubeConfig, servicesPath, labelSelector),
      emit: (type, obj) => this.emit("service", type, obj),
      restarted: (reason) => this.emit("restart", "services", reason),
      handlerFailed: (key, error) => this.emit("handlerError", "services", key, error),
    });
    this.#slices = new ResourceWatch<V1EndpointSlice>({
      ...common,
      resource: "endpointslices",
      path: slicesPath,
      list: () => listAll<V1EndpointSlice>(kubeConfig, slicesPath),
      emit: (type, obj) => this.emit("endpointslice", type, obj),
      restarted: (reason) => this.emit("restart", "endpointslices", reason),
      handlerFailed: (key, error) => this.emit("handlerError", "endpointslices", key, error),
    });
  }

  /** Starts both informers; resolves when both initial lists have arrived. */
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

interface ResourceWatchOptions<T extends KubernetesObject> {
  readonly resource: Resource;
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  readonly path: string;
  readonly labelSelector?: string;
  readonly limiter: Limiter;
  readonly list: () => Promise<ListResult<T>>;
  readonly emit: (type: WatchEventType, obj: T) => void;
  readonly restarted: (reason: string) => void;
  readonly handlerFailed: (key: string, error: unknown) => void;
  readonly stallTimeoutMs?: number;
  readonly restartMinMs?: number;
  readonly restartMaxMs?: number;
}

/** client-node's Watch, asking for bookmarks and telling us about every line it receives. */
class ObservedWatch extends Watch {
  readonly #onLine: () => void;

  constructor(kubeConfig: KubeConfig, onLine: () => void) {
    super(kubeConfig);
    this.#onLine = onLine;
  }

  override watch(...[path, query, callback, done]: Parameters<Watch["watch"]>): ReturnType<Watch["watch"]> {
    const observed: typeof callback = (phase, object, line) => {
      this.#onLine();
      callback(phase, object, line);
    };
    return super.watch(path, { ...query, allowWatchBookmarks: true }, observed, done);
  }
}

class ResourceWatch<T extends KubernetesObject> {
  readonly #options: ResourceWatchOptions<T>;
  readonly #informer: ListWatch<T>;
  // Resolves once a list has succeeded: "nothing is programmed before both lists arrived".
  readonly #listed: Promise<void>;
  #markListed!: () => void;
  #stopped = true;
  // A restart is scheduled or in progress: a failure seen meanwhile is the same failure.
  #restarting = false;
  // The token a restart took, for the list it may make.
  #tokenHeld = false;
  #failures = 0;
  #lastActivity = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #stallTimer: NodeJS.Timeout | undefined;

  constructor(options: ResourceWatchOptions<T>) {
    this.#options = options;
    this.#listed = new Promise((resolve) => (this.#markListed = resolve));
    const list = async (): Promise<ListResult<T>> => {
      if (this.#tokenHeld) this.#tokenHeld = false;
      else await options.limiter.take();
      const result = await options.list();
      this.#markListed();
      this.#touch();
      return result;
    };
    const watch = new ObservedWatch(options.kubeConfig, () => {
      this.#touch();
      this.#failures = 0;
    });
    // client-node's ListPromise type wants a KubernetesListObject; ours has the same shape.
    this.#informer = new ListWatch<T>(options.path, watch, list as never, false, options.labelSelector);
    for (const type of ["add", "update", "delete"] as const) {
      this.#informer.on(type, (obj) => {
        this.#touch();
        // client-node's watch catches and ignores what a handler throws: say it instead.
        try {
          options.emit(type, obj);
        } catch (error) {
          options.handlerFailed(`${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`, error);
        }
      });
    }
    this.#informer.on("connect", () => this.#touch());
    this.#informer.on("error", (error) => this.#onError(error));
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#touch();
    this.#armStallCheck(this.#options.stallTimeoutMs ?? 5 * 60_000);
    await this.#informer.start();
    await this.#listed;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#stallTimer);
    await this.#informer.stop();
  }

  list(): T[] {
    return [...this.#informer.list()];
  }

  #touch(): void {
    this.#lastActivity = performance.now();
  }

  #onError(error: unknown): void {
    // Our own stop of the informer is reported as an AbortError, late: not a failure.
    if (this.#stopped || this.#restarting || (error as Error | undefined)?.name === "AbortError") return;
    this.#restarting = true;
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
      await this.#informer.stop();
      if (this.#stopped) return;
      await this.#options.limiter.take();
      this.#tokenHeld = true;
      this.#touch();
      // From here, a failure is a new one: the restart that answers it is a new restart.
      this.#restarting = false;
      // start() resolves even when the list or watch fails; failures arrive as "error" again.
      await this.#informer.start().catch((error: unknown) => this.#onError(error));
    } finally {
      this.#tokenHeld = false; // a restart that made no list spent its token on the watch
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "code" in error) return `HTTP ${String((error as { code: unknown }).code)}`;
  return String(error);
}

// Watching Services and EndpointSlices with @kubernetes/client-node informers (list + watch).
//
// What client-node 2.x does on its own: re-watches from the last resourceVersion when a watch
// ends cleanly, re-lists on 410 Gone, aborts a watch that sent no bytes for 30 s. What it does
// not do: any other error (a failed list, a 500, a refused or cut connection) stops the informer
// for good after one "error" event — so we restart it with capped backoff. And a watch that
// stays connected but delivers nothing is restarted after --watch-stall-timeout.

import { EventEmitter } from "node:events";
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache, type V1EndpointSlice, type V1Service } from "@kubernetes/client-node";
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
}

type Events = {
  service: [type: WatchEventType, service: V1Service];
  endpointslice: [type: WatchEventType, slice: V1EndpointSlice];
  /** A watch was restarted by us (after an error, or a stall). */
  restart: [resource: Resource, reason: string];
};

/** Both informers, restarted when they fail; `start()` resolves once both lists have arrived. */
export class ClusterWatch extends EventEmitter<Events> {
  readonly #services: ResourceWatch<V1Service>;
  readonly #slices: ResourceWatch<V1EndpointSlice>;

  constructor(options: ClusterWatchOptions) {
    super();
    const limiter = new TokenBucket(options.qps ?? 5, options.burst ?? 10);
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
    });
    this.#slices = new ResourceWatch<V1EndpointSlice>({
      ...common,
      resource: "endpointslices",
      path: slicesPath,
      list: () => listAll<V1EndpointSlice>(kubeConfig, slicesPath),
      emit: (type, obj) => this.emit("endpointslice", type, obj),
      restarted: (reason) => this.emit("restart", "endpointslices", reason),
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
  readonly limiter: TokenBucket;
  readonly list: () => Promise<ListResult<T>>;
  readonly emit: (type: WatchEventType, obj: T) => void;
  readonly restarted: (reason: string) => void;
  readonly stallTimeoutMs?: number;
  readonly restartMinMs?: number;
  readonly restartMaxMs?: number;
}

class ResourceWatch<T extends KubernetesObject> {
  readonly #options: ResourceWatchOptions<T>;
  readonly #informer: Informer<T> & ObjectCache<T>;
  // Resolves once a list has succeeded: "nothing is programmed before both lists arrived".
  readonly #listed: Promise<void>;
  #markListed!: () => void;
  #stopped = true;
  // True while we stop the informer on purpose: its AbortError is not a failure.
  #restarting = false;
  #failures = 0;
  #lastActivity = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(options: ResourceWatchOptions<T>) {
    this.#options = options;
    this.#listed = new Promise((resolve) => (this.#markListed = resolve));
    const list = async (): Promise<ListResult<T>> => {
      await options.limiter.take();
      const result = await options.list();
      this.#markListed();
      this.#touch();
      return result;
    };
    // client-node's ListPromise type wants a KubernetesListObject; ours has the same shape.
    this.#informer = makeInformer<T>(options.kubeConfig, options.path, list as never, options.labelSelector);
    for (const type of ["add", "update", "delete"] as const) {
      this.#informer.on(type, (obj) => {
        this.#touch();
        this.#failures = 0;
        options.emit(type, obj);
      });
    }
    this.#informer.on("connect", () => this.#touch());
    this.#informer.on("error", (error) => this.#onError(error));
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#touch();
    const stallMs = this.#options.stallTimeoutMs ?? 5 * 60_000;
    if (stallMs > 0) {
      this.#watchdog = setInterval(() => this.#checkStall(stallMs), Math.min(stallMs / 2, 30_000));
      this.#watchdog.unref();
    }
    await this.#informer.start();
    await this.#listed;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#watchdog);
    await this.#informer.stop();
  }

  list(): T[] {
    return [...this.#informer.list()];
  }

  #touch(): void {
    this.#lastActivity = performance.now();
  }

  #onError(error: unknown): void {
    if (this.#stopped || this.#restarting) return;
    const delay = Math.min(this.#options.restartMaxMs ?? 30_000, (this.#options.restartMinMs ?? 500) * 2 ** this.#failures++);
    this.#options.log.warn(`${this.#options.resource} watch failed (${describe(error)}); restarting in ${delay} ms`);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#restart("error"), delay);
  }

  #checkStall(stallMs: number): void {
    if (this.#stopped || this.#retryTimer !== undefined) return;
    if (performance.now() - this.#lastActivity < stallMs) return;
    this.#options.log.warn(`${this.#options.resource} watch saw nothing for ${Math.round(stallMs / 1000)} s; restarting it`);
    void this.#restart("stall");
  }

  async #restart(reason: string): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#stopped) return;
    this.#options.restarted(reason);
    this.#touch();
    this.#restarting = true;
    try {
      await this.#informer.stop();
    } finally {
      this.#restarting = false;
    }
    if (this.#stopped) return;
    await this.#options.limiter.take();
    // start() resolves even when the list or watch fails; failures arrive as "error" again.
    await this.#informer.start().catch((error: unknown) => this.#onError(error));
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "code" in error) return `HTTP ${String((error as { code: unknown }).code)}`;
  return String(error);
}

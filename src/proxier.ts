// The proxier: turns cluster changes into desired backends for the data plane, kube-proxy style.
//
//   watch events ─► ClusterState ─► translate one Service ─┬─ endpoints only ─► sink.setBackend
//                                                          └─ structure changed ─► port conflicts
//                                                             resolved over all Services ─► sink
//
// Nothing reaches the sink before both initial lists arrived (start()). After that, every
// event flows straight through: no periodic recompute of the whole cluster on the hot path.
// Whether HAProxy's configuration must change is the data plane's question, not ours.

import { EventEmitter } from "node:events";
import type { V1EndpointSlice, V1Service } from "./kube/objects.ts";
import type { Logger } from "./log.ts";
import { structureOf, type Backend } from "./model.ts";
import { ClusterState } from "./kube/cluster-state.ts";
import { resolveDestinationConflicts, type HealthCheckNodePort } from "./kube/translate-external.ts";
import { resolvePortConflicts, type ServiceTranslation, type Skip, type TranslateOptions } from "./kube/translate.ts";
import type { WatchEventType } from "./kube/watch.ts";

/** What the proxier drives: the data plane's two entry points. */
export interface BackendSink {
  setBackend(backend: Backend): void;
  deleteBackend(name: string): void;
}

type Events = {
  /** A Service or port that is not served, with why (each distinct skip once while it lasts). */
  skipped: [skip: Skip];
  /** Counts after every change. */
  counts: [counts: { services: number; ready: number; drain: number }];
  /** Mesh mode: a Service's healthCheckNodePort answer after each of its changes (undefined: none, or gone). */
  healthCheckNodePort: [service: string, check: HealthCheckNodePort | undefined];
};

export class Proxier extends EventEmitter<Events> {
  readonly #state = new ClusterState();
  readonly #sink: BackendSink;
  readonly #options: TranslateOptions;
  readonly #log: Logger;
  readonly #translations = new Map<string, ServiceTranslation>();
  // Backends given to the sink, after port conflicts were resolved: the desired structure.
  #active = new Map<string, Backend>();
  // Skips already reported, per Service: each distinct skip is logged and counted once while it lasts.
  readonly #reported = new Map<string, Set<string>>();
  // Port-conflict skips from the last resolve, per Service: part of what that Service reports.
  #conflicts = new Map<string, Skip[]>();
  #started = false;
  // Counts for metrics, kept incrementally: Services with an active backend, endpoints by state.
  #services = 0;
  #ready = 0;
  #drain = 0;

  constructor(sink: BackendSink, options: TranslateOptions, log: Logger) {
    super();
    this.#sink = sink;
    this.#options = options;
    this.#log = log;
  }

  onService = (type: WatchEventType, service: V1Service): void => {
    const key = this.#state.applyService(type, service);
    if (this.#started) this.#update(key);
  };

  onEndpointSlice = (type: WatchEventType, slice: V1EndpointSlice): void => {
    const key = this.#state.applySlice(type, slice);
    if (key !== undefined && this.#started) this.#update(key);
  };

  /** Both initial lists are in: compute everything once, then follow events. */
  start(): void {
    for (const key of this.#state.serviceKeys()) this.#translate(key);
    this.#resolve();
    this.#started = true;
  }

  /** The desired backends, sorted by name (for render and reloads). */
  backends(): Backend[] {
    return [...this.#active.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  #update(key: string): void {
    const before = this.#translations.get(key);
    const after = this.#translate(key);
    if (!sameStructure(before, after)) {
      this.#resolve();
      return;
    }
    // Endpoints only: the hot path. Conflict losers stay out, and so do destinations lost to an older Service.
    for (const translated of after?.backends ?? []) {
      const old = this.#active.get(translated.name);
      if (!old) continue;
      const { nodePort: _, ...rest } = translated;
      const backend: Backend = { ...rest, binds: old.binds, ...(old.nodePort === undefined ? {} : { nodePort: old.nodePort }) };
      this.#count(old, backend);
      this.#active.set(backend.name, backend);
      this.#sink.setBackend(backend);
    }
    this.#emitCounts();
  }

  #translate(key: string): ServiceTranslation | undefined {
    const translation = this.#state.translate(key, this.#options);
    if (translation) this.#translations.set(key, translation);
    else this.#translations.delete(key);
    this.#report(key);
    this.emit("healthCheckNodePort", key, translation?.healthCheckNodePort);
    return translation;
  }

  /** Recomputes which backends are active across all Services and tells the sink what changed. */
  #resolve(): void {
    // Local and mesh modes: each destination goes to one Service port (older wins), then onlyfetch's whole-port rule finds nothing left.
    const all = [...this.#translations.values()];
    const destinations = this.#options.local ? resolveDestinationConflicts(all) : { translations: all, skipped: [] };
    const resolved = resolvePortConflicts(destinations.translations);
    const backends = resolved.backends;
    const skipped = [...destinations.skipped, ...resolved.skipped];
    const before = this.#conflicts;
    this.#conflicts = new Map();
    for (const skip of skipped) this.#conflicts.set(skip.service, [...(this.#conflicts.get(skip.service) ?? []), skip]);
    for (const service of new Set([...before.keys(), ...this.#conflicts.keys()])) this.#report(service);

    const next = new Map(backends.map((backend) => [backend.name, backend]));
    for (const [name, old] of this.#active) {
      if (next.has(name)) continue;
      this.#count(old, undefined);
      this.#sink.deleteBackend(name);
    }
    for (const backend of backends) {
      this.#count(this.#active.get(backend.name), backend);
      this.#sink.setBackend(backend);
    }
    this.#active = next;
    this.#services = new Set(backends.map((backend) => backend.servicePort.slice(0, backend.servicePort.lastIndexOf(":")))).size;
    this.#emitCounts();
  }

  /** Keeps the endpoint counts current without walking every backend (the hot path). */
  #count(old: Backend | undefined, next: Backend | undefined): void {
    for (const endpoint of old?.endpoints ?? []) endpoint.state === "ready" ? this.#ready-- : this.#drain--;
    for (const endpoint of next?.endpoints ?? []) endpoint.state === "ready" ? this.#ready++ : this.#drain++;
  }

  #emitCounts(): void {
    this.emit("counts", { services: this.#services, ready: this.#ready, drain: this.#drain });
  }

  /** Reports a Service's skips (its translation's and its port conflicts) that were not reported before. */
  #report(service: string): void {
    const skips = [...(this.#translations.get(service)?.skipped ?? []), ...(this.#conflicts.get(service) ?? [])];
    if (skips.length === 0 && !this.#reported.has(service)) return; // nothing to report, nothing to forget: most changes
    const seen = this.#reported.get(service) ?? new Set<string>();
    const now = new Set<string>();
    for (const skip of skips) {
      const id = `${skip.reason}|${skip.port ?? ""}|${skip.message}`;
      now.add(id);
      if (seen.has(id)) continue;
      this.#log.warn(`skipping ${skip.service}${skip.port ? ` port ${skip.port}` : ""} (${skip.reason}): ${skip.message}`);
      this.emit("skipped", skip);
    }
    if (now.size > 0) this.#reported.set(service, now);
    else this.#reported.delete(service);
  }
}

/** Same structure and same destinations (NodePorts and source ranges are no structure for HAProxy, but the resolve and the kernel need them). */
function sameStructure(a: ServiceTranslation | undefined, b: ServiceTranslation | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.createdAt !== b.createdAt || a.backends.length !== b.backends.length) return false;
  return a.backends.every((backend, i) => sameBackend(backend, b.backends[i]!));
}

function sameBackend(a: Backend, b: Backend): boolean {
  // Translations of one prepared Service (translate.ts) share its binds array: then no text to build (the hot path).
  const same = a.binds === b.binds && a.name === b.name && a.mode === b.mode && a.algorithm === b.algorithm
    && a.affinityTimeoutSeconds === b.affinityTimeoutSeconds && a.healthCheck === b.healthCheck && a.nodePort === b.nodePort;
  return same || (structureOf(a) === structureOf(b) && destinations(a) === destinations(b));
}

/** Where a backend is reached, source ranges included: who holds a destination is resolved across Services. */
function destinations(backend: Backend): string {
  return JSON.stringify([backend.binds.map((bind) => [bind.address, bind.port, bind.sourceRanges ?? null]), backend.nodePort ?? null]);
}

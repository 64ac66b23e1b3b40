// The proxier: turns cluster changes into desired backends for the engine, kube-proxy style.
//
//   watch events ─► ClusterState ─► translate one Service ─┬─ endpoints only ─► engine.setBackend
//                                                          └─ structure changed ─► conflicts resolved
//                                                             over all Services, then engine + onStructural
//
// Nothing reaches the engine before both initial lists arrived (start()). After that, every
// event flows straight through: no periodic recompute of the whole cluster on the hot path.

import { EventEmitter } from "node:events";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import type { Logger } from "./log.ts";
import type { Backend } from "./model.ts";
import { ClusterState } from "./kube/cluster-state.ts";
import { resolvePortConflicts, type ServiceTranslation, type Skip, type TranslateOptions } from "./kube/translate.ts";
import type { WatchEventType } from "./kube/watch.ts";

/** What the proxier drives: the sync engine's two entry points. */
export interface BackendSink {
  setBackend(backend: Backend): void;
  deleteBackend(name: string): void;
}

type Events = {
  /** A Service port was created, deleted, or changed in a way only a new configuration can apply. */
  structural: [reason: string];
  /** A Service or port that is not served, with why (each distinct skip once). */
  skipped: [skip: Skip];
  /** Counts after every change. */
  counts: [counts: { services: number; ready: number; drain: number }];
};

export class Proxier extends EventEmitter<Events> {
  readonly #state = new ClusterState();
  readonly #sink: BackendSink;
  readonly #options: TranslateOptions;
  readonly #log: Logger;
  readonly #translations = new Map<string, ServiceTranslation>();
  // Backends given to the sink, after port conflicts were resolved: the desired structure.
  #active = new Map<string, Backend>();
  // Skip messages already reported, per Service: each distinct skip is logged once.
  readonly #reported = new Map<string, Set<string>>();
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
    // Not "structural": whether HAProxy already has this structure is the reloader's question.
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
    // Endpoints only: the hot path. Conflict losers stay out.
    for (const backend of after?.backends ?? []) {
      const old = this.#active.get(backend.name);
      if (!old) continue;
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
    this.#report(key, translation?.skipped ?? []);
    return translation;
  }

  /** Recomputes which backends are active across all Services and tells the sink what changed. */
  #resolve(): void {
    const { backends, skipped } = resolvePortConflicts([...this.#translations.values()]);
    const conflicts = new Map<string, Skip[]>();
    for (const skip of skipped) conflicts.set(skip.service, [...(conflicts.get(skip.service) ?? []), skip]);
    for (const [service, skips] of conflicts) this.#report(service, [...(this.#translations.get(service)?.skipped ?? []), ...skips]);

    const next = new Map(backends.map((backend) => [backend.name, backend]));
    const reasons: string[] = [];
    for (const [name, old] of this.#active) {
      if (next.has(name)) continue;
      this.#count(old, undefined);
      this.#sink.deleteBackend(name);
      reasons.push(`${old.servicePort} removed`);
    }
    for (const backend of backends) {
      const old = this.#active.get(backend.name);
      if (!old) reasons.push(`${backend.servicePort} added`);
      else if (structureOf(old) !== structureOf(backend)) reasons.push(`${backend.servicePort} changed`);
      this.#count(old, backend);
      this.#sink.setBackend(backend);
    }
    this.#active = next;
    this.#services = new Set(backends.map((backend) => backend.servicePort.slice(0, backend.servicePort.lastIndexOf(":")))).size;
    this.#emitCounts();
    if (reasons.length > 0 && this.#started) this.emit("structural", reasons.join(", "));
  }

  /** Keeps the endpoint counts current without walking every backend (the hot path). */
  #count(old: Backend | undefined, next: Backend | undefined): void {
    for (const endpoint of old?.endpoints ?? []) endpoint.state === "ready" ? this.#ready-- : this.#drain--;
    for (const endpoint of next?.endpoints ?? []) endpoint.state === "ready" ? this.#ready++ : this.#drain++;
  }

  #emitCounts(): void {
    this.emit("counts", { services: this.#services, ready: this.#ready, drain: this.#drain });
  }

  #report(service: string, skips: readonly Skip[]): void {
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

/** The part of a backend that only a new HAProxy configuration can change. */
function structureOf(backend: Backend): string {
  return JSON.stringify([backend.mode, backend.algorithm, backend.binds, backend.affinityTimeoutSeconds ?? null, backend.healthCheck?.intervalMs ?? null]);
}

function sameStructure(a: ServiceTranslation | undefined, b: ServiceTranslation | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.createdAt !== b.createdAt || a.backends.length !== b.backends.length) return false;
  return a.backends.every((backend, i) => backend.name === b.backends[i]!.name && structureOf(backend) === structureOf(b.backends[i]!));
}

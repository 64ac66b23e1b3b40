// What the data plane should serve, and what of it is not in HAProxy yet. Pure bookkeeping for
// the owner (dataplane.ts), kube-proxy's change tracker in small:
//
//   dirty    backends to plan at the next flush (a change, or a full sync that repairs all)
//   pending  backends with a change HAProxy has not confirmed yet; only these produce a latency
//            sample, one per Service and trigger time (the ports of a Service share it), none
//            for trigger times from before the process started; only these count for health
//   structure the hash of everything only a new configuration can change, and why it changed

import { sameStructureFields, structureOf, type Backend } from "../model.ts";

interface Pending {
  /** When the change arrived (monotonic ms): health reports the oldest. */
  readonly since: number;
  /** The oldest trigger time of the changes waiting, when it is one to observe. */
  readonly triggerTime: number | undefined;
}

export class DesiredState {
  readonly #backends = new Map<string, Backend>();
  // structureOf each backend, kept so a change compares against it without computing it again.
  readonly #structures = new Map<string, string>();
  #dirty = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  // The newest trigger time observed per Service (namespace/name): each is observed once.
  readonly #observed = new Map<string, number>();
  // Trigger times before this (wall-clock ms) belong to changes made before we started.
  readonly #startedAt: number;
  readonly #hash: (backends: readonly Backend[]) => string;
  #structure: string | undefined;
  // Why the structure changed since the last reload, for its log line.
  readonly #reasons = new Set<string>();

  /** `hash`: the structure hash of a set of backends (render.ts's, which adds the global settings). */
  constructor(startedAt: number, hash: (backends: readonly Backend[]) => string) {
    this.#startedAt = startedAt;
    this.#hash = hash;
  }

  get(name: string): Backend | undefined {
    return this.#backends.get(name);
  }

  names(): IterableIterator<string> {
    return this.#backends.keys();
  }

  backends(): Backend[] {
    return [...this.#backends.values()];
  }

  /** A backend's new desired state; a no-op when nothing HAProxy serves differs. */
  set(backend: Backend, now: number): void {
    const old = this.#backends.get(backend.name);
    // An endpoint change keeps every structural field: its structure is not built again.
    const structure = old !== undefined && sameStructureFields(old, backend) ? this.#structures.get(backend.name)! : structureOf(backend);
    const structural = old === undefined || this.#structures.get(backend.name) !== structure;
    const endpoints = old === undefined || !sameEndpoints(old, backend);
    if (!structural && !endpoints && old.minSlots === backend.minSlots) return;
    this.#backends.set(backend.name, backend);
    this.#structures.set(backend.name, structure);
    this.#dirty.add(backend.name);
    if (structural) this.#structureChanged(`${backend.servicePort} ${old ? "changed" : "added"}`);
    if (endpoints) this.#markPending(backend.name, backend.triggerTime, now);
  }

  delete(name: string, now: number): void {
    const old = this.#backends.get(name);
    if (!old) return;
    this.#backends.delete(name);
    this.#structures.delete(name);
    this.#observed.delete(serviceOf(old));
    this.#dirty.add(name);
    this.#structureChanged(`${old.servicePort} removed`);
    this.#markPending(name, undefined, now);
  }

  markDirty(names: Iterable<string>): void {
    for (const name of names) this.#dirty.add(name);
  }

  /** The dirty backends, no longer dirty (the caller owns the set). */
  takeDirty(): Set<string> {
    const names = this.#dirty;
    this.#dirty = new Set();
    return names;
  }

  get dirty(): number {
    return this.#dirty.size;
  }

  get pending(): number {
    return this.#pending.size;
  }

  isDirty(name: string): boolean {
    return this.#dirty.has(name);
  }

  isPending(name: string): boolean {
    return this.#pending.has(name);
  }

  /** The change waiting for `name` is in HAProxy (or never will be): its trigger time to observe, if any. */
  settle(name: string): number | undefined {
    const triggerTime = this.#pending.get(name)?.triggerTime;
    this.#pending.delete(name);
    const backend = this.#backends.get(name);
    if (triggerTime === undefined || backend === undefined) return undefined;
    const service = serviceOf(backend);
    if (triggerTime <= (this.#observed.get(service) ?? -Infinity)) return undefined;
    this.#observed.set(service, triggerTime);
    return triggerTime;
  }

  /**
   * Confirmed by a flush, but changed again after that flush took it (`isDirty`): what it planned
   * is in HAProxy, a newer change may not be. The older one settles (its trigger time, if any);
   * the newer one waits for the next flush, which reports it applied too, counted from `since`
   * (the flush's start, no later than the change's arrival: health never sees it younger).
   */
  settleOlder(name: string, since: number): number | undefined {
    const triggerTime = this.settle(name);
    this.#pending.set(name, { since, triggerTime: undefined });
    return triggerTime;
  }

  /** When the oldest change not yet in HAProxy arrived; undefined when none waits. */
  pendingSince(): number | undefined {
    let oldest: number | undefined;
    for (const { since } of this.#pending.values()) if (oldest === undefined || since < oldest) oldest = since;
    return oldest;
  }

  /** The desired structure's hash, computed again only after a structural change. */
  structure(): string {
    this.#structure ??= this.#hash(this.backends());
    return this.#structure;
  }

  /** Why the structure changed since clearReasons(), for the reload's log line. */
  reasons(): string[] {
    return [...this.#reasons];
  }

  clearReasons(): void {
    if (this.#reasons.size > 0) this.#reasons.clear(); // clear() allocates a new table, even when empty
  }

  #structureChanged(reason: string): void {
    this.#structure = undefined;
    this.#reasons.add(reason);
  }

  #markPending(name: string, triggerTime: number | undefined, now: number): void {
    const observed = triggerTime !== undefined && triggerTime >= this.#startedAt ? triggerTime : undefined;
    const before = this.#pending.get(name);
    if (before === undefined) this.#pending.set(name, { since: now, triggerTime: observed });
    else if (before.triggerTime === undefined && observed !== undefined) this.#pending.set(name, { since: before.since, triggerTime: observed });
  }
}

/** `namespace/name` of a backend's `namespace/name:port`. */
function serviceOf(backend: Backend): string {
  return backend.servicePort.slice(0, backend.servicePort.lastIndexOf(":"));
}

/** Endpoints are sorted by ip, then port (model.ts): equal lists compare element by element. */
function sameEndpoints(a: Backend, b: Backend): boolean {
  if (a.endpoints.length !== b.endpoints.length) return false;
  return a.endpoints.every((e, i) => {
    const f = b.endpoints[i]!;
    return e.ip === f.ip && e.port === f.port && e.state === f.state;
  });
}

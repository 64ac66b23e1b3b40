// The sync engine: keeps HAProxy's slots equal to the desired backends.
//
//   setBackend()/deleteBackend() ──► #desired, #dirty ──► schedule ──► p-queue (one flush at a time)
//                                                                      │
//   flush: [full sync: show servers state ─► #applied] ─► assignSlots ─► planBackend ─► executeAll
//                                                                      │
//   replies ──► #applied (only what HAProxy confirmed) ; any failure ─► full sync after backoff
//
// Changes that arrive while a flush is in flight wait for the next one and are merged there.
// One place decides between an incremental and a full sync: #needFullSync.

import { EventEmitter } from "node:events";
import PQueue from "p-queue";
import { addServer, checkAddress, checkPort, delServer, setServerAddr, setServerState, showServersState, type RuntimeCommand } from "../haproxy/commands.ts";
import { slotName } from "../haproxy/names.ts";
import type { CommandResult, RuntimeClient } from "../haproxy/runtime-client.ts";
import { parseServersState } from "../haproxy/servers-state.ts";
import type { Logger } from "../log.ts";
import { endpointKey, type Backend, type Endpoint } from "../model.ts";
import { AppliedState } from "./applied.ts";
import { planBackend, type AppliedSlot, type SlotChange } from "./plan.ts";
import { assignSlots, type SlotAssignment } from "./slots.ts";

export interface EngineOptions {
  readonly client: RuntimeClient;
  readonly log: Logger;
  /** Least time between two flushes; 0 applies at once. @default 0 */
  readonly minSyncPeriodMs?: number;
  /** Re-read `show servers state` and repair drift this often; 0 never. @default 60000 */
  readonly configSyncPeriodMs?: number;
  /** Retry interval for `del server` of a dynamic server that still has connections. @default 2000 */
  readonly deleteRetryMs?: number;
  /** Backoff after a failed batch. @default 100 … 10000 */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** Wall clock in ms since the epoch (trigger times are wall-clock). @default Date.now */
  readonly now?: () => number;
}

export interface SyncReport {
  readonly full: boolean;
  readonly backends: number;
  readonly commands: number;
  readonly failed: number;
  readonly durationMs: number;
}

export interface BackendStatus {
  readonly name: string;
  /** Template slots plus dynamic servers. */
  readonly slots: number;
  readonly dynamic: number;
  readonly used: number;
  readonly overflow: number;
}

/** Balance algorithms HAProxy accepts dynamic servers for (without `hash-type consistent`). */
const DYNAMIC_ALGORITHMS: ReadonlySet<string> = new Set(["roundrobin", "leastconn", "first", "random"]);

type Events = {
  /** After every flush. */
  synced: [report: SyncReport];
  /** A backend's desired endpoints are all in HAProxy; `triggerTime` as given in setBackend. */
  applied: [backend: string, triggerTime: number | undefined, at: number];
  /**
   * Endpoints that found no slot, and no dynamic server could be added (the algorithm does
   * not allow it): the rest of the backend is served; a reload with more slots is needed.
   */
  overflow: [backend: string, keys: readonly string[]];
  /** A desired backend HAProxy does not have: a structural change, for the reloader. */
  missing: [backend: string];
  /** A command HAProxy refused. */
  failed: [command: string, message: string];
  /** An endpoint refused before planning (bad address or port): never given a slot. */
  invalid: [backend: string, endpoint: Endpoint, message: string];
};

interface Pending {
  readonly backend: string;
  readonly change: SlotChange;
}

/** What a flush's replies amounted to. */
interface Outcome {
  commands: number;
  failed: number;
  firstError: string | undefined;
  deletesLeft: boolean;
  readonly failedBackends: Set<string>;
}

/** Commands planned before the first write of a large flush (see #flush). */
const WRITE_CHUNK = 1024;

export class SyncEngine extends EventEmitter<Events> {
  readonly #client: RuntimeClient;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #minSyncPeriodMs: number;
  readonly #configSyncPeriodMs: number;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #deleteRetryMs: number;

  readonly #desired = new Map<string, Backend>();
  // What HAProxy has in each slot: from the last `show servers state`, then only ever updated
  // from HAProxy's own replies.
  #applied = new AppliedState();
  // Backends where HAProxy refused `add server` (not a dynamic algorithm after all).
  readonly #noDynamic = new Set<string>();
  // Which endpoint sits in which slot, per backend, as planned.
  readonly #assignment = new Map<string, SlotAssignment>();
  readonly #overflow = new Map<string, number>();
  // Backends whose desired state changed since their last flush.
  readonly #dirty = new Set<string>();
  #needFullSync = true;

  readonly #queue = new PQueue({ concurrency: 1 });
  // True from scheduling a flush until that flush starts: later changes join it.
  #flushQueued = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #lastFlushStart = -Infinity;
  #retryMs = 0;
  #periodic: NodeJS.Timeout | undefined;
  #waiters: (() => void)[] = [];
  #running = false;
  // When the oldest change not yet applied arrived (performance.now()); undefined when synced.
  #pendingSince: number | undefined;
  #lastSynced: Date | undefined;

  constructor(options: EngineOptions) {
    super();
    this.#client = options.client;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#minSyncPeriodMs = options.minSyncPeriodMs ?? 0;
    this.#configSyncPeriodMs = options.configSyncPeriodMs ?? 60_000;
    this.#retryMinMs = options.retryMinMs ?? 100;
    this.#retryMaxMs = options.retryMaxMs ?? 10_000;
    this.#deleteRetryMs = options.deleteRetryMs ?? 2_000;
  }

  /** Starts syncing: on every (re)connection and every config-sync period, a full sync. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#client.on("connect", this.#onConnect);
    if (this.#configSyncPeriodMs > 0) {
      this.#periodic = setInterval(() => this.requestFullSync(), this.#configSyncPeriodMs);
      this.#periodic.unref();
    }
    this.#client.start();
    if (this.#client.connected) this.requestFullSync();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#client.off("connect", this.#onConnect);
    clearInterval(this.#periodic);
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#flushQueued = false;
    await this.#queue.onIdle();
  }

  /** Sets a backend's desired state (endpoints and all). */
  setBackend(backend: Backend): void {
    this.#desired.set(backend.name, backend);
    this.#dirty.add(backend.name);
    this.#pendingSince ??= performance.now();
    this.#schedule(0);
  }

  /** Forgets a backend: its slots go to maint until a reload removes it. */
  deleteBackend(name: string): void {
    if (!this.#desired.delete(name)) return;
    this.#dirty.add(name);
    this.#pendingSince ??= performance.now();
    this.#schedule(0);
  }

  desired(name: string): Backend | undefined {
    return this.#desired.get(name);
  }

  /** Re-read HAProxy's state and repair every backend at the next flush. */
  requestFullSync(): void {
    this.#needFullSync = true;
    this.#schedule(0);
  }

  /** Resolves when everything desired so far is applied (or waits through retries). */
  whenSynced(): Promise<void> {
    if (this.#isClean()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** For /healthz: connected, how long the oldest unapplied change has waited, last full success. */
  health(): { readonly connected: boolean; readonly pendingMs: number; readonly lastSynced: Date | undefined } {
    const pendingMs = this.#pendingSince === undefined ? 0 : performance.now() - this.#pendingSince;
    return { connected: this.#client.connected, pendingMs, lastSynced: this.#lastSynced };
  }

  /** True when nothing is waiting to be applied. */
  get synced(): boolean {
    return this.#isClean();
  }

  status(): BackendStatus[] {
    return this.#applied.names().map((name) => this.statusOf(name));
  }

  statusOf(name: string): BackendStatus {
    return {
      name,
      slots: this.#applied.slots(name).length,
      dynamic: this.#applied.dynamic(name).size,
      used: this.#assignment.get(name)?.size ?? 0,
      overflow: this.#overflow.get(name) ?? 0,
    };
  }

  /** What HAProxy has, per backend and slot, as last confirmed (for reloads and tests). */
  applied(name: string): ReadonlyMap<number, AppliedSlot> | undefined {
    return this.#applied.has(name) ? this.#applied.bySlot(name) : undefined;
  }

  readonly #onConnect = (): void => this.requestFullSync();

  /** `running` counts the flushes in progress: inside a flush, that one does not count. */
  #isClean(running = this.#queue.pending): boolean {
    return this.#dirty.size === 0 && !this.#needFullSync && !this.#flushQueued && running === 0;
  }

  #schedule(delayMs: number): void {
    if (!this.#running || this.#flushQueued) return;
    this.#flushQueued = true;
    const wait = Math.max(delayMs, this.#lastFlushStart + this.#minSyncPeriodMs - performance.now());
    if (wait <= 0) this.#enqueue();
    else {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined;
        this.#enqueue();
      }, wait);
    }
  }

  #enqueue(): void {
    void this.#queue.add(async () => {
      // Let the rest of the current tick's events (one watch chunk) join this flush.
      await Promise.resolve();
      this.#flushQueued = false;
      this.#lastFlushStart = performance.now();
      try {
        await this.#flush();
      } catch (error) {
        this.#log.error(`sync failed: ${(error as Error).message}`);
        this.#needFullSync = true;
        this.#retryLater();
      }
      if (this.#isClean(0)) {
        this.#pendingSince = undefined;
        this.#lastSynced = new Date(this.#now());
        for (const resolve of this.#waiters.splice(0)) resolve();
      }
    });
  }

  async #flush(): Promise<void> {
    if (!this.#client.connected) return; // the next "connect" asks for a full sync
    const started = performance.now();
    const full = this.#needFullSync;
    if (full) await this.#readAppliedState();

    const names = [...this.#dirty];
    this.#dirty.clear();
    // Write while planning: every WRITE_CHUNK commands go out at once, so HAProxy works on
    // the first ones while the rest are planned. Replies still come back in order on one FIFO,
    // and a backend is planned whole into one chunk, so nothing depends on a reply not yet in.
    const outcome: Outcome = { commands: 0, failed: 0, firstError: undefined, deletesLeft: false, failedBackends: new Set() };
    const sent: Promise<void>[] = [];
    let pending: Pending[] = [];
    let commands: RuntimeCommand[] = [];
    const send = (): void => {
      if (commands.length === 0) return;
      const [batch, lines] = [pending, commands];
      [pending, commands] = [[], []];
      outcome.commands += lines.length;
      sent.push(this.#client.executeAll(lines).then((results) => this.#collect(batch, lines, results, outcome)));
    };
    for (const name of names) {
      this.#planInto(name, pending, commands);
      if (commands.length >= WRITE_CHUNK) send();
    }
    send();
    await Promise.all(sent);
    const { failed, deletesLeft, failedBackends } = outcome;
    if (deletesLeft && failed === 0) this.#schedule(this.#deleteRetryMs);
    if (failed > 0) {
      this.#log.warn(`${failed} of ${outcome.commands} runtime commands failed (first: ${outcome.firstError}); full sync follows`);
      this.#needFullSync = true;
      this.#retryLater();
    } else {
      this.#retryMs = 0;
    }
    const at = this.#now();
    for (const name of names) {
      if (!failedBackends.has(name) && this.#applied.has(name)) this.emit("applied", name, this.#desired.get(name)?.triggerTime, at);
    }
    this.emit("synced", { full, backends: names.length, commands: outcome.commands, failed, durationMs: performance.now() - started });
  }

  /** Takes in one chunk's replies: the applied picture from successes, the rest into `outcome`. */
  #collect(pending: readonly Pending[], commands: readonly RuntimeCommand[], results: readonly CommandResult[], outcome: Outcome): void {
    results.forEach((result, i) => {
      const { backend, change } = pending[i]!;
      if (result.ok) {
        this.#record(backend, change);
      } else if (change.kind === "del") {
        // Still has connections: not drift, just not yet. Try again later.
        outcome.deletesLeft = true;
        this.#dirty.add(backend);
      } else {
        if (change.kind === "add" && /dynamic load balancing/.test(result.error.reply ?? "")) this.#noDynamic.add(backend);
        outcome.failed++;
        outcome.firstError ??= result.error.message;
        outcome.failedBackends.add(backend);
        this.emit("failed", commands[i]!.line, result.error.message);
      }
    });
  }

  /** Records a change HAProxy confirmed in the applied picture. */
  #record(backend: string, change: SlotChange): void {
    this.#applied.record(backend, change);
    // A dynamic server just parked in maint is deleted by the next flush.
    if (change.kind === "state" && change.state === "maint" && this.#applied.dynamic(backend).has(change.slot)) {
      this.#dirty.add(backend);
      this.#schedule(0);
    }
  }

  /** Plans one backend's changes and appends them (with their commands) to the batch. */
  #planInto(name: string, pending: Pending[], commands: RuntimeCommand[]): void {
    const desired = this.#desired.get(name);
    if (!this.#applied.has(name)) {
      if (desired) this.emit("missing", name);
      return;
    }
    const slots = this.#applied.slots(name);
    const endpoints = new Map<string, Endpoint>();
    for (const endpoint of desired?.endpoints ?? []) {
      try {
        checkAddress(endpoint.ip);
        checkPort(endpoint.port);
        endpoints.set(endpointKey(endpoint), endpoint);
      } catch (error) {
        // Translation validates too; this guard keeps a bad endpoint from ever getting a slot.
        this.#log.error(`${name}: skipping endpoint ${JSON.stringify(endpoint.ip)}:${endpoint.port}: ${(error as Error).message}`);
        this.emit("invalid", name, endpoint, (error as Error).message);
      }
    }
    const { assignment, overflow } = assignSlots(this.#assignment.get(name) ?? new Map(), [...endpoints.keys()], slots);
    // Slots run out: add dynamic servers above the highest slot, when the algorithm allows.
    const planned = [...slots];
    const dynamic = new Set(this.#applied.dynamic(name));
    const growable = DYNAMIC_ALGORITHMS.has(desired?.algorithm ?? "") && !this.#noDynamic.has(name);
    const unplaced = growable ? [] : overflow;
    if (growable) {
      let next = planned.length === 0 ? 1 : planned[planned.length - 1]! + 1;
      for (const key of overflow) {
        assignment.set(key, next);
        dynamic.add(next); // created by this flush's `add server`
        planned.push(next++);
      }
    }
    this.#assignment.set(name, assignment);
    if (unplaced.length > 0) {
      this.#overflow.set(name, unplaced.length);
      this.emit("overflow", name, unplaced);
    } else this.#overflow.delete(name);
    const bySlot = new Map<number, Endpoint>();
    for (const [key, slot] of assignment) bySlot.set(slot, endpoints.get(key)!);
    for (const change of planBackend(planned, this.#applied.bySlot(name), bySlot, dynamic)) {
      commands.push(this.#command(name, change, dynamic.has(change.slot)));
      pending.push({ backend: name, change });
    }
  }

  #command(backend: string, change: SlotChange, dynamic: boolean): RuntimeCommand {
    const server = slotName(change.slot, dynamic);
    switch (change.kind) {
      case "addr":
        return setServerAddr(backend, server, change.ip, change.port);
      case "state":
        return setServerState(backend, server, change.state);
      case "add":
        return addServer(backend, server, change.ip, change.port);
      case "del":
        return delServer(backend, server);
    }
  }

  /** Replaces the applied picture and the slot assignment with HAProxy's own state. */
  async #readAppliedState(): Promise<void> {
    this.#applied = AppliedState.fromRecords(parseServersState(await this.#client.execute(showServersState())));
    this.#needFullSync = false;
    this.#noDynamic.clear();
    this.#assignment.clear();
    for (const name of this.#applied.names()) {
      this.#assignment.set(name, this.#applied.assignment(name));
      this.#dirty.add(name);
    }
    for (const name of this.#desired.keys()) this.#dirty.add(name);
  }

  #retryLater(): void {
    this.#retryMs = Math.min(this.#retryMaxMs, Math.max(this.#retryMinMs, this.#retryMs * 2));
    this.#schedule(this.#retryMs);
  }
}

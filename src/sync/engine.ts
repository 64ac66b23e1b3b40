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
import { parseSlotName, slotName } from "../haproxy/names.ts";
import type { CommandResult, RuntimeClient } from "../haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../haproxy/servers-state.ts";
import type { Logger } from "../log.ts";
import { endpointKey, type Backend, type Endpoint } from "../model.ts";
import { applyChange, planBackend, type AppliedSlot, type SlotChange } from "./plan.ts";
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
  // Slot numbers HAProxy has per backend, ascending; from the last `show servers state`,
  // then kept current from `add server`/`del server` replies.
  readonly #slots = new Map<string, number[]>();
  // Which of those are dynamic servers (d<N>) rather than template slots (s<N>).
  readonly #dynamic = new Map<string, Set<number>>();
  // Backends where HAProxy refused `add server` (not a dynamic algorithm after all).
  readonly #noDynamic = new Set<string>();
  // What HAProxy has in each slot: only ever updated from HAProxy's own replies.
  readonly #applied = new Map<string, Map<number, AppliedSlot>>();
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
    return [...this.#slots.keys()].sort().map((name) => this.statusOf(name));
  }

  statusOf(name: string): BackendStatus {
    return {
      name,
      slots: this.#slots.get(name)?.length ?? 0,
      dynamic: this.#dynamic.get(name)?.size ?? 0,
      used: this.#assignment.get(name)?.size ?? 0,
      overflow: this.#overflow.get(name) ?? 0,
    };
  }

  /** What HAProxy has, per backend and slot, as last confirmed (for reloads and tests). */
  applied(name: string): ReadonlyMap<number, AppliedSlot> | undefined {
    return this.#applied.get(name);
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
      if (!failedBackends.has(name) && this.#slots.has(name)) this.emit("applied", name, this.#desired.get(name)?.triggerTime, at);
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
    const applied = this.#applied.get(backend);
    const slots = this.#slots.get(backend);
    const dynamic = this.#dynamic.get(backend);
    if (!applied || !slots || !dynamic) return;
    const after = applyChange(applied.get(change.slot), change);
    if (change.kind === "add") {
      slots.push(change.slot); // dynamic slot numbers are always above every existing one
      dynamic.add(change.slot);
    } else if (change.kind === "del") {
      slots.splice(slots.indexOf(change.slot), 1);
      dynamic.delete(change.slot);
    }
    if (after) applied.set(change.slot, after);
    else applied.delete(change.slot);
    // A dynamic server just parked in maint is deleted by the next flush.
    if (change.kind === "state" && change.state === "maint" && dynamic.has(change.slot)) {
      this.#dirty.add(backend);
      this.#schedule(0);
    }
  }

  /** Plans one backend's changes and appends them (with their commands) to the batch. */
  #planInto(name: string, pending: Pending[], commands: RuntimeCommand[]): void {
    const slots = this.#slots.get(name);
    const desired = this.#desired.get(name);
    if (!slots) {
      if (desired) this.emit("missing", name);
      return;
    }
    const applied = this.#applied.get(name)!;
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
    const dynamic = this.#dynamic.get(name)!;
    const { assignment, overflow } = assignSlots(this.#assignment.get(name) ?? new Map(), [...endpoints.keys()], slots);
    // Slots run out: add dynamic servers above the highest slot, when the algorithm allows.
    const planned = [...slots];
    const growable = DYNAMIC_ALGORITHMS.has(desired?.algorithm ?? "") && !this.#noDynamic.has(name);
    const unplaced = growable ? [] : overflow;
    if (growable) {
      let next = planned.length === 0 ? 1 : planned[planned.length - 1]! + 1;
      for (const key of overflow) {
        assignment.set(key, next);
        dynamic.add(next); // provisional until `add server` succeeds; #record keeps it
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
    for (const change of planBackend(planned, applied, bySlot, dynamic)) {
      commands.push(this.#command(name, change, dynamic.has(change.slot)));
      pending.push({ backend: name, change });
    }
    // Provisional dynamic slots leave the set again; confirmed ones come back in #record.
    for (const slot of planned.slice(slots.length)) dynamic.delete(slot);
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

  /** Rebuilds #slots, #applied and the slot assignment from HAProxy's own state. */
  async #readAppliedState(): Promise<void> {
    const records = parseServersState(await this.#client.execute(showServersState()));
    this.#needFullSync = false;
    this.#slots.clear();
    this.#dynamic.clear();
    this.#applied.clear();
    this.#noDynamic.clear();
    for (const record of records) {
      const parsed = parseSlotName(record.server);
      if (parsed === undefined) continue;
      let applied = this.#applied.get(record.backend);
      if (!applied) {
        applied = new Map();
        this.#applied.set(record.backend, applied);
        this.#slots.set(record.backend, []);
        this.#dynamic.set(record.backend, new Set());
      }
      applied.set(parsed.slot, { ip: record.address, port: record.port, state: stateOf(record) });
      this.#slots.get(record.backend)!.push(parsed.slot);
      if (parsed.dynamic) this.#dynamic.get(record.backend)!.add(parsed.slot);
    }
    // Keep what HAProxy already serves where it is: derive the assignment from the slots,
    // serving ones first, so a repair after a restart or drift costs the fewest commands.
    this.#assignment.clear();
    for (const [name, applied] of this.#applied) {
      this.#slots.get(name)!.sort((a, b) => a - b);
      const assignment = new Map<string, number>();
      for (const pass of ["serving", "maint"] as const) {
        for (const [slot, have] of applied) {
          if ((have.state === "maint") !== (pass === "maint") || have.port === 0) continue;
          const key = endpointKey(have);
          if (!assignment.has(key)) assignment.set(key, slot);
        }
      }
      this.#assignment.set(name, assignment);
      this.#dirty.add(name);
    }
    for (const name of this.#desired.keys()) this.#dirty.add(name);
  }

  #retryLater(): void {
    this.#retryMs = Math.min(this.#retryMaxMs, Math.max(this.#retryMinMs, this.#retryMs * 2));
    this.#schedule(this.#retryMs);
  }
}

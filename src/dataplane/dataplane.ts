// The data plane: the one owner of what HAProxy runs. It holds the runtime connection, the
// applied picture (only what HAProxy confirmed), the slot assignment and the reload path; one
// runner decides when it syncs, and each sync is, in this order:
//
//   full    (on connect, after a failure or reload, every --config-sync-period)
//           show servers state + show env KUBE_HAPROXY_STRUCTURE ─► applied picture, running structure
//   reload  the running worker's structure is not the desired one, a desired backend is missing,
//           or one must grow by reload ─► render from the slot assignment ─► Reloader ─► new worker
//   flush   dirty backends ─► planner ─► executor ─► replies ─► applied picture
//
// Nothing is sent before beginSync(): both initial lists are in, so HAProxy's slots are never
// emptied for a desired state not yet known. Dynamic servers that still have connections wait
// in the reaper, on their own timer, outside health and whenSynced.

import { EventEmitter } from "node:events";
import { isKubeHaproxyError } from "../errors.ts";
import { takesDynamicServers } from "../haproxy/algorithms.ts";
import { parseShowEnv, showEnv, showServersState } from "../haproxy/commands.ts";
import { STRUCTURE_ENV, renderConfig, structureHash, type RenderOptions } from "../haproxy/render.ts";
import { parseServersState } from "../haproxy/servers-state.ts";
import type { Logger } from "../log.ts";
import { endpointProblem, type Backend, type Endpoint } from "../model.ts";
import { AppliedState } from "./applied.ts";
import { DesiredState } from "./desired.ts";
import { execute, type PlannedChange, type Transport } from "./executor.ts";
import { layoutBackend, planBackendSync, type AppliedSlot } from "./planner.ts";
import { switchToWorker, type Reloader } from "./reload.ts";
import { Runner, systemClock, type Cancel, type Clock, type RunResult } from "./runner.ts";
import type { SlotAssignment } from "./slots.ts";

export interface DataplaneOptions {
  readonly transport: Transport;
  readonly log: Logger;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Least time between two syncs (--min-sync-period). @default 0 */
  readonly minSyncPeriodMs?: number;
  /** Re-read HAProxy's state and repair drift this often (--config-sync-period); 0 never. @default 60000 */
  readonly configSyncPeriodMs?: number;
  /** Backoff after a failed sync. @default 100 … 10000 */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** The reaper: how often `del server` is tried again while the server has connections. @default 2000 */
  readonly deleteRetryMs?: number;
  /** Structural changes; without it HAProxy's configuration is left as it is. */
  readonly reload?: {
    readonly reloader: Reloader;
    /** Global settings of the rendered configuration (part of the structure). */
    readonly render: RenderOptions;
    /** --min-reload-period. @default 2000 */
    readonly minReloadPeriodMs?: number;
  };
}

export interface FlushReport {
  /** This sync began with a full read of HAProxy's state. */
  readonly full: boolean;
  readonly backends: number;
  /** Commands HAProxy answered, and how many of those it refused. */
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

type Events = {
  flushed: [report: FlushReport];
  /** A pending change of `backend` is in HAProxy; `triggerTime` only when it is one to observe. */
  applied: [backend: string, triggerTime: number | undefined, at: number];
  /** Endpoints that found no slot and cannot get a dynamic server (each key once): a reload grows the template. */
  overflow: [backend: string, keys: readonly string[]];
  /** A desired backend HAProxy does not have: it comes with the next reload. */
  missing: [backend: string];
  failed: [command: string, message: string];
  /** An endpoint refused at the door (bad address or port): never given a slot. */
  invalid: [backend: string, endpoint: Endpoint, message: string];
  /** `kind`: "slots" when only a template had to grow. */
  reloaded: [reason: string, durationMs: number, kind: "structural" | "slots"];
  /** haproxy -c refused the configuration; the running one stays. Tried again once the structure changes. */
  reloadRefused: [output: string];
  reloadFailed: [message: string];
};

interface ReloadWanted {
  readonly reason: string;
  readonly kind: "structural" | "slots";
  /** Identifies the configuration asked for: a refused or failed one is not tried again. */
  readonly key: string;
}

export class Dataplane extends EventEmitter<Events> {
  readonly #options: DataplaneOptions;
  readonly #transport: Transport;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #runner: Runner;
  readonly #desired: DesiredState;
  // What HAProxy has per slot: from the last full read, then only from its replies.
  #applied = new AppliedState();
  readonly #assignment = new Map<string, SlotAssignment>();
  // Desired backends HAProxy has no backend for.
  readonly #missing = new Set<string>();
  // Over-capacity endpoint keys already reported, per backend that cannot grow at runtime.
  readonly #overflow = new Map<string, Set<string>>();
  // Backends where HAProxy refused `add server`; kept until another structure runs.
  readonly #noDynamic = new Set<string>();
  // The structure hash the running worker reports; undefined when it has none.
  #running: string | undefined;
  #needFullSync = true;
  #lastFullSync = -Infinity;
  #syncing = false;
  #lastReload = -Infinity;
  #refusedKey: string | undefined;
  #failedKey: string | undefined;
  // The reaper: backends with dynamic servers parked in maint, waiting for `del server`.
  readonly #deletes = new Set<string>();
  #reapDue = false;
  #reapCancel: Cancel | undefined;
  #reapAt = Infinity;
  #waiters: (() => void)[] = [];
  #lastSynced: Date | undefined;

  constructor(options: DataplaneOptions) {
    super();
    this.#options = options;
    this.#transport = options.transport;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
    const render = options.reload?.render;
    this.#desired = new DesiredState(this.#clock.wallNow(), (backends) => (render ? structureHash(backends, render) : ""));
    this.#runner = new Runner({
      run: () => this.#sync(),
      afterRun: () => this.#afterRun(),
      onError: (error) => this.#log.error(`sync failed: ${(error as Error).message}`),
      clock: this.#clock,
      minIntervalMs: options.minSyncPeriodMs ?? 0,
      maxIntervalMs: options.configSyncPeriodMs ?? 60_000,
      backoffMinMs: options.retryMinMs ?? 100,
      backoffMaxMs: options.retryMaxMs ?? 10_000,
    });
  }

  /** Connects to HAProxy. Nothing is sent until beginSync(). */
  start(): void {
    this.#transport.on("connect", this.#onConnect);
    this.#runner.start();
    this.#transport.start();
  }

  /** The desired state is complete (both initial lists arrived): sync from now on. */
  beginSync(): void {
    this.#syncing = true;
    this.requestFullSync();
  }

  async stop(): Promise<void> {
    this.#syncing = false;
    this.#transport.off("connect", this.#onConnect);
    this.#reapCancel?.();
    await this.#runner.stop();
    await this.#transport.close();
  }

  setBackend(backend: Backend): void {
    const endpoints = backend.endpoints.filter((endpoint) => {
      const problem = endpointProblem(endpoint);
      if (problem) this.emit("invalid", backend.name, endpoint, problem);
      return problem === undefined;
    });
    if (!this.#desired.get(backend.name) && !this.#applied.has(backend.name)) this.#noteMissing(backend.name);
    this.#desired.set(endpoints.length === backend.endpoints.length ? backend : { ...backend, endpoints }, this.#clock.now());
    this.#runner.run();
  }

  /** Forgets a backend: its slots go to maint until a reload removes it. */
  deleteBackend(name: string): void {
    this.#missing.delete(name);
    this.#desired.delete(name, this.#clock.now());
    if (!this.#applied.has(name)) this.#desired.settle(name); // HAProxy never had it: nothing to do
    this.#runner.run();
  }

  /** Re-read HAProxy's state and repair every backend at the next sync. */
  requestFullSync(): void {
    this.#needFullSync = true;
    this.#runner.run();
  }

  /** Resolves when everything desired so far is in HAProxy, reloads included (waits through retries). */
  whenSynced(): Promise<void> {
    if (this.#isClean()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** For /healthz: connected, how long the oldest change not yet in HAProxy has waited, last time all was. */
  health(): { readonly connected: boolean; readonly pendingMs: number; readonly lastSynced: Date | undefined } {
    const since = this.#desired.pendingSince();
    return { connected: this.#transport.connected, pendingMs: since === undefined ? 0 : this.#clock.now() - since, lastSynced: this.#lastSynced };
  }

  status(): BackendStatus[] {
    return this.#applied.names().map((name) => this.statusOf(name));
  }

  statusOf(name: string): BackendStatus {
    const slots = this.#applied.slots(name).length;
    const dynamic = this.#applied.dynamic(name).size;
    return { name, slots, dynamic, used: this.#assignment.get(name)?.size ?? 0, overflow: this.#overflow.get(name)?.size ?? 0 };
  }

  /** What HAProxy has, per slot, as last confirmed. */
  applied(name: string): ReadonlyMap<number, AppliedSlot> | undefined {
    return this.#applied.has(name) ? this.#applied.bySlot(name) : undefined;
  }

  readonly #onConnect = (): void => {
    this.#failedKey = undefined; // a new connection may be a new HAProxy: try again what failed
    this.#needFullSync = true;
    this.#runner.cancelBackoff();
    this.#runner.run();
  };

  async #sync(): Promise<RunResult> {
    if (!this.#syncing || !this.#transport.connected) return "done"; // a connect runs us again
    const started = this.#clock.now();
    const { configSyncPeriodMs = 60_000 } = this.#options;
    const full = this.#needFullSync || (configSyncPeriodMs > 0 && started - this.#lastFullSync >= configSyncPeriodMs);
    if (full && (await this.#readState()) === "failed") return "failed";
    if (this.#needFullSync) return "done"; // interrupted: the reconnect runs us again
    const reload = this.#reloadNeeded();
    const wait = reload ? this.#lastReload + (this.#options.reload?.minReloadPeriodMs ?? 2_000) - started : 0;
    if (reload && wait <= 0) return await this.#reloadNow(reload, started);
    if (reload) this.#runner.runAfter(wait); // endpoint changes keep flowing meanwhile
    return await this.#flush(full, started);
  }

  /** After each run: if nothing waits any more, that is the moment everything was in HAProxy. */
  #afterRun(): void {
    if (!this.#isClean()) return;
    this.#lastSynced = new Date(this.#clock.wallNow());
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  /** Replaces the applied picture and the slot assignment with HAProxy's own state. */
  async #readState(): Promise<RunResult> {
    const [state, env] = await this.#transport.executeAll([showServersState(), showEnv(STRUCTURE_ENV)]);
    const failure = [state, env].find((result) => !result!.ok);
    if (failure && !failure.ok) {
      this.#needFullSync = true;
      if (isInterruption(failure.error)) return "done";
      this.#log.error(`cannot read HAProxy's state: ${failure.error.message}`);
      return "failed";
    }
    const records = parseServersState(state?.ok ? state.reply : "");
    const running = parseShowEnv(STRUCTURE_ENV, env?.ok ? env.reply : "");
    // Another structure runs: what it refused before (add server) may work now.
    if (running !== this.#running) this.#noDynamic.clear();
    this.#running = running;
    this.#applied = AppliedState.fromRecords(records);
    this.#assignment.clear();
    for (const name of this.#applied.names()) this.#assignment.set(name, this.#applied.assignment(name));
    this.#missing.clear();
    for (const name of this.#desired.names()) if (!this.#applied.has(name)) this.#noteMissing(name);
    this.#desired.markDirty(this.#applied.names());
    this.#desired.markDirty(this.#desired.names());
    this.#needFullSync = false;
    this.#lastFullSync = this.#clock.now();
    return "done";
  }

  /** Whether the running configuration must change, and why; undefined also when that one was refused. */
  #reloadNeeded(): ReloadWanted | undefined {
    if (!this.#options.reload) return undefined;
    const structure = this.#desired.structure();
    const growth = [...this.#overflow.keys()].sort();
    const missing = [...this.#missing].sort();
    const reasons: string[] = [];
    if (structure !== this.#running) {
      const why = this.#desired.reasons();
      reasons.push(...(why.length > 0 ? why : ["the running configuration is not the cluster's"]));
    } else if (missing.length > 0) reasons.push(`${missing.join(", ")} not in HAProxy's configuration`);
    if (growth.length > 0) reasons.push(`${growth.join(", ")} need more slots than their templates have`);
    if (reasons.length === 0) {
      this.#desired.clearReasons();
      return undefined;
    }
    const key = JSON.stringify([structure, missing, growth.map((name) => [name, this.#desired.get(name)?.endpoints.length])]);
    if (key === this.#refusedKey || key === this.#failedKey) return undefined;
    const kind = structure === this.#running && missing.length === 0 ? "slots" : "structural";
    return { reason: reasons.join("; "), kind, key };
  }

  /** A reload: the configuration rendered from the slot assignment, then the runtime socket moved to the new worker. */
  async #reloadNow(want: ReloadWanted, started: number): Promise<RunResult> {
    const { reloader, render } = this.#options.reload!;
    const layout = this.#desired.backends().map((backend) => layoutBackend(backend, this.#assignment.get(backend.name)));
    try {
      const worker = await reloader.reload(renderConfig(layout, render));
      this.#lastReload = this.#clock.now();
      await switchToWorker(this.#transport, worker, this.#clock);
    } catch (error) {
      this.#lastReload = this.#clock.now();
      const refused = isKubeHaproxyError(error, "E_CONFIG_INVALID") || isKubeHaproxyError(error, "E_INVALID_IDENTIFIER");
      if (refused) this.#refusedKey = want.key;
      else this.#failedKey = want.key;
      this.#log.error(`HAProxy not reloaded (${want.reason}); the running configuration stays until the cluster changes: ${(error as Error).message}`);
      if (refused) this.emit("reloadRefused", isKubeHaproxyError(error) ? (error.reply ?? error.message) : String(error));
      else this.emit("reloadFailed", (error as Error).message);
      // What only that configuration would have served does not count as waiting any more.
      for (const name of this.#missing) this.#desired.settle(name);
      this.#runner.run();
      return "done";
    }
    this.#refusedKey = this.#failedKey = undefined;
    this.#desired.clearReasons();
    this.#overflow.clear();
    const durationMs = this.#clock.now() - started;
    this.#log.info(`reloaded HAProxy in ${Math.round(durationMs)} ms: ${want.reason}`);
    this.emit("reloaded", want.reason, durationMs, want.kind);
    this.requestFullSync();
    return "done";
  }

  async #flush(full: boolean, started: number): Promise<RunResult> {
    const names = new Set(this.#desired.takeDirty());
    if (this.#reapDue) for (const name of this.#deletes) names.add(name);
    this.#reapDue = false;
    const outcome = await execute(this.#transport, this.#plans(names), {
      applied: (planned) => this.#record(planned),
      refused: (_planned, command, error) => this.emit("failed", command, error.message),
    });
    for (const name of outcome.busyDeletes) this.#deletes.add(name);
    if (outcome.busyDeletes.size > 0) this.#scheduleReap(this.#options.deleteRetryMs ?? 2_000);
    for (const name of outcome.notDynamic) this.#noDynamic.add(name);
    if (outcome.interrupted || outcome.failed > 0) this.#needFullSync = true;
    if (outcome.failed > 0) {
      this.#log.warn(`${outcome.failed} of ${outcome.answered} runtime commands failed (first: ${outcome.firstError}); a full sync follows`);
    }
    const at = this.#clock.wallNow();
    for (const name of names) {
      if (outcome.unconfirmed.has(name) || this.#missing.has(name) || !this.#desired.isPending(name)) continue;
      this.emit("applied", name, this.#desired.settle(name), at);
    }
    const durationMs = this.#clock.now() - started;
    this.emit("flushed", { full, backends: names.size, commands: outcome.answered, failed: outcome.failed, durationMs });
    if (this.#reloadNeeded()) this.#runner.run(); // e.g. a backend that must grow by reload
    return outcome.failed > 0 ? "failed" : "done";
  }

  /** Plans each backend when the executor asks for it: one backend's commands at a time. */
  *#plans(names: Iterable<string>): Generator<PlannedChange[]> {
    for (const name of names) {
      if (!this.#applied.has(name)) continue; // missing: comes with the reload
      const backend = this.#desired.get(name);
      const plan = planBackendSync({
        endpoints: backend?.endpoints ?? [],
        previous: this.#assignment.get(name) ?? new Map(),
        slots: this.#applied.slots(name),
        applied: this.#applied.bySlot(name),
        dynamic: this.#applied.dynamic(name),
        growable: backend !== undefined && takesDynamicServers(backend.algorithm) && !this.#noDynamic.has(name),
      });
      this.#assignment.set(name, plan.assignment);
      this.#noteOverflow(name, plan.overflow);
      if (!plan.changes.some((change) => change.kind === "del")) this.#deletes.delete(name);
      yield plan.changes.map((change) => ({ backend: name, change, dynamic: plan.dynamic.has(change.slot) }));
    }
  }

  /** A change HAProxy confirmed. A dynamic server just parked in maint goes to the reaper at once. */
  #record({ backend, change }: PlannedChange): void {
    this.#applied.record(backend, change);
    if (change.kind === "state" && change.state === "maint" && this.#applied.dynamic(backend).has(change.slot)) {
      this.#deletes.add(backend);
      this.#scheduleReap(0);
    }
  }

  #scheduleReap(ms: number): void {
    const at = this.#clock.now() + ms;
    if (this.#reapCancel && this.#reapAt <= at) return;
    this.#reapCancel?.();
    this.#reapAt = at;
    this.#reapCancel = this.#clock.schedule(() => {
      this.#reapCancel = undefined;
      this.#reapAt = Infinity;
      this.#reapDue = true;
      this.#runner.run();
    }, ms);
  }

  /** Reports over-capacity endpoints once each; forgets those that fit again. */
  #noteOverflow(name: string, keys: readonly string[]): void {
    if (keys.length === 0) {
      this.#overflow.delete(name);
      return;
    }
    const reported = this.#overflow.get(name) ?? new Set<string>();
    const fresh = keys.filter((key) => !reported.has(key));
    this.#overflow.set(name, new Set(keys));
    if (fresh.length > 0) this.emit("overflow", name, fresh);
  }

  #noteMissing(name: string): void {
    if (this.#missing.has(name)) return;
    this.#missing.add(name);
    this.emit("missing", name);
    // Without a reload path nothing will ever add it: its change does not wait.
    if (!this.#options.reload) this.#desired.settle(name);
  }

  /** Nothing waits: no change, no full sync, no reload, no run in progress. */
  #isClean(): boolean {
    if (!this.#syncing || this.#desired.pending > 0 || this.#desired.dirty > 0 || this.#needFullSync || this.#runner.running) return false;
    return this.#reloadNeeded() === undefined;
  }
}

function isInterruption(error: { readonly code: string }): boolean {
  return error.code === "E_CONNECTION_CLOSED" || error.code === "E_NOT_CONNECTED";
}

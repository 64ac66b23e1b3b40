// The data plane: the one owner of what HAProxy runs. It holds the runtime connection, the
// applied picture (only what HAProxy confirmed), the slot assignment and the reload path; one
// runner decides when it syncs, and each sync is, in this order:
//
//   full    (on connect, after a failure or reload, every --config-sync-period)
//           show servers state + show env KUBE_HAPROXY_STRUCTURE ─► applied picture, running structure
//   reload  the running worker's structure is not the desired one, a desired backend is missing,
//           or one must grow by reload ─► render from the slot assignment ─► Reloader ─► new worker
//           (pre-flight, on a full sync or a structural change: a Service port whose new bind the
//           node refuses is left out of what is rendered, and is not a change that waits)
//   flush   dirty backends ─► planner ─► executor ─► replies ─► applied picture
//
// Nothing that changes HAProxy is sent before beginSync(): both initial lists are in, so its
// slots are never emptied for a desired state not yet known. Its state is read ahead meanwhile
// (the read changes nothing): at 160,000 slots HAProxy takes ~0.6 s to write it, time the lists
// take anyway. Nothing is sent between that read and the first flush, so the first flush plans
// from it as from a read made at that moment; a reconnect in between reads again. Dynamic servers that still have connections wait
// in the reaper, on their own timer, outside health and whenSynced.

import { EventEmitter } from "node:events";
import { bindKey, proxiesThatCannotBind, unbindable, type BindProbe } from "./bind-check.ts";
import { takesDynamicServers } from "../haproxy/algorithms.ts";
import type { Logger } from "../log.ts";
import { endpointProblem, structureOf, type Backend } from "../model.ts";
import { AppliedState } from "./applied.ts";
import { DesiredState } from "./desired.ts";
import { execute, readHaproxyState, type PlannedChange, type Transport } from "./executor.ts";
import { LocalPool } from "./local.ts";
import { layoutBackend, planBackendSync, type AppliedSlot } from "./planner.ts";
import type { BackendStatus, DataplaneEvents, DataplaneOptions } from "./options.ts";
import { Reaper } from "./reaper.ts";
import { ReloadPath, type ReloadWanted } from "./reload.ts";
import { Runner, systemClock, type Clock, type RunResult } from "./runner.ts";
import type { SlotAssignment } from "./slots.ts";

export class Dataplane extends EventEmitter<DataplaneEvents> {
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
  readonly #reload: ReloadPath | undefined;
  // Desired backends left out of the configuration: a bind the node refuses. Name → address and why.
  #unbindable = new Map<string, string>();
  // Those HAProxy itself refused to bind (2.8+'s ALERT lines), which our probe did not see: never
  // tried again with the same structure (no reload loop: every reload reconnects), only once that
  // Service port changes. Name → its structureOf then, and HAProxy's line.
  readonly #refusedBinds = new Map<string, { readonly structure: string; readonly why: string }>();
  // The desired structure the pre-flight last ran for.
  #probedFor: string | undefined;
  // Binds (address:port) of the configuration this process last loaded; undefined before the first.
  #held: Set<string> | undefined;
  // The structure hash the running worker reports (show env); undefined when it has none.
  #running: string | undefined;
  readonly #reaper: Reaper;
  #needFullSync = true;
  // HAProxy's state was read before beginSync() on this connection, and nothing was sent since:
  // the first sync counts as full without reading again.
  #readAhead = false;
  #lastFullSync = -Infinity;
  #syncing = false;
  #waiters: (() => void)[] = [];
  // Wall-clock ms; a Date only when health() asks.
  #lastSynced: number | undefined;
  // Local mode: Service ports claim pool backends; the desired state holds the pool backends.
  readonly #local: LocalPool | undefined;

  constructor(options: DataplaneOptions) {
    super();
    this.#options = options;
    this.#transport = options.transport;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
    const reload = options.reload;
    this.#reload = reload && new ReloadPath({ ...reload, clock: this.#clock });
    this.#local = options.local && new LocalPool(options.local);
    this.#desired = new DesiredState(this.#clock.wallNow(), (backends) => this.#reload?.hash(backends) ?? "");
    this.#reaper = new Reaper(this.#clock, () => this.#runner.run());
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
    if (!this.#readAhead) this.#needFullSync = true;
    this.#runner.run();
  }

  async stop(): Promise<void> {
    this.#syncing = false;
    this.#transport.off("connect", this.#onConnect);
    this.#reaper.stop();
    await this.#runner.stop();
    await this.#transport.close();
  }

  setBackend(backend: Backend): void {
    const endpoints = backend.endpoints.filter((endpoint) => {
      const problem = endpointProblem(endpoint);
      if (problem) this.emit("invalid", backend.name, endpoint, problem);
      return problem === undefined;
    });
    const valid = endpoints.length === backend.endpoints.length ? backend : { ...backend, endpoints };
    if (this.#local) this.#local.setService(valid);
    else this.#setDesired(valid);
    this.#runner.run();
  }

  #setDesired(backend: Backend): void {
    const known = Number.isFinite(this.#lastFullSync); // HAProxy's state was read: a new name may be missing
    if (known && !this.#desired.get(backend.name) && !this.#applied.has(backend.name)) this.#noteMissing(backend.name);
    this.#desired.set(backend, this.#clock.now());
  }

  /** Forgets a backend: its slots go to maint until a reload removes it (local mode: its pool backend is freed). */
  deleteBackend(name: string): void {
    if (this.#local) {
      this.#local.deleteService(name);
      this.#runner.run();
      return;
    }
    this.#missing.delete(name);
    this.#unbindable.delete(name);
    this.#refusedBinds.delete(name);
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
    return { connected: this.#transport.connected, pendingMs: since === undefined ? 0 : this.#clock.now() - since, lastSynced: this.#lastSynced === undefined ? undefined : new Date(this.#lastSynced) };
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
    this.#reload?.newConnection();
    this.#needFullSync = true;
    this.#readAhead = false;
    this.#runner.cancelBackoff();
    this.#runner.run();
  };

  async #sync(): Promise<RunResult> {
    if (!this.#transport.connected) return "done"; // a connect runs us again
    if (!this.#syncing) return this.#needFullSync ? this.#readState() : "done";
    const started = this.#clock.now();
    const { configSyncPeriodMs = 60_000 } = this.#options;
    const readAhead = this.#readAhead;
    this.#readAhead = false;
    const full = readAhead || this.#needFullSync || (configSyncPeriodMs > 0 && started - this.#lastFullSync >= configSyncPeriodMs);
    if (full && !readAhead && (await this.#readState()) === "failed") return "failed";
    if (this.#needFullSync) return "done"; // interrupted: the reconnect runs us again
    if (this.#local && (await this.#captureStep(() => this.#beforeFlush(this.#local!, full))) === "failed") return "failed";
    const probing = this.#preflight(full);
    if (probing) await probing;
    const reload = this.#reloadNeeded();
    if (reload && this.#reload!.waitMs() === 0) return await this.#reloadNow(reload, started);
    const flushed = await this.#flush(full, started); // endpoint changes flow while a reload waits
    if (this.#local && (await this.#captureStep(() => this.#local!.after((name) => this.#serving(name)))) === "failed") return "failed";
    return flushed;
  }

  /** Local mode, before a flush: HAProxy's pool and the kernel map read on a full sync, claims planned, released elements out. */
  async #beforeFlush(local: LocalPool, full: boolean): Promise<void> {
    if (full) await local.read(this.#applied.names());
    const { backends, unclaimed } = await local.before();
    if (unclaimed.length > 0) this.#log.error(`no pool backend for ${unclaimed.join(", ")} even after growing the pool`);
    for (const message of local.refusals()) this.#log.warn(message);
    for (const backend of backends) this.#setDesired(backend);
  }

  /** A capture change that failed: the kernel is read again after the backoff. */
  async #captureStep(step: () => Promise<void>): Promise<RunResult> {
    try {
      await step();
      return "done";
    } catch (error) {
      this.#log.error(`capture not updated: ${(error as Error).message}; read again after a backoff`);
      this.emit("captureFailed", (error as Error).message);
      this.#needFullSync = true;
      return "failed";
    }
  }

  /** HAProxy has this backend with every desired change confirmed. */
  #serving(name: string): boolean {
    return this.#applied.has(name) && !this.#missing.has(name) && !this.#desired.isPending(name) && !this.#desired.isDirty(name);
  }

  /** Asks for a run when a reload is wanted: now, or when --min-reload-period allows. */
  #scheduleReload(): void {
    if (this.#reloadNeeded()) this.#runner.runAfter(this.#reload!.waitMs());
    // No reload will bring the missing backends (none configured, or it was refused or failed):
    // their changes do not wait, for health as for whenSynced.
    else for (const name of this.#missing) this.#desired.settle(name);
    for (const name of this.#unbindable.keys()) this.#desired.settle(name);
  }

  /**
   * Before a reload can be decided: on a full sync or a structural change, every bind the running
   * worker does not hold is tried (reload.probe); a Service port that cannot bind is left out.
   * Local mode's pool backends are never left out (their claims assume them); a refused reload
   * still tells (#noteRefusedBinds is not for them either). Undefined when there is nothing to
   * try: a change of endpoints only does not wait for a promise.
   */
  #preflight(full: boolean): Promise<void> | undefined {
    const probe = this.#options.reload?.probe;
    if (!probe || this.#local) return undefined;
    const structure = this.#desired.structure();
    if (!full && structure === this.#probedFor) return undefined;
    this.#probedFor = structure;
    return this.#probe(probe);
  }

  /** Tries the binds the running worker does not hold; leaves out the Service ports that cannot bind. */
  async #probe(probe: BindProbe): Promise<void> {
    for (const [name, refused] of this.#refusedBinds) {
      const backend = this.#desired.get(name);
      if (!backend || structureOf(backend) !== refused.structure) this.#refusedBinds.delete(name);
    }
    const found = await unbindable(this.#desired.backends().filter((backend) => !this.#refusedBinds.has(backend.name)), this.#heldBinds(), probe);
    for (const [name, { why }] of this.#refusedBinds) found.set(name, why);
    this.#leaveOut(found);
  }

  /** 2.8+: a reload that failed because HAProxy could not bind a proxy: that Service port is left out. */
  #noteRefusedBinds(message: string): void {
    if (this.#local) return;
    const found = new Map(this.#unbindable);
    for (const [name, line] of proxiesThatCannotBind(message)) {
      const backend = this.#desired.get(name);
      if (!backend) continue;
      this.#refusedBinds.set(name, { structure: structureOf(backend), why: line });
      found.set(name, line);
    }
    this.#leaveOut(found);
  }

  /** The backends to leave out from now on; each reported once per time it becomes one. */
  #leaveOut(found: Map<string, string>): void {
    for (const [name, why] of found) {
      if (!this.#unbindable.has(name)) this.emit("unbindable", name, this.#desired.get(name)?.servicePort ?? name, why);
    }
    this.#unbindable = found;
    for (const name of found.keys()) this.#desired.settle(name); // no reload will bring it: not a change that waits
  }

  /** What the running worker listens on: ours since our last reload, else its backends' desired binds. */
  #heldBinds(): ReadonlySet<string> {
    if (this.#held) return this.#held;
    return new Set(this.#desired.backends().filter((backend) => this.#applied.has(backend.name)).flatMap((backend) => backend.binds.map(bindKey)));
  }

  /** The desired backends that go into a configuration: all but those left out. */
  #rendered(): Backend[] {
    const backends = this.#desired.backends();
    return this.#unbindable.size === 0 ? backends : backends.filter((backend) => !this.#unbindable.has(backend.name));
  }

  /** After each run: if nothing waits any more, that is the moment everything was in HAProxy. */
  #afterRun(): void {
    if (!this.#isClean()) return;
    this.#lastSynced = this.#clock.wallNow();
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  /** Replaces the applied picture and the slot assignment with HAProxy's own state. */
  async #readState(): Promise<RunResult> {
    const ahead = !this.#syncing;
    const read = await readHaproxyState(this.#transport);
    if (!read.ok) {
      this.#needFullSync = true;
      if (read.interrupted) return "done";
      this.#log.error(`cannot read HAProxy's state: ${read.error.message}`);
      return "failed";
    }
    // Another structure runs: what it refused before (add server) may work now.
    if (read.structure !== this.#running) this.#noDynamic.clear();
    this.#running = read.structure;
    this.#applied = read.applied;
    this.emit("serversDown", read.down);
    this.#assignment.clear();
    for (const name of this.#applied.names()) this.#assignment.set(name, this.#applied.assignment(name));
    this.#missing.clear();
    for (const name of this.#desired.names()) if (!this.#applied.has(name)) this.#noteMissing(name);
    this.#desired.markDirty(this.#applied.names());
    this.#desired.markDirty(this.#desired.names());
    this.#needFullSync = false;
    this.#readAhead = ahead;
    this.#lastFullSync = this.#clock.now();
    return "done";
  }

  /** Whether the running configuration must change, and why; undefined also when that one was refused. */
  #reloadNeeded(): ReloadWanted | undefined {
    if (!this.#reload) return undefined;
    // The common case, on every run: what runs is what is desired, nothing missing or overflowing.
    if (this.#overflow.size === 0 && this.#missing.size === 0 && this.#unbindable.size === 0 && this.#desired.structure() === this.#running) {
      this.#desired.clearReasons();
      return undefined;
    }
    const growth = [...this.#overflow.keys()].sort().map((name) => [name, this.#desired.get(name)?.endpoints.length ?? 0] as const);
    const missing = [...this.#missing].filter((name) => !this.#unbindable.has(name)).sort();
    const structure = this.#unbindable.size === 0 ? this.#desired.structure() : this.#reload.hash(this.#rendered());
    const want = this.#reload.wanted({ structure, running: this.#running, reasons: this.#desired.reasons(), missing, growth });
    if (want === undefined) this.#desired.clearReasons(); // what runs is what is desired
    return typeof want === "object" ? want : undefined;
  }

  /** A reload: the configuration rendered from the slot assignment, then the runtime socket moved to the new worker. */
  async #reloadNow(want: ReloadWanted, started: number): Promise<RunResult> {
    const layout = this.#rendered().map((backend) => layoutBackend(backend, this.#assignment.get(backend.name)));
    const outcome = await this.#reload!.reload(want, layout, this.#transport);
    if (!outcome.ok) {
      const { error, refused } = outcome;
      this.#log.error(`HAProxy not reloaded (${want.reason}); the running configuration stays until the cluster changes: ${error.message}`);
      if (refused) this.emit("reloadRefused", error.reply ?? error.message);
      else {
        this.emit("reloadFailed", error.message);
        this.#noteRefusedBinds(error.message);
      }
      this.#runner.run(); // the endpoint changes that waited behind it
      return "done";
    }
    this.#desired.clearReasons();
    this.#overflow.clear();
    this.#held = new Set(layout.flatMap(({ backend }) => backend.binds.map(bindKey)));
    const durationMs = this.#clock.now() - started;
    this.#log.info(`reloaded HAProxy in ${Math.round(durationMs)} ms: ${want.reason}`);
    this.emit("reloaded", want.reason, durationMs, want.kind);
    this.requestFullSync();
    return "done";
  }

  async #flush(full: boolean, started: number): Promise<RunResult> {
    const takenAt = this.#clock.now();
    const names = this.#desired.takeDirty();
    for (const name of this.#reaper.takeDue()) names.add(name);
    const outcome = await execute(this.#transport, this.#plans(names), {
      applied: (planned) => this.#record(planned),
      refused: (_planned, command, error) => this.emit("failed", command, error.message),
    });
    for (const name of outcome.busyDeletes) this.#reaper.add(name, this.#options.deleteRetryMs ?? 2_000);
    for (const name of outcome.notDynamic) this.#noDynamic.add(name);
    if (outcome.interrupted || outcome.failed > 0) this.#needFullSync = true;
    if (outcome.failed > 0) {
      this.#log.warn(`${outcome.failed} of ${outcome.answered} runtime commands failed (first: ${outcome.firstError}); a full sync follows`);
    }
    const at = this.#clock.wallNow();
    for (const name of names) {
      if (outcome.unconfirmed.has(name) || this.#missing.has(name) || !this.#desired.isPending(name)) continue;
      // Changed again while this flush ran (its plan is pulled as replies come back, so it may
      // hold either version): told applied now and again by the next flush, whose plan has the
      // newer change. Reporting only now would tell waiters about a state not in HAProxy yet.
      const triggerTime = this.#desired.isDirty(name) ? this.#desired.settleOlder(name, takenAt) : this.#desired.settle(name);
      this.emit("applied", name, triggerTime, at);
    }
    const durationMs = this.#clock.now() - started;
    this.emit("flushed", { full, backends: names.size, commands: outcome.answered, failed: outcome.failed, durationMs });
    this.#scheduleReload(); // e.g. a backend that must grow by reload
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
        checked: backend?.healthCheck !== undefined,
      });
      this.#assignment.set(name, plan.assignment);
      this.#noteOverflow(name, plan.overflow);
      if (!plan.changes.some((change) => change.kind === "del")) this.#reaper.forget(name);
      // One object of one shape per change (no spread of a conditional object): this runs per change.
      const healthCheck = backend?.healthCheck;
      const planned = new Array<PlannedChange>(plan.changes.length);
      for (let i = 0; i < planned.length; i++) {
        const change = plan.changes[i]!;
        planned[i] = { backend: name, change, dynamic: plan.dynamic.has(change.slot), healthCheck };
      }
      yield planned;
    }
  }

  /** A change HAProxy confirmed. A dynamic server just parked in maint goes to the reaper at once. */
  #record({ backend, change }: PlannedChange): void {
    this.#applied.record(backend, change);
    if (change.kind === "state" && change.state === "maint" && this.#applied.dynamic(backend).has(change.slot)) this.#reaper.add(backend, 0);
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
  }

  /** Nothing waits: no change, no full sync, no reload, no run in progress. */
  #isClean(): boolean {
    if (!this.#syncing || this.#desired.pending > 0 || this.#desired.dirty > 0 || this.#needFullSync || this.#runner.running) return false;
    if (this.#local && !this.#local.settled) return false;
    return this.#reloadNeeded() === undefined;
  }
}

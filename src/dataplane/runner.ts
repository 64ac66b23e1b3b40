// When the data plane syncs: kube-proxy's BoundedFrequencyRunner, plus the retry backoff that
// kube-proxy leaves to its callers, owned here and nowhere else.
//
//   run()            as soon as allowed: not before the last start + minInterval, not in a backoff
//   runAfter(ms)     at the latest ms from now (as allowed): a delayed reload, the reaper's next try
//   cancelBackoff()  what failed may work now (a new connection): the next run goes at once
//   maxInterval      a run at least this often, asked for or not (the periodic full sync)
//   a failed run     the next one waits backoffMin, doubling up to backoffMax; a good run resets it
//
// One run at a time; whatever is asked during a run becomes one run after it. Time comes from
// an injected Clock, so tests drive it by hand.

/** Cancels what Clock.schedule scheduled. */
export type Cancel = () => void;

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Milliseconds since the epoch (trigger times and timestamps are wall-clock). */
  wallNow(): number;
  /** Calls `fn` after `ms`; 0 means once the current synchronous work is done. */
  schedule(fn: () => void, ms: number): Cancel;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  schedule(fn, ms) {
    // A microtask, not setTimeout(0) (clamped to 1 ms) nor setImmediate (after the rest of the
    // I/O): the hot path runs a flush this way, and the events of one watch chunk, delivered
    // synchronously one after the other, still join it.
    if (ms <= 0) {
      let live = true;
      queueMicrotask(() => live && fn());
      return () => void (live = false);
    }
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

export type RunResult = "done" | "failed";

export interface RunnerOptions {
  readonly run: () => Promise<RunResult>;
  /** A run that throws counts as failed; this hears why. */
  readonly onError: (error: unknown) => void;
  /** Called after each run, once it no longer counts as running. */
  readonly afterRun?: () => void;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Least time between two starts (--min-sync-period). @default 0 */
  readonly minIntervalMs?: number;
  /** Most time between two starts (--config-sync-period); 0: no periodic run. @default 0 */
  readonly maxIntervalMs?: number;
  /** @default 100 */
  readonly backoffMinMs?: number;
  /** @default 10000 */
  readonly backoffMaxMs?: number;
}

export class Runner {
  readonly #options: RunnerOptions;
  readonly #clock: Clock;
  // The earliest time a run was asked for; undefined when none is (maxInterval may still run one).
  #due: number | undefined;
  // True from a run's start until it ended; #ended resolves then (stop() waits for it).
  #running = false;
  #ended: Promise<void> | undefined;
  // When the last run started: min and max intervals count from it (max from start() before any run).
  #lastStart = -Infinity;
  #startedAt = -Infinity;
  #backoffMs = 0;
  // No run starts before this: the backoff after a failed run.
  #backoffUntil = -Infinity;
  // The timer for the run asked for (#due) and when it fires.
  #cancel: Cancel | undefined;
  #timerAt = Infinity;
  // The max-interval timer. Not moved by every run (a timer armed and cleared per change costs
  // the hot path): when it fires early, because a run started meanwhile, it re-arms for the rest.
  #cancelPeriodic: Cancel | undefined;
  #started = false;

  constructor(options: RunnerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = this.#clock.now();
    this.#armPeriodic(this.#options.maxIntervalMs ?? 0);
  }

  /** No run starts after this; resolves once the one running (if any) ended. */
  async stop(): Promise<void> {
    this.#started = false;
    this.#disarm();
    this.#cancelPeriodic?.();
    this.#cancelPeriodic = undefined;
    await this.#ended;
  }

  /** True while a run is in progress. */
  get running(): boolean {
    return this.#running;
  }

  run(): void {
    this.#ask(this.#clock.now());
  }

  runAfter(ms: number): void {
    this.#ask(this.#clock.now() + Math.max(0, ms));
  }

  cancelBackoff(): void {
    this.#backoffMs = 0;
    this.#backoffUntil = -Infinity;
    this.#disarm();
    this.#arm();
  }

  #ask(at: number): void {
    this.#due = Math.min(this.#due ?? Infinity, at);
    this.#arm();
  }

  /** Arms the timer for the run asked for, as allowed; a run in progress re-arms when it ends. */
  #arm(): void {
    if (!this.#started || this.#running || this.#due === undefined) return;
    const at = Math.max(this.#due, this.#lastStart + (this.#options.minIntervalMs ?? 0), this.#backoffUntil);
    if (this.#cancel && this.#timerAt <= at) return;
    this.#disarm();
    this.#timerAt = at;
    this.#cancel = this.#clock.schedule(() => this.#fire(), at - this.#clock.now());
  }

  #disarm(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    this.#timerAt = Infinity;
  }

  /** The max interval: a run once none started for that long (asked as any other, so backoff applies). */
  #armPeriodic(ms: number): void {
    const { maxIntervalMs = 0 } = this.#options;
    if (maxIntervalMs <= 0) return;
    this.#cancelPeriodic = this.#clock.schedule(() => {
      const due = Math.max(this.#lastStart, this.#startedAt) + maxIntervalMs;
      const now = this.#clock.now();
      if (due <= now) this.#ask(now);
      this.#armPeriodic(due <= now ? maxIntervalMs : due - now);
    }, ms);
  }

  #fire(): void {
    this.#cancel = undefined;
    this.#timerAt = Infinity;
    if (!this.#started || this.#running) return;
    this.#due = undefined;
    this.#lastStart = this.#clock.now();
    // Set before the run begins, so asks made from inside it wait for its end.
    this.#running = true;
    let run: Promise<RunResult>;
    try {
      run = this.#options.run();
    } catch (error) {
      run = Promise.reject(error);
    }
    this.#ended = run.then(
      (result) => this.#ran(result),
      (error: unknown) => {
        this.#options.onError(error);
        this.#ran("failed");
      },
    );
  }

  /** A run ended: the backoff after a failure (reset by a success), then the next run as asked. */
  #ran(result: RunResult): void {
    if (result === "done") {
      this.#backoffMs = 0;
      this.#backoffUntil = -Infinity;
    } else {
      const { backoffMinMs = 100, backoffMaxMs = 10_000 } = this.#options;
      this.#backoffMs = Math.min(backoffMaxMs, Math.max(backoffMinMs, this.#backoffMs * 2));
      this.#backoffUntil = this.#clock.now() + this.#backoffMs;
      this.#due = Math.min(this.#due ?? Infinity, this.#clock.now());
    }
    this.#running = false;
    this.#ended = undefined;
    this.#arm();
    this.#options.afterRun?.();
  }
}

// The reaper: dynamic servers no longer wanted wait here, parked in maint, until HAProxy deletes
// them (`del server` only works once a server has no connections left). Its own timer, so a
// long-lived connection delays nothing else, and not a pending change: health and whenSynced
// never wait for it.

import type { Cancel, Clock } from "./runner.ts";

export class Reaper {
  readonly #clock: Clock;
  readonly #onDue: () => void;
  // Backends with a dynamic server parked in maint.
  readonly #backends = new Set<string>();
  // The timer fired: the next flush tries their deletes.
  #due = false;
  #cancel: Cancel | undefined;
  #at = Infinity;

  /** `onDue`: the timer fired; ask for a flush. */
  constructor(clock: Clock, onDue: () => void) {
    this.#clock = clock;
    this.#onDue = onDue;
  }

  /** `backend` has a server to delete: try in `ms` (0: at the next flush after this one). */
  add(backend: string, ms: number): void {
    this.#backends.add(backend);
    const at = this.#clock.now() + ms;
    if (this.#cancel && this.#at <= at) return;
    this.#cancel?.();
    this.#at = at;
    this.#cancel = this.#clock.schedule(() => {
      this.#cancel = undefined;
      this.#at = Infinity;
      this.#due = true;
      this.#onDue();
    }, ms);
  }

  /** Nothing left to delete in `backend`. */
  forget(backend: string): void {
    this.#backends.delete(backend);
  }

  /** The backends whose deletes are due now. */
  takeDue(): string[] {
    if (!this.#due) return [];
    this.#due = false;
    return [...this.#backends];
  }

  stop(): void {
    this.#cancel?.();
    this.#cancel = undefined;
  }
}

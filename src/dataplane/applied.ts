// What HAProxy has, per backend and slot: built from `show servers state`, then kept current
// from the replies to our own commands. Pure data, no I/O: the data plane owns one and replaces it
// at every full sync.

import { parseSlotName } from "../haproxy/names.ts";
import { isDown, stateOf, type ServerRecord } from "../haproxy/servers-state.ts";
import { endpointKey } from "../model.ts";
import { applyChange, type AppliedSlot, type SlotChange } from "./planner.ts";

interface AppliedBackend {
  /** Every slot number HAProxy has, ascending: template slots s<N> and dynamic servers d<N>. */
  readonly slots: number[];
  /** Which of those are dynamic servers. */
  readonly dynamic: Set<number>;
  readonly bySlot: Map<number, AppliedSlot>;
}

export class AppliedState {
  readonly #backends = new Map<string, AppliedBackend>();

  /** From `show servers state`; servers whose names are not ours (s<N>, d<N>) are ignored. */
  static fromRecords(records: Iterable<ServerRecord>): AppliedState {
    const builder = AppliedState.builder();
    for (const record of records) builder.add(record);
    return builder.done();
  }

  /**
   * Built one server at a time, as `show servers state` is read (ServersStateReader): the
   * records are not kept, and HAProxy's health verdicts are counted on the way.
   */
  static builder(): { add(record: ServerRecord): void; done(): AppliedState; readonly down: ReadonlyMap<string, number> } {
    const state = new AppliedState();
    const down = new Map<string, number>();
    let name = "";
    let backend: AppliedBackend | undefined;
    return {
      down,
      add(record) {
        if (record.backend !== name || backend === undefined) {
          name = record.backend;
          backend = state.#backends.get(name);
          if (!down.has(name)) down.set(name, 0);
        }
        if (isDown(record)) down.set(name, down.get(name)! + 1);
        const parsed = parseSlotName(record.server);
        if (parsed === undefined) return;
        if (!backend) state.#backends.set(name, (backend = { slots: [], dynamic: new Set(), bySlot: new Map() }));
        backend.bySlot.set(parsed.slot, { ip: record.address, port: record.port, state: stateOf(record) });
        backend.slots.push(parsed.slot);
        if (parsed.dynamic) backend.dynamic.add(parsed.slot);
      },
      done() {
        for (const backend of state.#backends.values()) backend.slots.sort((a, b) => a - b);
        return state;
      },
    };
  }

  has(backend: string): boolean {
    return this.#backends.has(backend);
  }

  names(): string[] {
    return [...this.#backends.keys()].sort();
  }

  slots(backend: string): readonly number[] {
    return this.#backends.get(backend)?.slots ?? [];
  }

  dynamic(backend: string): ReadonlySet<number> {
    return this.#backends.get(backend)?.dynamic ?? new Set();
  }

  bySlot(backend: string): ReadonlyMap<number, AppliedSlot> {
    return this.#backends.get(backend)?.bySlot ?? new Map();
  }

  /**
   * The endpoint → slot assignment HAProxy's slots already express, serving slots first, so a
   * repair after a restart or drift keeps what is served where it is and costs the fewest commands.
   */
  assignment(backend: string): Map<string, number> {
    const assignment = new Map<string, number>();
    const bySlot = this.bySlot(backend);
    for (const pass of ["serving", "maint"] as const) {
      for (const [slot, have] of bySlot) {
        if ((have.state === "maint") !== (pass === "maint") || have.port === 0) continue;
        const key = endpointKey(have);
        if (!assignment.has(key)) assignment.set(key, slot);
      }
    }
    return assignment;
  }

  /** Records a change HAProxy confirmed, `add server` and `del server` included. */
  record(name: string, change: SlotChange): void {
    const backend = this.#backends.get(name);
    if (!backend) return;
    if (change.kind === "add") {
      backend.slots.push(change.slot); // dynamic slot numbers are always above every existing one
      backend.dynamic.add(change.slot);
    } else if (change.kind === "del") {
      backend.slots.splice(backend.slots.indexOf(change.slot), 1);
      backend.dynamic.delete(change.slot);
    }
    const after = applyChange(backend.bySlot.get(change.slot), change);
    if (after) backend.bySlot.set(change.slot, after);
    else backend.bySlot.delete(change.slot);
  }
}

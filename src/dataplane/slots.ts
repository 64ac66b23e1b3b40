// Slot assignment: which template slot (s1…sN) of a backend holds which endpoint.
// An endpoint keeps its slot for as long as it exists, so an unchanged endpoint never
// costs a command; a freed slot is reused by the next new endpoint (lowest number first).

/** endpoint key (ip:port) → slot number, 1-based. */
export type SlotAssignment = ReadonlyMap<string, number>;

export interface AssignResult {
  readonly assignment: Map<string, number>;
  /** Keys that found no free slot, in the order they were wanted. */
  readonly overflow: readonly string[];
}

/**
 * Assigns `wanted` endpoint keys to the backend's `slots` (ascending slot numbers), keeping
 * every key of `previous` that is still wanted in its slot. Pure; O(max slot + wanted).
 */
export function assignSlots(previous: SlotAssignment, wanted: readonly string[], slots: readonly number[]): AssignResult {
  const assignment = new Map<string, number>();
  const top = slots.length === 0 ? 0 : slots[slots.length - 1]!;
  // 0: not a slot of this backend, 1: free, 2: taken.
  const used = scratch(top + 1);
  for (const slot of slots) used[slot] = 1;
  let newcomers: string[] | undefined;
  for (const key of wanted) {
    const slot = previous.get(key);
    if (slot !== undefined && slot <= top && used[slot] === 1 && !assignment.has(key)) {
      assignment.set(key, slot);
      used[slot] = 2;
    } else if (!assignment.has(key)) {
      (newcomers ??= []).push(key);
    }
  }
  const overflow: string[] = [];
  let next = 1;
  for (const key of newcomers ?? []) {
    if (assignment.has(key)) continue; // a duplicate of a newcomer placed just before
    while (next <= top && used[next] !== 1) next++;
    if (next > top) {
      overflow.push(key);
      continue;
    }
    assignment.set(key, next);
    used[next] = 2;
  }
  used.fill(0, 0, top + 1);
  return { assignment, overflow };
}

// One zeroed array for every call (assignSlots leaves it zeroed): a typed array allocated per
// plan, i.e. per backend per change, cost more than the assignment itself.
let shared = new Uint8Array(64);
function scratch(length: number): Uint8Array {
  if (shared.length < length) shared = new Uint8Array(Math.max(length, shared.length * 2));
  return shared;
}

/**
 * How many template slots a backend gets when a configuration is rendered: at least
 * `minSlots`, and room for a quarter more endpoints than it has now, rounded up to a multiple
 * of SLOT_CHUNK so that a count wobbling by a few endpoints renders the same size. Not a power
 * of two any more: that wasted up to half of each large backend (~6-10 KB a slot, README
 * "Sizing"), and a backend that outgrows its slots takes dynamic servers without a reload.
 */
export function slotCapacity(endpoints: number, minSlots: number): number {
  const needed = Math.ceil((endpoints * 5) / 4);
  return needed <= minSlots ? minSlots : Math.ceil(needed / SLOT_CHUNK) * SLOT_CHUNK;
}

const SLOT_CHUNK = 8;

/** Slot numbers 1…n. */
export function slotRange(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

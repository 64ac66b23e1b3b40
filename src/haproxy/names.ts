// Server names inside a backend: template slots s1…sN and dynamic servers d<N>. Backend names
// come from the model (backendName in model.ts).

/** Template slots are s1…sN; servers added at runtime beyond the template are d1, d2, … */
export const SLOT_PREFIX = "s";
export const DYNAMIC_PREFIX = "d";

/** Slot numbers are unique across both kinds: d<N> takes numbers above the template's. */
export function slotName(slot: number, dynamic = false): string {
  return `${dynamic ? DYNAMIC_PREFIX : SLOT_PREFIX}${slot}`;
}

/** The slot a server name stands for, or undefined for a server that is not ours. */
export function parseSlotName(server: string): { readonly slot: number; readonly dynamic: boolean } | undefined {
  const match = /^([sd])([1-9]\d*)$/.exec(server);
  return match ? { slot: Number(match[2]), dynamic: match[1] === DYNAMIC_PREFIX } : undefined;
}

// Server names inside a backend: template slots s1…sN and dynamic servers d<N>. Backend names
// come from the model (backendName in model.ts).

/** Template slots are s1…sN; servers added at runtime beyond the template are d1, d2, … */
export const SLOT_PREFIX = "s";
export const DYNAMIC_PREFIX = "d";

/** Slot numbers are unique across both kinds: d<N> takes numbers above the template's. */
export function slotName(slot: number, dynamic = false): string {
  return `${dynamic ? DYNAMIC_PREFIX : SLOT_PREFIX}${slot}`;
}

/**
 * The slot a server name stands for (`s<N>` or `d<N>`, N from 1 without leading zeros), or
 * undefined for a server that is not ours. Read by character: it runs once per server of
 * every full sync (160,000 at 10,000 Service ports).
 */
export function parseSlotName(server: string): { readonly slot: number; readonly dynamic: boolean } | undefined {
  const kind = server.charCodeAt(0);
  if ((kind !== S && kind !== D) || server.length < 2 || server.length > 16 || server.charCodeAt(1) === ZERO) return undefined;
  let slot = 0;
  for (let i = 1; i < server.length; i++) {
    const digit = server.charCodeAt(i) - ZERO;
    if (digit < 0 || digit > 9) return undefined;
    slot = slot * 10 + digit;
  }
  return { slot, dynamic: kind === D };
}

const S = SLOT_PREFIX.charCodeAt(0);
const D = DYNAMIC_PREFIX.charCodeAt(0);
const ZERO = 48;

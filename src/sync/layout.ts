// From desired backends to backends as a configuration renders them: how many slots each
// gets and which endpoint sits in which slot. Pure. For a reload, pass the engine's current
// assignment so every endpoint stays in the slot HAProxy already serves it from.

import type { RenderedBackend } from "../haproxy/render.ts";
import { endpointKey, type Backend, type Endpoint } from "../model.ts";
import { assignSlots, slotCapacity, slotRange, type SlotAssignment } from "./slots.ts";

export function layoutBackend(backend: Backend, previous: SlotAssignment = new Map()): RenderedBackend {
  const byKey = new Map<string, Endpoint>(backend.endpoints.map((endpoint) => [endpointKey(endpoint), endpoint]));
  let slots = slotCapacity(byKey.size, backend.minSlots);
  // Never shrink below a slot that is in use: the endpoint would move (and lose its connections' server).
  for (const [key, slot] of previous) if (byKey.has(key)) slots = Math.max(slots, slot);
  const { assignment } = assignSlots(previous, [...byKey.keys()], slotRange(slots));
  const filled = new Map<number, Endpoint>();
  for (const [key, slot] of assignment) filled.set(slot, byKey.get(key)!);
  return { backend, slots, filled };
}

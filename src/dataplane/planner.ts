// The planner: what HAProxy has (applied) and what it should have (desired) → which endpoint
// sits in which slot, the fewest slot changes that make them equal, and when slots run out,
// either dynamic servers (the growth policy) or the overflow that only a reload can fix. Also
// the layout a configuration is rendered from. Pure; the executor turns changes into commands.

import type { ServerState } from "../haproxy/commands.ts";
import type { RenderedBackend } from "../haproxy/render.ts";
import { endpointKey, type Backend, type Endpoint } from "../model.ts";
import { assignSlots, slotCapacity, slotRange, type SlotAssignment } from "./slots.ts";

/** What HAProxy has in one slot, from replies or `show servers state`. */
export interface AppliedSlot {
  readonly ip: string;
  readonly port: number;
  readonly state: ServerState;
}

export type SlotChange =
  | { readonly kind: "addr"; readonly slot: number; readonly ip: string; readonly port: number }
  | { readonly kind: "state"; readonly slot: number; readonly state: ServerState }
  /** A dynamic server beyond the template (`add server`); it starts in maint. */
  | { readonly kind: "add"; readonly slot: number; readonly ip: string; readonly port: number }
  /** A dynamic server no longer wanted and already in maint (`del server`). */
  | { readonly kind: "del"; readonly slot: number }
  /** Health checks on for a dynamic server just added (`add server` leaves them off). */
  | { readonly kind: "health"; readonly slot: number };

/**
 * Changes for one backend: arriving and changed endpoints slot by slot, then leaving ones. A
 * new endpoint gets its address first, then its state, so it never serves at an old address.
 * A slot that nothing wants goes to maint and keeps its old address (harmless, and one
 * command instead of two).
 * `slots` lists every slot number the backend has, plus dynamic ones to create (those have no
 * applied entry yet). A dynamic server goes to maint first and is deleted at a later flush,
 * once maint is confirmed, so its connections are never cut by the deletion.
 * In a health-checked backend (`checked`), a slot that gets another address while it serves
 * goes through maint first: that resets HAProxy's check state (measured on 2.6 and 3.4), so the
 * new endpoint does not inherit the old one's DOWN; and a new dynamic server gets its checks
 * switched on before it serves.
 */
export function planBackend(
  slots: Iterable<number>,
  applied: ReadonlyMap<number, AppliedSlot>,
  desired: ReadonlyMap<number, Endpoint>,
  dynamic: ReadonlySet<number> = new Set(),
  checked = false,
): SlotChange[] {
  // Endpoints coming in are planned before endpoints going out: the commands run in order, so
  // when a Service's only pod is replaced, the new one is ready before the old one leaves and
  // no connection arrives while the backend has no server.
  const changes: SlotChange[] = [];
  const leaving: SlotChange[] = [];
  for (const slot of slots) {
    const want = desired.get(slot);
    const have = applied.get(slot);
    if (want === undefined) {
      if (have !== undefined && have.state === "maint") {
        if (dynamic.has(slot)) leaving.push({ kind: "del", slot });
      } else if (have !== undefined || !dynamic.has(slot)) leaving.push({ kind: "state", slot, state: "maint" });
      continue;
    }
    const moved = have !== undefined && (have.ip !== want.ip || have.port !== want.port);
    const resetCheck = checked && moved && have.state !== "maint";
    if (have === undefined && dynamic.has(slot)) {
      changes.push({ kind: "add", slot, ip: want.ip, port: want.port });
      if (checked) changes.push({ kind: "health", slot });
    } else if (have === undefined || moved) {
      if (resetCheck) changes.push({ kind: "state", slot, state: "maint" });
      changes.push({ kind: "addr", slot, ip: want.ip, port: want.port });
    }
    if (have === undefined || have.state !== want.state || resetCheck) changes.push({ kind: "state", slot, state: want.state });
  }
  return changes.concat(leaving);
}

/** The applied picture of a slot after `change` succeeded; undefined once deleted. */
export function applyChange(before: AppliedSlot | undefined, change: SlotChange): AppliedSlot | undefined {
  const base = before ?? { ip: "0.0.0.0", port: 0, state: "maint" as const };
  switch (change.kind) {
    case "addr":
      return { ...base, ip: change.ip, port: change.port };
    case "add":
      return { ip: change.ip, port: change.port, state: "maint" };
    case "state":
      return { ...base, state: change.state };
    case "del":
      return undefined;
    case "health":
      return before;
  }
}

/** One backend's plan for a flush. */
export interface BackendPlan {
  /** endpoint key → slot, dynamic servers to create included. */
  readonly assignment: Map<string, number>;
  readonly changes: readonly SlotChange[];
  /** Dynamic slots (d<N>) once the plan is applied: existing ones and those it adds. */
  readonly dynamic: ReadonlySet<number>;
  /** Endpoint keys that found no slot and cannot get a dynamic server: a reload must grow the template. */
  readonly overflow: readonly string[];
}

export interface PlanInput {
  /** The backend's desired endpoints (valid ones), in the backend's order. */
  readonly endpoints: readonly Endpoint[];
  /** The assignment of the last plan (or read from HAProxy), kept where it still fits. */
  readonly previous: SlotAssignment;
  /** Every slot number HAProxy has for the backend, ascending, dynamic ones included. */
  readonly slots: readonly number[];
  readonly applied: ReadonlyMap<number, AppliedSlot>;
  readonly dynamic: ReadonlySet<number>;
  /** Whether `add server` may grow the backend (its algorithm allows it, HAProxy did not refuse). */
  readonly growable: boolean;
  /** The backend has active health checks. */
  readonly checked?: boolean;
}

/**
 * Plans one backend. Growth policy: endpoints beyond the slots become dynamic servers numbered
 * above the highest slot (`add server`, then `state ready`), when the backend can grow; else
 * they are overflow, and the rest of the backend is served.
 */
export function planBackendSync(input: PlanInput): BackendPlan {
  const { endpoints } = input;
  const keys = new Array<string>(endpoints.length);
  for (let i = 0; i < endpoints.length; i++) keys[i] = endpointKey(endpoints[i]!);
  const { assignment, overflow } = assignSlots(input.previous, keys, input.slots);
  // Copied only when dynamic servers are added: the common plan fits its slots.
  let planned = input.slots;
  let dynamic = input.dynamic;
  if (input.growable && overflow.length > 0) {
    const grown = [...input.slots];
    const added = new Set(input.dynamic);
    let next = grown.length === 0 ? 1 : grown[grown.length - 1]! + 1;
    for (const key of overflow) {
      assignment.set(key, next);
      added.add(next);
      grown.push(next++);
    }
    [planned, dynamic] = [grown, added];
  }
  // Endpoints are unique on ip:port (model.ts); were one repeated, the last would win its slot.
  const bySlot = new Map<number, Endpoint>();
  for (let i = 0; i < endpoints.length; i++) {
    const slot = assignment.get(keys[i]!);
    if (slot !== undefined) bySlot.set(slot, endpoints[i]!);
  }
  const changes = planBackend(planned, input.applied, bySlot, dynamic, input.checked);
  return { assignment, changes, dynamic, overflow: input.growable ? [] : overflow };
}

/**
 * A backend as a new configuration renders it: template slots for its endpoints and a quarter
 * more (slotCapacity), each endpoint in the slot `previous` gives it where that slot still
 * exists. Dynamic servers and slots beyond the new capacity fold back into the template, so
 * slots never grow without bound (a new worker has new servers anyway: nothing is cut).
 */
export function layoutBackend(backend: Backend, previous: SlotAssignment = new Map()): RenderedBackend {
  const byKey = new Map<string, Endpoint>(backend.endpoints.map((endpoint) => [endpointKey(endpoint), endpoint]));
  const slots = slotCapacity(byKey.size, backend.minSlots);
  const { assignment } = assignSlots(previous, [...byKey.keys()], slotRange(slots));
  const filled = new Map<number, Endpoint>();
  for (const [key, slot] of assignment) filled.set(slot, byKey.get(key)!);
  return { backend, slots, filled };
}

// The planner: what HAProxy has (applied) and what it should have (desired) → the fewest
// slot changes that make them equal. Pure; the engine turns changes into runtime commands.

import type { ServerState } from "../haproxy/commands.ts";
import type { Endpoint } from "../model.ts";

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
  | { readonly kind: "del"; readonly slot: number };

/**
 * Changes for one backend: arriving and changed endpoints slot by slot, then leaving ones. A
 * new endpoint gets its address first, then its state, so it never serves at an old address.
 * A slot that nothing wants goes to maint and keeps its old address (harmless, and one
 * command instead of two).
 * `slots` lists every slot number the backend has, plus dynamic ones to create (those have no
 * applied entry yet). A dynamic server goes to maint first and is deleted at a later flush,
 * once maint is confirmed, so its connections are never cut by the deletion.
 */
export function planBackend(
  slots: Iterable<number>,
  applied: ReadonlyMap<number, AppliedSlot>,
  desired: ReadonlyMap<number, Endpoint>,
  dynamic: ReadonlySet<number> = new Set(),
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
    if (have === undefined && dynamic.has(slot)) {
      changes.push({ kind: "add", slot, ip: want.ip, port: want.port });
    } else if (have === undefined || have.ip !== want.ip || have.port !== want.port) {
      changes.push({ kind: "addr", slot, ip: want.ip, port: want.port });
    }
    if (have === undefined || have.state !== want.state) changes.push({ kind: "state", slot, state: want.state });
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
  }
}

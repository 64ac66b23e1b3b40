// HAProxy object names derived from Kubernetes names. Kubernetes namespaces and Service names
// are DNS labels and port names IANA service names ([a-z0-9-]), and none may contain ':', so
// `namespace:name:port` is already a valid HAProxy identifier and distinct Service ports never
// collide. Names longer than HAProxy identifiers we accept are cut and suffixed with a hash of
// the whole name, which keeps them unique.

import { createHash } from "node:crypto";
import { MAX_NAME_LENGTH, checkName } from "./commands.ts";

/** The name of a Service port's proxy (its `listen` section) and, for the runtime API, its backend. */
export function backendName(namespace: string, service: string, port: string | number): string {
  const full = `${namespace}:${service}:${port}`;
  if (full.length <= MAX_NAME_LENGTH) return checkName("backend", full);
  const hash = createHash("sha256").update(full).digest("hex").slice(0, 10);
  return checkName("backend", `${full.slice(0, MAX_NAME_LENGTH - hash.length - 1)}-${hash}`);
}

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

// Local mode's pool of prewarmed backends: pure rules for its names, its size and who holds which
// backend. A pool backend is one HAProxy `listen` section with its own listener port and its
// slots; the kernel's capture map sends a Service port's ClusterIPs to the listener port of the
// pool backend that serves it (a claim). Everything a runtime command cannot change (tcp/http
// mode, balance algorithm, ClientIP affinity and its timeout) is fixed per pool backend: that is
// its group, and a Service port only ever claims a backend of its own group.
//
//   Service port ─ group ─► claim: keep the one it has ─► else the one the kernel map names
//                                   (sidecar restart) ─► else the free one with the lowest port
//                                   ─► else unclaimed: the pool grows (one reload)
//
// A pool backend's name says all of this (`pool:<mode>:<algorithm>:<affinity s>:<port>`), so the
// pool is read back from `show servers state` after any restart, and claims from the nft map.

import { SocketAddress, isIP } from "node:net";
import type { Backend, BackendMode, NoEndpointVerdict } from "../model.ts";

/** What a runtime command cannot change about a backend. */
export interface PoolGroup {
  readonly mode: BackendMode;
  readonly algorithm: string;
  /** ClientIP affinity timeout; 0: none. */
  readonly affinity: number;
}

export interface PoolBackend {
  readonly name: string;
  readonly group: PoolGroup;
  readonly listenPort: number;
}

/** One captured Service address: TCP to ip:port goes to listenPort (the capture's map element); no ip: a NodePort. */
export interface PoolEntry {
  readonly ip?: string;
  readonly port: number;
  readonly listenPort: number;
  /** Mesh: only sources in these CIDRs reach ip:port (a load balancer IP's loadBalancerSourceRanges); absent: any. */
  readonly sourceRanges?: readonly string[];
  /** Mesh: only for connections the node itself opens (Backend.nodeShortcut); ahead of the others. */
  readonly fromNode?: boolean;
}

/** Whether the kernel holds an entry as wanted: the same listener and the same source ranges. */
export function sameEntry(a: PoolEntry | undefined, b: PoolEntry): boolean {
  return a !== undefined && a.listenPort === b.listenPort && JSON.stringify(a.sourceRanges ?? null) === JSON.stringify(b.sourceRanges ?? null);
}

/**
 * Pool size per group: 1.25 × its Service ports, rounded up, plus POOL_MIN_FREE. The quarter
 * absorbs growth in proportion, the constant lets a group with few or no Services (the default
 * group always exists) take several new ones without a reload. It never shrinks while HAProxy
 * runs (that would cost a reload for nothing); `render` sizes it afresh at an HAProxy restart.
 */
export const POOL_MIN_FREE = 8;

export function poolTarget(servicePorts: number): number {
  return Math.ceil(servicePorts * 1.25) + POOL_MIN_FREE;
}

export function groupOf(backend: Pick<Backend, "mode" | "algorithm" | "affinityTimeoutSeconds">): PoolGroup {
  return { mode: backend.mode, algorithm: backend.algorithm, affinity: Math.trunc(backend.affinityTimeoutSeconds ?? 0) };
}

export function groupKey(group: PoolGroup): string {
  return `${group.mode}:${group.algorithm}:${group.affinity}`;
}

export function poolBackendName(group: PoolGroup, listenPort: number): string {
  return `pool:${groupKey(group)}:${listenPort}`;
}

/** A pool backend from its name; undefined for any other backend. */
export function parsePoolBackendName(name: string): PoolBackend | undefined {
  const match = /^pool:(tcp|http):([a-z-]+):(\d{1,9}):(\d{1,5})$/.exec(name);
  if (!match) return undefined;
  const listenPort = Number(match[4]);
  if (listenPort < 1 || listenPort > 65535) return undefined;
  return { name, group: { mode: match[1] as BackendMode, algorithm: match[2]!, affinity: Number(match[3]) }, listenPort };
}

/** The canonical text of an address, as nft prints it back ("fd00::a", not "fd00:0::A"). */
export function canonicalIp(ip: string): string {
  const version = isIP(ip);
  return version === 0 ? ip : new SocketAddress({ address: ip, family: version === 4 ? "ipv4" : "ipv6" }).address;
}

export function entryId(entry: { readonly ip?: string | undefined; readonly port: number; readonly fromNode?: boolean | undefined }): string {
  return `${entry.fromNode ? "node " : ""}${entry.ip === undefined ? "*" : canonicalIp(entry.ip)} ${entry.port}`;
}

/**
 * The node's own entries of a Service port with a nodeShortcut: its destinations, sent to the
 * shortcut's listener (source ranges stay on the entries for everyone, which the firewall reads).
 */
export function shortcutEntriesOf(service: Backend, listenPort: number): PoolEntry[] {
  return entriesOf(service, listenPort).map(({ sourceRanges: _, ...entry }) => ({ ...entry, fromNode: true }));
}

/** An address and port (no ip: a NodePort) whose Service port has no endpoint: the kernel refuses it (the capture's no-endpoint element). */
export interface NoEndpointEntry {
  readonly ip?: string;
  readonly port: number;
  readonly verdict: NoEndpointVerdict;
}

/** The map elements a claimed Service port needs: each of its addresses at its port, and its NodePort (mesh). */
export function entriesOf(service: Backend, listenPort: number): PoolEntry[] {
  const entries: PoolEntry[] = service.binds.map((bind) => ({
    ip: canonicalIp(bind.address),
    port: bind.port,
    listenPort,
    ...(bind.sourceRanges === undefined ? {} : { sourceRanges: bind.sourceRanges }),
  }));
  return service.nodePort === undefined ? entries : [...entries, { port: service.nodePort, listenPort }];
}

/**
 * Grows `pool` so that every group reaches poolTarget of its Service ports in `services` (and
 * `always`, the default group, at least POOL_MIN_FREE). Existing backends keep their ports; new
 * ones take the ports above the highest in use, from `firstPort`. Sorted by listener port.
 */
export function sizePool(pool: readonly PoolBackend[], services: Iterable<Backend>, always: PoolGroup, firstPort: number): PoolBackend[] {
  const counts = new Map<string, { group: PoolGroup; count: number }>([[groupKey(always), { group: always, count: 0 }]]);
  for (const service of services) {
    const group = groupOf(service);
    const key = groupKey(group);
    counts.set(key, { group, count: (counts.get(key)?.count ?? 0) + 1 });
  }
  const have = new Map<string, number>();
  for (const backend of pool) have.set(groupKey(backend.group), (have.get(groupKey(backend.group)) ?? 0) + 1);
  const out = [...pool];
  let next = Math.max(firstPort, ...pool.map((backend) => backend.listenPort + 1));
  for (const [key, { group, count }] of [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (let n = have.get(key) ?? 0; n < poolTarget(count); n++) {
      out.push({ name: poolBackendName(group, next), group, listenPort: next });
      next++;
    }
  }
  return out.sort((a, b) => a.listenPort - b.listenPort);
}

export interface ClaimInput {
  /** The desired Service ports, by backend name. */
  readonly services: ReadonlyMap<string, Backend>;
  /** The pool HAProxy runs. */
  readonly pool: readonly PoolBackend[];
  /** Service port → pool backend name, as claimed before. */
  readonly claims: ReadonlyMap<string, string>;
  /** What the kernel's map holds: entryId → listener port (the source of truth after a restart). */
  readonly captured: ReadonlyMap<string, number>;
}

export interface ClaimResult {
  /** Service port → pool backend name. */
  readonly claims: Map<string, string>;
  /** Service ports that found no free pool backend of their group, sorted: the pool must grow. */
  readonly unclaimed: readonly string[];
}

/**
 * Who holds which pool backend. A Service port keeps its claim while its group is unchanged; one
 * without a claim takes the backend the kernel map already sends its ClusterIPs to (so a sidecar
 * restart never moves a served Service port), else the free backend of its group with the lowest
 * listener port. Deterministic: Service ports are visited by name.
 */
export function planClaims({ services, pool, claims, captured }: ClaimInput): ClaimResult {
  const byName = new Map(pool.map((backend) => [backend.name, backend]));
  const byPort = new Map(pool.map((backend) => [backend.listenPort, backend]));
  const names = [...services.keys()].sort();
  const out = new Map<string, string>();
  const taken = new Set<string>();
  const fits = (service: Backend, backend: PoolBackend | undefined): backend is PoolBackend =>
    backend !== undefined && !taken.has(backend.name) && groupKey(backend.group) === groupKey(groupOf(service));
  const take = (service: string, backend: PoolBackend): void => {
    out.set(service, backend.name);
    taken.add(backend.name);
  };
  for (const name of names) {
    const held = byName.get(claims.get(name) ?? "");
    if (fits(services.get(name)!, held)) take(name, held);
  }
  for (const name of names) {
    if (out.has(name)) continue;
    const service = services.get(name)!;
    for (const entry of entriesOf(service, 0)) {
      const backend = byPort.get(captured.get(entryId(entry)) ?? 0);
      if (fits(service, backend)) {
        take(name, backend);
        break;
      }
    }
  }
  const free = new Map<string, PoolBackend[]>();
  for (const backend of [...pool].sort((a, b) => a.listenPort - b.listenPort)) {
    if (taken.has(backend.name)) continue;
    const key = groupKey(backend.group);
    free.set(key, [...(free.get(key) ?? []), backend]);
  }
  const unclaimed: string[] = [];
  for (const name of names) {
    if (out.has(name)) continue;
    const backend = free.get(groupKey(groupOf(services.get(name)!)))?.shift();
    if (backend) take(name, backend);
    else unclaimed.push(name);
  }
  return { claims: out, unclaimed };
}

/**
 * A pool backend as the data plane's desired state holds it: its group's settings, binds on its
 * listener port (one per family), and the endpoints of the Service port that holds it (none
 * when free). Only the endpoints differ between holders: claiming is never structural.
 */
export function poolDesired(backend: PoolBackend, holder: Backend | undefined, options: { readonly families: readonly ("ipv4" | "ipv6")[]; readonly minSlots: number }): Backend {
  const { mode, algorithm, affinity } = backend.group;
  return {
    name: backend.name,
    servicePort: holder?.servicePort ?? `${backend.name}:free`,
    mode,
    algorithm,
    binds: options.families.map((family) => ({ address: family === "ipv4" ? "0.0.0.0" : "::", port: backend.listenPort })),
    ...(affinity > 0 ? { affinityTimeoutSeconds: affinity } : {}),
    minSlots: Math.max(options.minSlots, holder?.minSlots ?? 0),
    endpoints: holder?.endpoints ?? [],
    ...(holder?.triggerTime === undefined ? {} : { triggerTime: holder.triggerTime }),
  };
}

export interface PoolSettings {
  readonly firstPort: number;
  readonly families: readonly ("ipv4" | "ipv6")[];
  readonly minSlots: number;
  readonly defaultGroup: PoolGroup;
}

/** A new pool for `services` (what `render` writes): sized by poolTarget, claimed as planClaims would with nothing captured. */
export function freshPool(services: readonly Backend[], settings: PoolSettings): Backend[] {
  const pool = sizePool([], services, settings.defaultGroup, settings.firstPort);
  const byName = new Map(services.map((service) => [service.name, service]));
  const { claims } = planClaims({ services: byName, pool, claims: new Map(), captured: new Map() });
  const holders = new Map([...claims].map(([service, backend]) => [backend, byName.get(service)]));
  return pool.map((backend) => poolDesired(backend, holders.get(backend.name), settings));
}

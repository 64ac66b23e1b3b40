// Service ports without an endpoint: what the kernel answers instead of HAProxy, as kube-proxy's
// nftables mode does (its `no-endpoint-services` / `no-endpoint-nodeports` verdict maps). Pure.
//
//   new TCP to address:port ─┬─ in captured-<family> ─► NAT (-110) to HAProxy: served
//                            └─ in no-endpoint-<family> (filter, -10) ─┬─ reject: a TCP reset, the client
//                                                                      │  fails at once ("connection refused")
//                                                                      └─ drop: the client times out
//
// - reject: the Service port has no endpoint at all. drop: it has endpoints, only none this node
//   may use (internalTrafficPolicy Local for ClusterIPs, externalTrafficPolicy Local for external
//   destinations): kube-proxy drops, since the sender may reach another node that has some.
// - A Service port with no endpoint has no capture element (its connections would reach a backend
//   without servers, which HAProxy accepts and closes), so its address reaches the filter hooks
//   unchanged: forward (pods), output (the node), input (a node's own address: externalIPs,
//   NodePorts). The filter chains run after every NAT chain, ours (-110) and kube-proxy's (-100):
//   when both elements exist for a moment (endpoints just came), the capture has already
//   rewritten the destination and wins.
// - NodePorts (mesh) are matched in input only, on the addresses the NodePort rule captures.

import { KubeHaproxyError } from "../errors.ts";
import { canonicalKey, checkKey, compareEntries, entryKey, type CheckedConfig, type CheckedKey, type Family, type MapKind } from "./spec.ts";

/** What a new connection to a Service port without endpoints meets: kube-proxy's verdicts. */
export type NoEndpointVerdict = "reject" | "drop";

/** One address and port (no ip: a NodePort) whose Service port has no endpoint. */
export interface NoEndpointEntry {
  readonly ip?: string;
  readonly port: number;
  readonly verdict: NoEndpointVerdict;
}

type Key = { readonly ip?: string | undefined; readonly port: number };

const MAP: Record<MapKind, string> = { ipv4: "no-endpoint-ipv4", ipv6: "no-endpoint-ipv6", nodeport: "no-endpoint-nodeports" };
const KEY_TYPE: Record<MapKind, string> = { ipv4: "ipv4_addr . inet_service", ipv6: "ipv6_addr . inet_service", nodeport: "inet_service" };
const DADDR: Record<Family, string> = { ipv4: "ip daddr", ipv6: "ip6 daddr" };
const REJECT_CHAIN = "no-endpoint-reject";
/** After every NAT chain (ours at -110, kube-proxy's at -100), before the usual filter (0). */
export const NO_ENDPOINT_PRIORITY = -10;

export function noEndpointMapName(kind: MapKind): string {
  return MAP[kind];
}

type CheckedNoEndpoint = CheckedKey & { readonly verdict: NoEndpointVerdict };

/** Checked, canonical, sorted, each key once; one key with two verdicts is a caller's bug and refused. */
export function checkNoEndpoints(config: CheckedConfig, entries: readonly NoEndpointEntry[]): CheckedNoEndpoint[] {
  const byKey = new Map<string, CheckedNoEndpoint>();
  for (const raw of entries) {
    if (raw.verdict !== "reject" && raw.verdict !== "drop") {
      throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `invalid no-endpoint verdict: ${JSON.stringify(raw.verdict)}`);
    }
    const entry = { ...checkKey(config, raw), verdict: raw.verdict };
    const seen = byKey.get(entryKey(entry));
    if (seen && seen.verdict !== entry.verdict) {
      throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `invalid no-endpoint entry (two verdicts): ${entryKey(entry)}`);
    }
    byKey.set(entryKey(entry), entry);
  }
  return [...byKey.values()].sort(compareEntries);
}

function element(entry: Key & { readonly verdict?: NoEndpointVerdict }): string {
  const key = entry.ip === undefined ? String(entry.port) : `${entry.ip} . ${entry.port}`;
  return entry.verdict === undefined ? key : `${key} : ${entry.verdict === "reject" ? `goto ${REJECT_CHAIN}` : "drop"}`;
}

function kinds(config: CheckedConfig): MapKind[] {
  return [...config.families, ...(config.mesh ? (["nodeport"] as const) : [])];
}

/**
 * The maps and filter chains inside the table's block. `nodePortMatch` is the capture's own
 * NodePort condition for a family (`fib daddr type local …`), undefined where none is captured.
 */
export function renderNoEndpointRules(config: CheckedConfig, entries: readonly NoEndpointEntry[], nodePortMatch: (family: Family) => string | undefined): string[] {
  const checked = checkNoEndpoints(config, entries);
  const lines: string[] = [];
  for (const kind of kinds(config)) {
    const members = checked.filter((entry) => entry.kind === kind).map(element);
    lines.push(`\tmap ${MAP[kind]} {`, `\t\ttype ${KEY_TYPE[kind]} : verdict`);
    if (members.length > 0) lines.push("\t\telements = {", `\t\t\t${members.join(",\n\t\t\t")}`, "\t\t}");
    lines.push("\t}");
  }
  lines.push(`\tchain ${REJECT_CHAIN} {`, "\t\treject with tcp reset", "\t}");
  const addressRules = config.families.map((family) => `ct state new meta l4proto tcp ${DADDR[family]} . tcp dport vmap @${MAP[family]}`);
  const nodePortRules = config.mesh ? config.families.flatMap((family) => {
    const match = nodePortMatch(family);
    return match === undefined ? [] : [`ct state new meta l4proto tcp ${match} tcp dport vmap @${MAP.nodeport}`];
  }) : [];
  for (const [hook, rules] of [["input", [...addressRules, ...nodePortRules]], ["forward", addressRules], ["output", addressRules]] as const) {
    lines.push(`\tchain no-endpoint-${hook} {`, `\t\ttype filter hook ${hook} priority ${NO_ENDPOINT_PRIORITY}; policy accept;`, ...rules.map((rule) => `\t\t${rule}`), "\t}");
  }
  return lines;
}

/** Element changes, removals first (a verdict that changes is removed and added again). */
export function renderNoEndpointChanges(table: string, config: CheckedConfig, remove: readonly Key[], add: readonly NoEndpointEntry[]): string[] {
  const removed = new Map<string, CheckedKey>();
  for (const entry of remove) {
    const key = canonicalKey(entry);
    if (!kinds(config).includes(key.kind)) throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `cannot remove the no-endpoint entry ${entryKey(key)}: no such map`);
    removed.set(entryKey(key), key);
  }
  const lines: string[] = [];
  for (const [verb, entries] of [["delete", [...removed.values()].sort(compareEntries)], ["add", checkNoEndpoints(config, add)]] as const) {
    for (const kind of kinds(config)) {
      const members = entries.filter((entry) => entry.kind === kind).map(element);
      if (members.length > 0) lines.push(`${verb} element ${table} ${MAP[kind]} { ${members.join(", ")} }`);
    }
  }
  return lines;
}

const OUR_MAPS: ReadonlySet<string> = new Set(Object.values(MAP));

function unreadable(value: unknown): KubeHaproxyError {
  return new KubeHaproxyError("E_CAPTURE_FAILED", `cannot read nft's no-endpoint element: ${JSON.stringify(value)?.slice(0, 200)}`);
}

function verdictOf(value: unknown): NoEndpointVerdict {
  if (value !== null && typeof value === "object") {
    if ("drop" in value) return "drop";
    if ((value as { goto?: { target?: unknown } }).goto?.target === REJECT_CHAIN) return "reject";
  }
  throw unreadable(value);
}

/** The no-endpoint entries among the objects of `nft -j list table`. */
export function parseNoEndpoints(objects: readonly unknown[]): NoEndpointEntry[] {
  const out: NoEndpointEntry[] = [];
  for (const object of objects) {
    const map = (object as { map?: { name?: unknown; elem?: unknown } } | null)?.map;
    if (!map || typeof map.name !== "string" || !OUR_MAPS.has(map.name) || map.elem === undefined) continue;
    if (!Array.isArray(map.elem)) throw unreadable(map.elem);
    for (const element of map.elem) {
      if (!Array.isArray(element) || element.length !== 2) throw unreadable(element);
      const [key, value] = element as [unknown, unknown];
      const concat = (key as { concat?: unknown } | null)?.concat;
      const raw = typeof key === "number" ? { port: key } : Array.isArray(concat) && concat.length === 2 ? { ip: concat[0] as string, port: Number(concat[1]) } : undefined;
      if (!raw) throw unreadable(element);
      const checked = canonicalKey(raw);
      out.push({ ...(checked.ip === undefined ? {} : { ip: checked.ip }), port: checked.port, verdict: verdictOf(value) });
    }
  }
  return out;
}

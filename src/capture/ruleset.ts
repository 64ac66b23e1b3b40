// The text kube-haproxy gives `nft -f -`: the whole table (install), element changes (update)
// and the table's removal (cleanup). Pure: plain data in, nft's own language out. Every value
// goes through spec.ts's checks first, so only canonical addresses and integers reach the text.

import type { CaptureChanges } from "./changes.ts";
import { KubeHaproxyError } from "../errors.ts";
import { renderNoEndpointChanges, renderNoEndpointRules, type NoEndpointEntry } from "./no-endpoints.ts";
import {
  canonicalKey,
  checkConfig,
  checkEntries,
  checkRanges,
  compareEntries,
  entryKey,
  type CaptureConfig,
  type CaptureEntry,
  type CheckedConfig,
  type CheckedEntry,
  type CheckedKey,
  type Family,
  type MapKind,
} from "./spec.ts";

/** Ours alone: cleanup is `delete table`, and nothing else in the kernel is ever touched. */
export const TABLE = "inet kube-haproxy";

/**
 * Before kube-proxy's NAT chains (dstnat, -100, in its iptables and nftables modes alike): the
 * first NAT chain that binds a new connection wins, so what we capture never meets its rules and
 * what we leave goes on to them untouched.
 */
export const NAT_PRIORITY = -110;

const MAP: Record<MapKind, string> = { ipv4: "captured-ipv4", ipv6: "captured-ipv6", nodeport: "nodeports" };
const KEY_TYPE: Record<MapKind, string> = { ipv4: "ipv4_addr . inet_service", ipv6: "ipv6_addr . inet_service", nodeport: "inet_service" };
const DADDR: Record<Family, string> = { ipv4: "ip daddr", ipv6: "ip6 daddr" };
const LOOPBACK: Record<Family, string> = { ipv4: "127.0.0.0/8", ipv6: "::1" };

/** A map's name; `node-…` holds the entries for the node's own connections (CaptureEntry.fromNode). */
export function mapName(kind: MapKind, fromNode = false): string {
  return fromNode ? `node-${MAP[kind]}` : MAP[kind];
}

/** The maps of a configuration: per family and NodePorts (mesh), and in mesh each again for the node's own connections. */
function maps(config: CheckedConfig): { readonly kind: MapKind; readonly fromNode: boolean }[] {
  const kinds: MapKind[] = [...config.families, ...(config.mesh ? (["nodeport"] as const) : [])];
  return [false, ...(config.mesh ? [true] : [])].flatMap((fromNode) => kinds.map((kind) => ({ kind, fromNode })));
}

function inMap(map: { readonly kind: MapKind; readonly fromNode: boolean }, entry: CheckedKey): boolean {
  return entry.kind === map.kind && (entry.fromNode === true) === map.fromNode;
}

/**
 * Mesh mode's loadBalancerSourceRanges, per family: `restricted-*` holds the `address . port`
 * keys that admit only some sources, `allowed-*` (intervals) their `address . port . source
 * CIDR`; a filter chain before the NAT drops a restricted key's packets from any other source,
 * as kube-proxy's firewall chains do.
 */
export function firewallSet(kind: "restricted" | "allowed", family: Family): string {
  return `${kind}-${family}`;
}

const SADDR: Record<Family, string> = { ipv4: "ip saddr", ipv6: "ip6 saddr" };
const ADDR_TYPE: Record<Family, string> = { ipv4: "ipv4_addr", ipv6: "ipv6_addr" };

type RangedKey = CheckedKey & { readonly sourceRanges?: readonly string[] };

/** A set's elements for entries with source ranges: their keys, or every key . range. */
function firewallMembers(kind: "restricted" | "allowed", entries: readonly RangedKey[]): string[] {
  return entries.flatMap((entry) => {
    if (entry.ip === undefined || entry.sourceRanges === undefined) return [];
    const key = `${entry.ip} . ${entry.port}`;
    return kind === "restricted" ? [key] : entry.sourceRanges.map((range) => `${key} . ${range}`);
  });
}

function firewallSets(config: CheckedConfig, entries: readonly CheckedEntry[]): string[] {
  if (!config.mesh) return [];
  return config.families.flatMap((family) => {
    const own = entries.filter((entry) => entry.kind === family);
    return (["restricted", "allowed"] as const).flatMap((kind) => {
      const members = firewallMembers(kind, own);
      const type = kind === "restricted" ? `${ADDR_TYPE[family]} . inet_service` : `${ADDR_TYPE[family]} . inet_service . ${ADDR_TYPE[family]}`;
      return [
        `\tset ${firewallSet(kind, family)} {`,
        `\t\ttype ${type}`,
        ...(kind === "allowed" ? ["\t\tflags interval"] : []),
        ...(members.length > 0 ? ["\t\telements = {", `\t\t\t${members.join(",\n\t\t\t")}`, "\t\t}"] : []),
        "\t}",
      ];
    });
  });
}

/** Before our NAT (-110): a restricted key's packets from a source outside its ranges never reach HAProxy. */
function firewallChain(config: CheckedConfig, hook: "prerouting" | "output"): string[] {
  if (!config.mesh) return [];
  const rules = config.families.map((family) => {
    const key = `${DADDR[family]} . tcp dport`;
    return `${key} @${firewallSet("restricted", family)} ${key} . ${SADDR[family]} != @${firewallSet("allowed", family)} drop`;
  });
  return [`\tchain firewall-${hook} {`, `\t\ttype filter hook ${hook} priority ${NAT_PRIORITY - 10}; policy accept;`, ...rules.map((rule) => `\t\t${rule}`), "\t}"];
}

/** The element lines of one verb for the firewall sets (mesh mode). */
function firewallChanges(config: CheckedConfig, verb: "add" | "delete", entries: readonly RangedKey[]): string[] {
  if (!config.mesh) return [];
  return config.families.flatMap((family) =>
    (["restricted", "allowed"] as const).flatMap((kind) => {
      const members = firewallMembers(kind, entries.filter((entry) => entry.kind === family));
      return members.length > 0 ? [`${verb} element ${TABLE} ${firewallSet(kind, family)} { ${members.join(", ")} }`] : [];
    }),
  );
}

function element(entry: { readonly ip?: string | undefined; readonly port: number; readonly listenPort?: number }): string {
  const key = entry.ip === undefined ? String(entry.port) : `${entry.ip} . ${entry.port}`;
  return `${key}${entry.listenPort === undefined ? "" : ` : ${entry.listenPort}`}`;
}

/** The NAT statement that sends a match to the listener port `lookup` finds: REDIRECT, or DNAT to the --interface address. */
function natTo(config: CheckedConfig, family: Family, lookup: string): string {
  const address = config.listenAddresses[family];
  if (address === undefined) return `meta l4proto tcp redirect to : ${lookup}`;
  const target = family === "ipv4" ? `ip to ${address}` : `ip6 to [${address}]`;
  return `meta l4proto tcp dnat ${target} : ${lookup}`;
}

/**
 * Mesh mode's NodePort rule for a family: TCP to a local address of the node (kube-proxy's
 * `fib daddr type local`), within --nodeport-addresses when given. Never loopback (kube-proxy's
 * nftables mode does not serve NodePorts there, and its iptables mode only with route_localnet):
 * the node's own connections to 127.0.0.1:<nodePort> are left to whatever else serves them.
 */
function nodePortRule(config: CheckedConfig, family: Family, fromNode = false): string | undefined {
  const match = nodePortMatch(config, family);
  return match === undefined ? undefined : `${match} ${natTo(config, family, `tcp dport map @${mapName("nodeport", fromNode)}`)}`;
}

/** Where a family's NodePorts are captured (also where no-endpoint NodePorts are refused); undefined: nowhere. */
function nodePortMatch(config: CheckedConfig, family: Family): string | undefined {
  const cidrs = config.mesh?.nodePortCidrs[family];
  if (!cidrs) return undefined;
  const all = config.mesh!.nodePortCidrs.ipv4.length + config.mesh!.nodePortCidrs.ipv6.length === 0;
  if (!all && cidrs.length === 0) return undefined; // --nodeport-addresses names only the other family
  return `fib daddr type local ${all ? `${DADDR[family]} != ${LOOPBACK[family]}` : `${DADDR[family]} { ${cidrs.join(", ")} }`}`;
}

function natChain(config: CheckedConfig, hook: "prerouting" | "output"): string[] {
  // Address and port first: an externalIP that is the node's own address wins over a NodePort.
  // In mesh mode, the node-… maps come first for connections from this node: all of output,
  // and in prerouting those from the pod CIDRs (eTP Local's short circuit).
  const local = (family: Family): string | undefined => {
    if (!config.mesh) return undefined;
    if (hook === "output") return "";
    const pods = config.mesh.podCidrs[family];
    return pods.length > 0 ? `${SADDR[family]} { ${pods.join(", ")} } ` : undefined;
  };
  const rules = [
    ...config.families.flatMap((family) => {
      const from = local(family);
      if (from === undefined) return [];
      const nodePort = nodePortRule(config, family, true);
      return [`${from}${natTo(config, family, `${DADDR[family]} . tcp dport map @${mapName(family, true)}`)}`, ...(nodePort ? [`${from}${nodePort}`] : [])];
    }),
    ...config.families.map((family) => natTo(config, family, `${DADDR[family]} . tcp dport map @${mapName(family)}`)),
    ...config.families.flatMap((family) => nodePortRule(config, family) ?? []),
  ];
  return [`\tchain ${hook} {`, `\t\ttype nat hook ${hook} priority ${NAT_PRIORITY}; policy accept;`, ...rules.map((rule) => `\t\t${rule}`), "\t}"];
}

/**
 * The whole table, replaced in one transaction (`add` first so that `delete` never fails):
 * - a map per family, `address . port : listener port`, the Service ports HAProxy serves;
 *   in mesh mode also a map `port : listener port`, the NodePorts, and each map again as
 *   `node-…` for the node's own connections, consulted first in output;
 * - NAT in prerouting (pods) and output (the node itself) sends a match to its listener;
 * - a guard refuses connections that reach a listener port without having been captured,
 *   or every ClusterIP Service would be open to anyone who can reach the node;
 * - mesh mode: the firewall sets and chains of loadBalancerSourceRanges (firewallSet);
 * - the Service ports without endpoints, rejected or dropped (no-endpoints.ts).
 */
export function renderRuleset(input: CaptureConfig, entries: readonly CaptureEntry[] = [], noEndpoints: readonly NoEndpointEntry[] = []): string {
  const config = checkConfig(input);
  const { first, last } = config.listenPorts;
  const checked = checkEntries(config, entries);
  const lines = [`add table ${TABLE}`, `delete table ${TABLE}`, `table ${TABLE} {`];
  for (const map of maps(config)) {
    const members = checked.filter((entry) => inMap(map, entry)).map(element);
    lines.push(`\tmap ${mapName(map.kind, map.fromNode)} {`, `\t\ttype ${KEY_TYPE[map.kind]} : inet_service`);
    if (members.length > 0) lines.push("\t\telements = {", `\t\t\t${members.join(",\n\t\t\t")}`, "\t\t}");
    lines.push("\t}");
  }
  lines.push(...firewallSets(config, checked), ...firewallChain(config, "prerouting"), ...firewallChain(config, "output"));
  lines.push(...natChain(config, "prerouting"), ...natChain(config, "output"));
  lines.push(
    "\tchain input {",
    "\t\ttype filter hook input priority -10; policy accept;",
    `\t\ttcp dport ${first === last ? first : `${first}-${last}`} ct status & dnat == 0 reject with tcp reset`,
    "\t}",
    ...renderNoEndpointRules(config, noEndpoints, (family) => nodePortMatch(config, family)),
    "}",
  );
  return lines.join("\n") + "\n";
}

/** Removes everything kube-haproxy put in the kernel; succeeds when nothing is there. */
export function renderCleanup(): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n`;
}

/**
 * Element changes as one transaction: removals first, so that an entry whose listener changes
 * (removed and added again) ends with its new value. Empty text when there is nothing to do.
 */
export function renderChanges(input: CaptureConfig, changes: CaptureChanges): string {
  const config = checkConfig(input);
  // A removal only names the key, checked for its format alone: whatever is there may go.
  const removed = new Map<string, RangedKey>();
  for (const entry of changes.remove) {
    const key = canonicalKey(entry);
    if (!maps(config).some((map) => inMap(map, key))) {
      const why = key.fromNode ? "entries for the node's own connections exist in mesh mode only" : key.kind === "nodeport" ? "NodePorts are captured in mesh mode only" : `no ${key.kind} service CIDR is captured`;
      throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `cannot remove ${entryKey(key)}: ${why}`);
    }
    removed.set(entryKey(key), { ...key, ...checkRanges(key, entry.sourceRanges) });
  }
  const remove = [...removed.values()].sort(compareEntries);
  const add = checkEntries(config, changes.add);
  const lines: string[] = [];
  for (const [verb, entries] of [["delete", remove], ["add", add]] as const) {
    for (const map of maps(config)) {
      const members = entries.filter((entry) => inMap(map, entry)).map(element);
      if (members.length > 0) lines.push(`${verb} element ${TABLE} ${mapName(map.kind, map.fromNode)} { ${members.join(", ")} }`);
    }
    lines.push(...firewallChanges(config, verb, entries));
  }
  lines.push(...renderNoEndpointChanges(TABLE, config, changes.noEndpoints?.remove ?? [], changes.noEndpoints?.add ?? []));
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

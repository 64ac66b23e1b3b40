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
  compareEntries,
  entryKey,
  type CaptureConfig,
  type CaptureEntry,
  type CheckedConfig,
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

export function mapName(kind: MapKind): string {
  return MAP[kind];
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
function nodePortRule(config: CheckedConfig, family: Family): string | undefined {
  const match = nodePortMatch(config, family);
  return match === undefined ? undefined : `${match} ${natTo(config, family, `tcp dport map @${MAP.nodeport}`)}`;
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
  const rules = [
    ...config.families.map((family) => natTo(config, family, `${DADDR[family]} . tcp dport map @${MAP[family]}`)),
    ...config.families.flatMap((family) => nodePortRule(config, family) ?? []),
  ];
  return [`\tchain ${hook} {`, `\t\ttype nat hook ${hook} priority ${NAT_PRIORITY}; policy accept;`, ...rules.map((rule) => `\t\t${rule}`), "\t}"];
}

function mapKinds(config: CheckedConfig): MapKind[] {
  return [...config.families, ...(config.mesh ? (["nodeport"] as const) : [])];
}

/**
 * The whole table, replaced in one transaction (`add` first so that `delete` never fails):
 * - a map per family, `address . port : listener port`, the Service ports HAProxy serves;
 *   in mesh mode also a map `port : listener port`, the NodePorts;
 * - NAT in prerouting (pods) and output (the node itself) sends a match to its listener;
 * - a guard refuses connections that reach a listener port without having been captured,
 *   or every ClusterIP Service would be open to anyone who can reach the node;
 * - the Service ports without endpoints, rejected or dropped (no-endpoints.ts).
 */
export function renderRuleset(input: CaptureConfig, entries: readonly CaptureEntry[] = [], noEndpoints: readonly NoEndpointEntry[] = []): string {
  const config = checkConfig(input);
  const { first, last } = config.listenPorts;
  const checked = checkEntries(config, entries);
  const lines = [`add table ${TABLE}`, `delete table ${TABLE}`, `table ${TABLE} {`];
  for (const kind of mapKinds(config)) {
    const members = checked.filter((entry) => entry.kind === kind).map(element);
    lines.push(`\tmap ${MAP[kind]} {`, `\t\ttype ${KEY_TYPE[kind]} : inet_service`);
    if (members.length > 0) lines.push("\t\telements = {", `\t\t\t${members.join(",\n\t\t\t")}`, "\t\t}");
    lines.push("\t}");
  }
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
  const removed = new Map<string, CheckedKey>();
  for (const entry of changes.remove) {
    const key = canonicalKey(entry);
    if (!mapKinds(config).includes(key.kind)) {
      throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `cannot remove ${entryKey(key)}: ${key.kind === "nodeport" ? "NodePorts are captured in mesh mode only" : `no ${key.kind} service CIDR is captured`}`);
    }
    removed.set(entryKey(key), key);
  }
  const remove = [...removed.values()].sort(compareEntries);
  const add = checkEntries(config, changes.add);
  const lines: string[] = [];
  for (const [verb, entries] of [["delete", remove], ["add", add]] as const) {
    for (const kind of mapKinds(config)) {
      const members = entries.filter((entry) => entry.kind === kind).map(element);
      if (members.length > 0) lines.push(`${verb} element ${TABLE} ${MAP[kind]} { ${members.join(", ")} }`);
    }
  }
  lines.push(...renderNoEndpointChanges(TABLE, config, changes.noEndpoints?.remove ?? [], changes.noEndpoints?.add ?? []));
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

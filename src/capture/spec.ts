// What the capture is made of, as plain data, and the checks every value passes before any of
// it is written into nft's input. Everything here is pure.

import { BlockList, SocketAddress, isIP } from "node:net";
import { KubeHaproxyError } from "../errors.ts";

export type Family = "ipv4" | "ipv6";

/** Which map an entry lives in: address and port per family, or a port alone (NodePorts, mesh). */
export type MapKind = Family | "nodeport";

/**
 * One captured Service port: TCP to `ip:port` goes to HAProxy's listener on `listenPort`. Without
 * `ip`, a NodePort: TCP to `port` on any local address of the node (within --nodeport-addresses).
 */
export interface CaptureEntry {
  readonly ip?: string;
  readonly port: number;
  readonly listenPort: number;
  /**
   * Mesh mode: only sources within these CIDRs (of the entry's family) reach ip:port, others
   * are dropped (a load balancer IP's loadBalancerSourceRanges); empty: none. Absent: any source.
   */
  readonly sourceRanges?: readonly string[];
  /**
   * Mesh mode: only for connections the node itself opens (the output hook) and those from the
   * pod CIDRs (prerouting), ahead of the entries for everyone: externalTrafficPolicy Local's
   * short circuit, where they reach the Service's external destinations through its
   * cluster-wide backend (as kube-proxy does).
   */
  readonly fromNode?: boolean;
}

export interface CaptureConfig {
  /**
   * The HAProxy listener ports captured connections may be sent to (`--capture-port` and the
   * pool above it). Connections that reach them without having been captured are refused.
   */
  readonly listenPorts: { readonly first: number; readonly last: number };
  /** `--service-cidr`, one per family at most; a family without a CIDR gets no rules. */
  readonly serviceCidrs: readonly string[];
  /**
   * Per family, DNAT to this node address instead of REDIRECT (the `--interface` address).
   * REDIRECT sends a pod's connection to the address of the interface it came in on, and drops
   * it when that interface has no address of the family (unnumbered veths, as Calico makes them).
   */
  readonly listenAddresses?: { readonly ipv4?: string; readonly ipv6?: string };
  /**
   * Mesh mode: addresses outside the Service CIDRs (externalIPs, load balancer IPs) may be
   * captured, and NodePorts on the node's own addresses: those within `nodePortAddresses`
   * (CIDRs, kube-proxy's --nodeport-addresses), or every local address but loopback when empty.
   */
  readonly mesh?: {
    readonly nodePortAddresses: readonly string[];
    /**
     * Pod CIDRs (`--cluster-cidr`): connections from them take the `node-…` maps first, as the
     * node's own do (externalTrafficPolicy Local's short circuit for pods); none: the node's only.
     */
    readonly podCidrs?: readonly string[];
  };
}

/** A configuration after its checks: canonical addresses, the families it captures. */
export interface CheckedConfig {
  readonly listenPorts: { readonly first: number; readonly last: number };
  readonly families: readonly Family[];
  readonly listenAddresses: Readonly<Partial<Record<Family, string>>>;
  readonly ranges: Readonly<Record<Family, BlockList>>;
  /** Mesh mode: the --nodeport-addresses CIDRs per family (canonical), none: every non-loopback local address. */
  readonly mesh?: { readonly nodePortCidrs: Readonly<Record<Family, readonly string[]>>; readonly podCidrs: Readonly<Record<Family, readonly string[]>> };
}

function badOption(message: string): KubeHaproxyError {
  return new KubeHaproxyError("E_BAD_OPTION", message);
}

function invalid(what: string, value: unknown): KubeHaproxyError {
  return new KubeHaproxyError("E_INVALID_IDENTIFIER", `invalid ${what}: ${JSON.stringify(value)}`);
}

export function familyOf(ip: string): Family | undefined {
  const version = typeof ip === "string" && !ip.includes("%") ? isIP(ip) : 0;
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : undefined;
}

/** The canonical text of an address (lower case, zeros compressed), as nft prints it back. */
export function canonicalIp(ip: string, family: Family): string {
  return new SocketAddress({ address: ip, family }).address;
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

/** A CIDR's family, canonical address and prefix; undefined when it is not one. */
export function parseCidr(cidr: string): { family: Family; address: string; prefix: number } | undefined {
  const [address = "", prefixText = "", ...rest] = String(cidr).split("/");
  const family = familyOf(address);
  const prefix = Number(prefixText);
  if (!family || rest.length > 0 || !/^\d{1,3}$/.test(prefixText) || prefix > (family === "ipv4" ? 32 : 128)) return undefined;
  return { family, address: canonicalIp(address, family), prefix };
}

export function checkConfig(config: CaptureConfig): CheckedConfig {
  const { first, last } = config.listenPorts;
  if (!isPort(first) || !isPort(last) || first > last) {
    throw badOption(`capture listener ports must be a range within 1-65535, got ${JSON.stringify(config.listenPorts)}`);
  }
  const families: Family[] = [];
  const ranges: Record<Family, BlockList> = { ipv4: new BlockList(), ipv6: new BlockList() };
  for (const cidr of config.serviceCidrs) {
    const parsed = parseCidr(cidr);
    if (!parsed) throw badOption(`invalid service CIDR ${JSON.stringify(cidr)}`);
    const { family, address, prefix } = parsed;
    if (families.includes(family)) throw badOption(`more than one ${family} service CIDR: ${JSON.stringify(config.serviceCidrs)}`);
    families.push(family);
    ranges[family].addSubnet(address, prefix, family);
  }
  families.sort();
  if (families.length === 0) throw badOption("capture needs at least one service CIDR");
  const listenAddresses: Partial<Record<Family, string>> = {};
  for (const [key, ip] of Object.entries(config.listenAddresses ?? {})) {
    if (ip === undefined) continue;
    if ((key !== "ipv4" && key !== "ipv6") || familyOf(ip) !== key) throw badOption(`invalid ${key} listen address ${JSON.stringify(ip)}`);
    listenAddresses[key] = canonicalIp(ip, key);
  }
  return { listenPorts: { first, last }, families, listenAddresses, ranges, ...(config.mesh ? { mesh: { nodePortCidrs: cidrsByFamily(config.mesh.nodePortAddresses, "nodeport address"), podCidrs: cidrsByFamily(config.mesh.podCidrs ?? [], "cluster (pod)") } } : {}) };
}

function cidrsByFamily(cidrs: readonly string[], what: string): Record<Family, string[]> {
  const out: Record<Family, string[]> = { ipv4: [], ipv6: [] };
  for (const cidr of cidrs) {
    const parsed = parseCidr(cidr);
    if (!parsed) throw badOption(`invalid ${what} CIDR ${JSON.stringify(cidr)}`);
    out[parsed.family].push(`${parsed.address}/${parsed.prefix}`);
  }
  return out;
}

/**
 * Addresses no Service may capture even in mesh mode, as the API server refuses them for
 * externalIPs (ValidateNonSpecialIP): unspecified, loopback, link-local, multicast.
 */
const SPECIAL = new BlockList();
for (const [address, prefix, family] of [
  ["0.0.0.0", 8, "ipv4"], ["127.0.0.0", 8, "ipv4"], ["169.254.0.0", 16, "ipv4"], ["224.0.0.0", 4, "ipv4"],
  ["::", 128, "ipv6"], ["::1", 128, "ipv6"], ["fe80::", 10, "ipv6"], ["ff00::", 8, "ipv6"],
] as const) SPECIAL.addSubnet(address, prefix, family);

/** A Service address and port (or a NodePort: no address), canonical: as nft prints them back. */
export interface CheckedKey {
  readonly ip?: string;
  readonly port: number;
  readonly kind: MapKind;
  /** Present only when true (see CaptureEntry.fromNode). */
  readonly fromNode?: boolean;
}

type Key = { readonly ip?: string | undefined; readonly port: number; readonly fromNode?: boolean | undefined };

/** Only the format is checked: whatever the kernel holds can be read and taken out. */
export function canonicalKey(key: Key): CheckedKey {
  if (!isPort(key.port)) throw invalid("captured port", key.port);
  const origin = key.fromNode === true ? { fromNode: true as const } : {};
  if (key.ip === undefined) return { port: key.port, kind: "nodeport", ...origin };
  const family = familyOf(key.ip);
  if (!family) throw invalid("captured address", key.ip);
  return { ip: canonicalIp(key.ip, family), port: key.port, kind: family, ...origin };
}

/**
 * A Service address and port, canonical, inside the Service CIDR of its family; in mesh mode
 * also any other address a Service may name (externalIPs, load balancer IPs), and NodePorts.
 */
export function checkKey(config: CheckedConfig, key: Key): CheckedKey {
  const checked = canonicalKey(key);
  if (checked.fromNode && !config.mesh) throw invalid("captured address (an entry for the node's own connections needs mesh mode)", key.ip ?? key.port);
  if (checked.kind === "nodeport" || checked.ip === undefined) {
    if (!config.mesh) throw invalid("captured address (a NodePort needs mesh mode)", key.port);
    return checked;
  }
  const family = checked.kind;
  if (!config.families.includes(family)) throw invalid(`captured address (no ${family} service CIDR)`, key.ip);
  if (config.ranges[family].check(checked.ip, family)) return checked;
  // A bug upstream must not capture, say, the API server's own address: outside the Service
  // CIDR only in mesh mode, and never a loopback, link-local or multicast address.
  if (!config.mesh) throw invalid(`captured address (outside the ${family} service CIDR)`, key.ip);
  if (SPECIAL.check(checked.ip, family)) throw invalid("captured address (loopback, link-local, multicast or unspecified)", key.ip);
  return checked;
}

export type CheckedEntry = CaptureEntry & { readonly kind: MapKind };

export function checkEntry(config: CheckedConfig, entry: CaptureEntry): CheckedEntry {
  const { first, last } = config.listenPorts;
  if (!isPort(entry.listenPort) || entry.listenPort < first || entry.listenPort > last) {
    throw invalid(`listener port (outside ${first}-${last})`, entry.listenPort);
  }
  const key = checkKey(config, entry);
  return { ...key, listenPort: entry.listenPort, ...checkRanges(key, entry.sourceRanges) };
}

/**
 * Source ranges in the canonical form nft prints back (`198.18.0.0/24`, sorted), each of the
 * entry's family, none inside another (nft refuses overlapping intervals in one set). Only an
 * address may have them: NodePorts are not filtered (kube-proxy's rule too).
 */
export function checkRanges(key: CheckedKey, ranges: readonly string[] | undefined): { readonly sourceRanges?: readonly string[] } {
  if (ranges === undefined) return {};
  if (key.kind === "nodeport") throw invalid("source ranges (a NodePort has none)", ranges);
  if (key.fromNode) throw invalid("source ranges (the address's entry for everyone carries them)", ranges);
  const parsed = ranges.map((range) => {
    const cidr = parseCidr(range);
    if (!cidr || cidr.family !== key.kind) throw invalid(`${key.kind} source range`, range);
    return cidr;
  });
  const within = new BlockList();
  for (const { address, prefix, family } of [...parsed].sort((a, b) => a.prefix - b.prefix)) {
    if (within.check(address, family)) throw invalid("source ranges (one inside another)", ranges);
    within.addSubnet(address, prefix, family);
  }
  return { sourceRanges: parsed.map(({ address, prefix }) => `${address}/${prefix}`).sort() };
}

/** Whether two entries send their key to the same listener with the same source ranges. */
export function sameTarget(a: CaptureEntry, b: CaptureEntry): boolean {
  return a.listenPort === b.listenPort && JSON.stringify(a.sourceRanges ?? null) === JSON.stringify(b.sourceRanges ?? null);
}

/** The identity of an entry, whatever its listener (`* <port>` for a NodePort, `node ` first for the node's own connections). */
export function entryKey(entry: Key): string {
  return `${entry.fromNode === true ? "node " : ""}${entry.ip ?? "*"} ${entry.port}`;
}

/**
 * Checked, canonical, sorted by family, address and port (stable text to compare), each key
 * once; one key with two listeners is a caller's bug and refused.
 */
export function checkEntries(config: CheckedConfig, entries: readonly CaptureEntry[]): CheckedEntry[] {
  const byKey = new Map<string, CheckedEntry>();
  for (const raw of entries) {
    const entry = checkEntry(config, raw);
    const seen = byKey.get(entryKey(entry));
    if (seen && !sameTarget(seen, entry)) {
      throw invalid("capture entry (one address and port with two listeners or two sets of source ranges)", `${entry.ip} ${entry.port}: ${seen.listenPort}, ${entry.listenPort}`);
    }
    byKey.set(entryKey(entry), entry);
  }
  return [...byKey.values()].sort(compareEntries);
}

export function compareEntries(a: CheckedKey, b: CheckedKey): number {
  if (!a.fromNode !== !b.fromNode) return a.fromNode ? 1 : -1;
  if (a.kind !== b.kind) return a.kind < b.kind ? -1 : 1;
  if (a.ip !== b.ip) return (a.ip ?? "") < (b.ip ?? "") ? -1 : 1;
  return a.port - b.port;
}

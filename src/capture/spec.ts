// What the capture is made of, as plain data, and the checks every value passes before any of
// it is written into nft's input. Everything here is pure.

import { BlockList, SocketAddress, isIP } from "node:net";
import { KubeHaproxyError } from "../errors.ts";

export type Family = "ipv4" | "ipv6";

/** One captured Service port: TCP to `ip:port` goes to HAProxy's listener on `listenPort`. */
export interface CaptureEntry {
  readonly ip: string;
  readonly port: number;
  readonly listenPort: number;
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
}

/** A configuration after its checks: canonical addresses, the families it captures. */
export interface CheckedConfig {
  readonly listenPorts: { readonly first: number; readonly last: number };
  readonly families: readonly Family[];
  readonly listenAddresses: Readonly<Partial<Record<Family, string>>>;
  readonly ranges: Readonly<Record<Family, BlockList>>;
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

export function checkConfig(config: CaptureConfig): CheckedConfig {
  const { first, last } = config.listenPorts;
  if (!isPort(first) || !isPort(last) || first > last) {
    throw badOption(`capture listener ports must be a range within 1-65535, got ${JSON.stringify(config.listenPorts)}`);
  }
  const families: Family[] = [];
  const ranges: Record<Family, BlockList> = { ipv4: new BlockList(), ipv6: new BlockList() };
  for (const cidr of config.serviceCidrs) {
    const [address = "", prefixText = "", ...rest] = String(cidr).split("/");
    const family = familyOf(address);
    const prefix = Number(prefixText);
    const bits = family === "ipv4" ? 32 : 128;
    if (!family || rest.length > 0 || !/^\d{1,3}$/.test(prefixText) || prefix > bits) {
      throw badOption(`invalid service CIDR ${JSON.stringify(cidr)}`);
    }
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
  return { listenPorts: { first, last }, families, listenAddresses, ranges };
}

/** A Service address and port, canonical: as nft prints them back. */
export interface CheckedKey {
  readonly ip: string;
  readonly port: number;
  readonly family: Family;
}

/** Only the format is checked: whatever the kernel holds can be read and taken out. */
export function canonicalKey(key: { readonly ip: string; readonly port: number }): CheckedKey {
  const family = familyOf(key.ip);
  if (!family) throw invalid("captured address", key.ip);
  if (!isPort(key.port)) throw invalid("captured port", key.port);
  return { ip: canonicalIp(key.ip, family), port: key.port, family };
}

/** A Service address and port, canonical, inside the Service CIDR of its family. */
export function checkKey(config: CheckedConfig, key: { readonly ip: string; readonly port: number }): CheckedKey {
  const checked = canonicalKey(key);
  // A bug upstream must not capture, say, the API server's own address.
  if (!config.families.includes(checked.family) || !config.ranges[checked.family].check(checked.ip, checked.family)) {
    throw invalid(`captured address (outside the ${checked.family} service CIDR)`, key.ip);
  }
  return checked;
}

export type CheckedEntry = CaptureEntry & { readonly family: Family };

export function checkEntry(config: CheckedConfig, entry: CaptureEntry): CheckedEntry {
  const { first, last } = config.listenPorts;
  if (!isPort(entry.listenPort) || entry.listenPort < first || entry.listenPort > last) {
    throw invalid(`listener port (outside ${first}-${last})`, entry.listenPort);
  }
  return { ...checkKey(config, entry), listenPort: entry.listenPort };
}

/** The identity of an entry, whatever its listener. */
export function entryKey(entry: { readonly ip: string; readonly port: number }): string {
  return `${entry.ip} ${entry.port}`;
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
    if (seen && seen.listenPort !== entry.listenPort) {
      throw invalid("capture entry (one address and port with two listeners)", `${entry.ip} ${entry.port}: ${seen.listenPort}, ${entry.listenPort}`);
    }
    byKey.set(entryKey(entry), entry);
  }
  return [...byKey.values()].sort(compareEntries);
}

export function compareEntries(a: CheckedKey, b: CheckedKey): number {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

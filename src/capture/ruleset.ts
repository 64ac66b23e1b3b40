// The text kube-haproxy gives `nft -f -`: the whole table (install), element changes (update)
// and the table's removal (cleanup). Pure: plain data in, nft's own language out. Every value
// goes through spec.ts's checks first, so only canonical addresses and integers reach the text.

import type { CaptureChanges } from "./changes.ts";
import { KubeHaproxyError } from "../errors.ts";
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
} from "./spec.ts";

/** Ours alone: cleanup is `delete table`, and nothing else in the kernel is ever touched. */
export const TABLE = "inet kube-haproxy";

/**
 * Before kube-proxy's NAT chains (dstnat, -100, in its iptables and nftables modes alike): the
 * first NAT chain that binds a new connection wins, so what we capture never meets its rules and
 * what we leave goes on to them untouched.
 */
export const NAT_PRIORITY = -110;

const MAP: Record<Family, string> = { ipv4: "captured-ipv4", ipv6: "captured-ipv6" };
const KEY_TYPE: Record<Family, string> = { ipv4: "ipv4_addr", ipv6: "ipv6_addr" };
const DADDR: Record<Family, string> = { ipv4: "ip daddr", ipv6: "ip6 daddr" };

export function mapName(family: Family): string {
  return MAP[family];
}

function element(entry: { readonly ip: string; readonly port: number; readonly listenPort?: number }): string {
  return `${entry.ip} . ${entry.port}${entry.listenPort === undefined ? "" : ` : ${entry.listenPort}`}`;
}

function captureRule(config: CheckedConfig, family: Family): string {
  const lookup = `${DADDR[family]} . tcp dport map @${MAP[family]}`;
  const address = config.listenAddresses[family];
  if (address === undefined) return `meta l4proto tcp redirect to : ${lookup}`;
  const target = family === "ipv4" ? `ip to ${address}` : `ip6 to [${address}]`;
  return `meta l4proto tcp dnat ${target} : ${lookup}`;
}

function natChain(config: CheckedConfig, hook: "prerouting" | "output"): string[] {
  return [
    `\tchain ${hook} {`,
    `\t\ttype nat hook ${hook} priority ${NAT_PRIORITY}; policy accept;`,
    ...config.families.map((family) => `\t\t${captureRule(config, family)}`),
    "\t}",
  ];
}

/**
 * The whole table, replaced in one transaction (`add` first so that `delete` never fails):
 * - a map per family, `address . port : listener port`, the Service ports HAProxy serves;
 * - NAT in prerouting (pods) and output (the node itself) sends a match to its listener;
 * - a guard refuses connections that reach a listener port without having been captured,
 *   or every ClusterIP Service would be open to anyone who can reach the node.
 */
export function renderRuleset(input: CaptureConfig, entries: readonly CaptureEntry[] = []): string {
  const config = checkConfig(input);
  const { first, last } = config.listenPorts;
  const checked = checkEntries(config, entries);
  const lines = [`add table ${TABLE}`, `delete table ${TABLE}`, `table ${TABLE} {`];
  for (const family of config.families) {
    const members = checked.filter((entry) => entry.family === family).map(element);
    lines.push(`\tmap ${MAP[family]} {`, `\t\ttype ${KEY_TYPE[family]} . inet_service : inet_service`);
    if (members.length > 0) lines.push("\t\telements = {", `\t\t\t${members.join(",\n\t\t\t")}`, "\t\t}");
    lines.push("\t}");
  }
  lines.push(...natChain(config, "prerouting"), ...natChain(config, "output"));
  lines.push(
    "\tchain input {",
    "\t\ttype filter hook input priority -10; policy accept;",
    `\t\ttcp dport ${first === last ? first : `${first}-${last}`} ct status & dnat == 0 reject with tcp reset`,
    "\t}",
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
    if (!config.families.includes(key.family)) {
      throw new KubeHaproxyError("E_INVALID_IDENTIFIER", `cannot remove ${key.ip} ${key.port}: no ${key.family} service CIDR is captured`);
    }
    removed.set(entryKey(key), key);
  }
  const remove = [...removed.values()].sort(compareEntries);
  const add = checkEntries(config, changes.add);
  const lines: string[] = [];
  for (const [verb, entries] of [["delete", remove], ["add", add]] as const) {
    for (const family of config.families) {
      const members = entries.filter((entry) => entry.family === family).map(element);
      if (members.length > 0) lines.push(`${verb} element ${TABLE} ${MAP[family]} { ${members.join(", ")} }`);
    }
  }
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

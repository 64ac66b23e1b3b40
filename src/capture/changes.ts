// Applied entries (read back from the kernel) against desired ones: the element changes that
// turn one into the other. Pure; unchanged entries cost nothing.

import type { NoEndpointEntry } from "./no-endpoints.ts";
import { canonicalKey, checkConfig, checkEntries, checkRanges, compareEntries, entryKey, sameTarget, type CaptureConfig, type CaptureEntry, type CheckedEntry } from "./spec.ts";

export interface CaptureChanges {
  /** Entries to take out (only their address and port matter). */
  readonly remove: readonly CaptureEntry[];
  readonly add: readonly CaptureEntry[];
  /** Addresses and ports of Service ports without endpoints (no-endpoints.ts): removals name only the key. */
  readonly noEndpoints?: { readonly remove: readonly Omit<NoEndpointEntry, "verdict">[]; readonly add: readonly NoEndpointEntry[] };
}

/**
 * Desired entries are checked against the configuration; applied ones only for their format,
 * so that whatever the kernel holds can be taken out. An entry whose listener or source ranges changed is
 * removed and added again (nft refuses to overwrite a map element's value).
 */
export function diffEntries(config: CaptureConfig, applied: readonly CaptureEntry[], desired: readonly CaptureEntry[]): CaptureChanges {
  const want = checkEntries(checkConfig(config), desired);
  const have = new Map<string, CheckedEntry>();
  for (const entry of applied) {
    const key = canonicalKey(entry);
    const checked = { ...key, listenPort: entry.listenPort, ...checkRanges(key, entry.sourceRanges) };
    have.set(entryKey(checked), checked);
  }
  const wantByKey = new Map(want.map((entry) => [entryKey(entry), entry]));
  const same = (a: CheckedEntry | undefined, b: CheckedEntry): boolean => a !== undefined && sameTarget(a, b);
  const remove = [...have.values()].filter((entry) => !same(wantByKey.get(entryKey(entry)), entry)).sort(compareEntries);
  const add = want.filter((entry) => !same(have.get(entryKey(entry)), entry));
  return { remove: remove.map(plain), add: add.map(plain) };
}

function plain(entry: CheckedEntry): CaptureEntry {
  return {
    ...(entry.ip === undefined ? {} : { ip: entry.ip }),
    port: entry.port,
    listenPort: entry.listenPort,
    ...(entry.sourceRanges === undefined ? {} : { sourceRanges: entry.sourceRanges }),
    ...(entry.fromNode ? { fromNode: true } : {}),
  };
}

export function isEmpty(changes: CaptureChanges): boolean {
  return changes.remove.length === 0 && changes.add.length === 0 && !changes.noEndpoints?.remove.length && !changes.noEndpoints?.add.length;
}

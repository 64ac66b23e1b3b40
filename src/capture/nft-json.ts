// Reads the entries back from `nft -j list table inet kube-haproxy`. Pure. Anything in our maps
// that is not `[{"concat": [address, port]}, listener]` or `[port, listener]` is an error, never
// skipped; so is anything in the firewall sets that is not `address . port` (restricted) or
// `address . port . source CIDR` (allowed).

import { KubeHaproxyError } from "../errors.ts";
import { parseNoEndpoints, type NoEndpointEntry } from "./no-endpoints.ts";
import { firewallSet, mapName } from "./ruleset.ts";
import { canonicalKey, entryKey, parseCidr, type CaptureEntry } from "./spec.ts";

const KINDS = ["ipv4", "ipv6", "nodeport"] as const;
const OUR_MAPS: ReadonlyMap<string, boolean> = new Map(KINDS.flatMap((kind) => [[mapName(kind), false], [mapName(kind, true), true]] as const)); // name → fromNode
const FIREWALL_SETS: ReadonlySet<string> = new Set((["ipv4", "ipv6"] as const).flatMap((family) => [firewallSet("restricted", family), firewallSet("allowed", family)]));

function unreadable(what: string, value: unknown): KubeHaproxyError {
  return new KubeHaproxyError("E_CAPTURE_FAILED", `cannot read nft's ${what}: ${JSON.stringify(value)?.slice(0, 200)}`);
}

function port(value: unknown): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n)) throw unreadable("port", value);
  return n;
}

function entryOf(element: unknown): CaptureEntry {
  if (!Array.isArray(element) || element.length !== 2) throw unreadable("map element", element);
  const [key, listener] = element as [unknown, unknown];
  if (typeof key === "number") return { port: canonicalKey({ port: key }).port, listenPort: port(listener) }; // a NodePort
  const concat = (key as { concat?: unknown } | null)?.concat;
  if (!Array.isArray(concat) || concat.length !== 2 || typeof concat[0] !== "string") throw unreadable("map key", key);
  const checked = canonicalKey({ ip: concat[0], port: port(concat[1]) });
  return { ip: checked.ip, port: checked.port, listenPort: port(listener) };
}

/** An `allowed-*` element: `address . port . source` (a prefix, or a plain address for a /32 or /128). */
function rangeOf(element: unknown): { key: string; range: string } {
  const concat = (element as { concat?: unknown } | null)?.concat;
  if (!Array.isArray(concat) || concat.length !== 3 || typeof concat[0] !== "string") throw unreadable("source range element", element);
  const key = canonicalKey({ ip: concat[0], port: port(concat[1]) });
  const source = concat[2] as { prefix?: { addr?: unknown; len?: unknown } } | string;
  const parsed = parseCidr(typeof source === "string" ? `${source}/${key.kind === "ipv4" ? 32 : 128}` : `${source?.prefix?.addr}/${source?.prefix?.len}`);
  if (!parsed) throw unreadable("source range", source);
  return { key: entryKey(key), range: `${parsed.address}/${parsed.prefix}` };
}

/** Every entry of our capture maps, in nft's order, with the source ranges the firewall sets give it. */
export function parseListTable(json: string): CaptureEntry[] {
  return parseCaptureState(json).entries;
}

/** Everything in our maps: the capture's entries (with their source ranges) and the Service ports without endpoints (no-endpoints.ts). */
export function parseCaptureState(json: string): { entries: CaptureEntry[]; noEndpoints: NoEndpointEntry[] } {
  const { entries, restricted, allowed, noEndpoints } = readTable(json);
  const ranges = new Map<string, string[]>([...restricted].map((key) => [key, []]));
  for (const element of allowed) {
    const { key, range } = rangeOf(element);
    ranges.get(key)?.push(range); // a range whose key is not restricted filters nothing: the next change replaces it
  }
  const withRanges = entries.map((entry) => {
    const sourceRanges = ranges.get(entryKey(entry));
    return sourceRanges === undefined ? entry : { ...entry, sourceRanges: sourceRanges.sort() };
  });
  return { entries: withRanges, noEndpoints };
}

function readTable(json: string): { entries: CaptureEntry[]; restricted: Set<string>; allowed: unknown[]; noEndpoints: NoEndpointEntry[] } {
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch (cause) {
    throw new KubeHaproxyError("E_CAPTURE_FAILED", "nft -j printed something that is not JSON", { cause });
  }
  const objects = (document as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(objects)) throw unreadable("output", document);
  const entries: CaptureEntry[] = [];
  const restricted = new Set<string>();
  const allowed: unknown[] = [];
  for (const object of objects) {
    const set = (object as { set?: { name?: unknown; elem?: unknown } } | null)?.set;
    if (set && typeof set.name === "string" && FIREWALL_SETS.has(set.name) && set.elem !== undefined) {
      if (!Array.isArray(set.elem)) throw unreadable("set elements", set.elem);
      if (set.name.startsWith("allowed")) allowed.push(...set.elem);
      else for (const element of set.elem) restricted.add(entryKey(entryOf([element, 0]))); // a set element: a map key without a value
      continue;
    }
    const map = (object as { map?: { name?: unknown; elem?: unknown } } | null)?.map;
    if (!map || typeof map.name !== "string" || !OUR_MAPS.has(map.name) || map.elem === undefined) continue;
    if (!Array.isArray(map.elem)) throw unreadable("map elements", map.elem);
    const origin = OUR_MAPS.get(map.name) ? { fromNode: true } : {};
    for (const element of map.elem) entries.push({ ...entryOf(element), ...origin });
  }
  return { entries, restricted, allowed, noEndpoints: parseNoEndpoints(objects) };
}

// Reads the entries back from `nft -j list table inet kube-haproxy`. Pure. Anything in our maps
// that is not `[{"concat": [address, port]}, listener]` or `[port, listener]` is an error, never skipped.

import { KubeHaproxyError } from "../errors.ts";
import { parseNoEndpoints, type NoEndpointEntry } from "./no-endpoints.ts";
import { mapName } from "./ruleset.ts";
import { canonicalKey, type CaptureEntry } from "./spec.ts";

const OUR_MAPS: ReadonlySet<string> = new Set([mapName("ipv4"), mapName("ipv6"), mapName("nodeport")]);

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

/** Every entry of our capture maps, in nft's order. */
export function parseListTable(json: string): CaptureEntry[] {
  return parseCaptureState(json).entries;
}

/** Everything in our maps: the capture's entries and the Service ports without endpoints (no-endpoints.ts). */
export function parseCaptureState(json: string): { entries: CaptureEntry[]; noEndpoints: NoEndpointEntry[] } {
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch (cause) {
    throw new KubeHaproxyError("E_CAPTURE_FAILED", "nft -j printed something that is not JSON", { cause });
  }
  const objects = (document as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(objects)) throw unreadable("output", document);
  const entries: CaptureEntry[] = [];
  for (const object of objects) {
    const map = (object as { map?: { name?: unknown; elem?: unknown } } | null)?.map;
    if (!map || typeof map.name !== "string" || !OUR_MAPS.has(map.name) || map.elem === undefined) continue;
    if (!Array.isArray(map.elem)) throw unreadable("map elements", map.elem);
    for (const element of map.elem) entries.push(entryOf(element));
  }
  return { entries, noEndpoints: parseNoEndpoints(objects) };
}

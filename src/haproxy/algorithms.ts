// HAProxy's balance algorithms that a Service may ask for, and what each can do: the one table.
// Argument-less ones only (uri hashes the whole path by default). Dynamic servers (`add server`)
// need an algorithm that can take a server at runtime: not static-rr, not the map-based hashes
// (source, uri without `hash-type consistent`) — DESIGN.md, "versions".

const TABLE = {
  roundrobin: { dynamicServers: true },
  "static-rr": { dynamicServers: false },
  leastconn: { dynamicServers: true },
  first: { dynamicServers: true },
  source: { dynamicServers: false },
  random: { dynamicServers: true },
  uri: { dynamicServers: false },
} as const satisfies Record<string, { readonly dynamicServers: boolean }>;

export const ALGORITHMS: ReadonlySet<string> = new Set(Object.keys(TABLE));

/** Whether a backend balanced by `algorithm` accepts `add server`. */
export function takesDynamicServers(algorithm: string): boolean {
  return Object.hasOwn(TABLE, algorithm) && TABLE[algorithm as keyof typeof TABLE].dynamicServers;
}

// The whole system in one process for a test (src/sim/world.ts), stopped when the test ends,
// and what HAProxy itself says it serves.

import { showServersState } from "../src/haproxy/commands.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import type { RawFlags } from "../src/options.ts";
import type { SidecarDeps } from "../src/sidecar.ts";
import { startWorld, type World } from "../src/sim/world.ts";

export type { World };

export async function world(t: { after(fn: () => Promise<void>): void }, mode: "tcp" | "http", flags: RawFlags = {}, deps: Partial<SidecarDeps> = {}): Promise<World> {
  const started = await startWorld({ mode, pods: 3, base: 40 + Math.floor(Math.random() * 100), slots: 4, flags, deps });
  t.after(() => started.stop());
  return started;
}

/** The addresses HAProxy's `show servers state` has in `state` for `backend`, sorted: HAProxy's word, not ours. */
export async function haproxyServers(socket: string, backend: string, state: "ready" | "drain" | "maint" = "ready"): Promise<string[]> {
  const client = new RuntimeClient({ address: socket, commandTimeoutMs: 5_000 });
  try {
    await client.waitConnected(5_000);
    const records = parseServersState(await client.execute(showServersState(backend)));
    return records.filter((record) => stateOf(record) === state).map((record) => record.address).sort();
  } finally {
    await client.close();
  }
}

// The whole system in one process for a test (src/sim/world.ts), stopped when the test ends.

import { startWorld, type World } from "../src/sim/world.ts";
import type { RawFlags } from "../src/options.ts";

export type { World };

export async function world(t: { after(fn: () => Promise<void>): void }, mode: "tcp" | "http", flags: RawFlags = {}): Promise<World> {
  const started = await startWorld({ mode, pods: 3, base: 40 + Math.floor(Math.random() * 100), slots: 4, flags });
  t.after(() => started.stop());
  return started;
}

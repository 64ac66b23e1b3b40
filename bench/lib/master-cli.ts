// The master CLI under load: while the master re-executes (a reload) or starts, its socket
// refuses or resets connections for a moment, longer when the machine is busy.

import { masterCommand, parseShowProc } from "../../src/haproxy/master.ts";

/** The master's reload count, waiting up to `timeoutMs` for its CLI; fails with a sentence. */
export async function reloadsSoFar(masterSocket: string, timeoutMs = 30_000): Promise<number> {
  let text: string;
  try {
    text = await masterCommand(masterSocket, "show proc", timeoutMs);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`HAProxy's master CLI at ${masterSocket} did not answer "show proc" within ${timeoutMs / 1000} s (${why})`, { cause: error });
  }
  const master = parseShowProc(text).find((process) => process.role === "master");
  if (!master) throw new Error(`HAProxy's master CLI at ${masterSocket} listed no master in "show proc": ${text.slice(0, 200)}`);
  return master.reloads;
}

// `kube-haproxy status [--socket …] [--json]`: HAProxy's slots per Service port, read once from
// the runtime socket. Exit 1, with the reason in one line, when nothing answers there as HAProxy.

import { resolveOptions, type RawFlags } from "../options.ts";
import { formatTable, readClaims, readStatus, withHolders } from "../status.ts";
import type { CommandInput } from "./setup.ts";

export async function status(input: CommandInput): Promise<void> {
  const options = resolveOptions(input.values as RawFlags, input.env, "status");
  const read = await readStatus(options.socket);
  // Local mode: pool backends under the Service port the sidecar last said holds them.
  const rows = options.proxyMode !== "onlyfetch" ? withHolders(read, await readClaims(options.config)) : read;
  process.stdout.write(input.values.json === "true" ? `${JSON.stringify(rows, null, 2)}\n` : formatTable(rows));
}

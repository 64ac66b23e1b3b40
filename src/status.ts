// `kube-haproxy status`: what HAProxy has right now, per Service port, read from the runtime
// socket (not from the sidecar), so it also works when the sidecar is down.

import { showServersState } from "./haproxy/commands.ts";
import { parseSlotName } from "./haproxy/names.ts";
import { RuntimeClient } from "./haproxy/runtime-client.ts";
import { parseServersState, stateOf, type ServerRecord } from "./haproxy/servers-state.ts";

export interface BackendSummary {
  readonly backend: string;
  /** Template slots (s<N>). */
  readonly slots: number;
  /** Dynamic servers beyond the template (d<N>). */
  readonly dynamic: number;
  readonly ready: number;
  readonly drain: number;
  readonly maint: number;
  /** Slots serving or draining an endpoint. */
  readonly used: number;
  readonly free: number;
}

/** Pure: server records → one summary per backend that has kube-haproxy slots, sorted. */
export function summarize(records: readonly ServerRecord[]): BackendSummary[] {
  const byBackend = new Map<string, { slots: number; dynamic: number; ready: number; drain: number; maint: number }>();
  for (const record of records) {
    const slot = parseSlotName(record.server);
    if (!slot) continue;
    const row = byBackend.get(record.backend) ?? { slots: 0, dynamic: 0, ready: 0, drain: 0, maint: 0 };
    byBackend.set(record.backend, row);
    if (slot.dynamic) row.dynamic++;
    else row.slots++;
    row[stateOf(record)]++;
  }
  return [...byBackend.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([backend, row]) => ({ backend, ...row, used: row.ready + row.drain, free: row.maint }));
}

export function formatTable(rows: readonly BackendSummary[]): string {
  const header = ["SERVICE PORT", "SLOTS", "DYNAMIC", "USED", "FREE", "READY", "DRAIN", "MAINT"];
  const lines = rows.map((r) => [r.backend, r.slots, r.dynamic, r.used, r.free, r.ready, r.drain, r.maint].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  return [header, ...lines].map((line) => line.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** Reads the runtime socket once. Throws a KubeHaproxyError when HAProxy is unreachable. */
export async function readStatus(socket: string, timeoutMs = 2_000): Promise<BackendSummary[]> {
  const client = new RuntimeClient({ address: socket, commandTimeoutMs: timeoutMs });
  try {
    await client.waitConnected(timeoutMs);
    return summarize(parseServersState(await client.execute(showServersState())));
  } finally {
    await client.close();
  }
}

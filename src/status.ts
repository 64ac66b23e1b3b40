// `kube-haproxy status`: what HAProxy has right now, per Service port, read from the runtime
// socket (not from the sidecar), so it also works when the sidecar is down. One question, one
// answer, no retries: a missing socket or a refused connection is said at once.

import { readFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { KubeHaproxyError } from "./errors.ts";
import { parseSocketAddress } from "./haproxy/address.ts";
import { showServersState } from "./haproxy/commands.ts";
import { parseSlotName } from "./haproxy/names.ts";
import { isDown, parseServersState, stateOf, type ServerRecord } from "./haproxy/servers-state.ts";

/** One Service port (an HAProxy backend `namespace:service:port`); JSON keys match the table's headers. */
export interface ServicePortStatus {
  readonly servicePort: string;
  /** Template slots (s<N>). */
  readonly slots: number;
  /** Dynamic servers beyond the template (d<N>). */
  readonly dynamic: number;
  /** Servers serving or draining an endpoint. */
  readonly used: number;
  /** Servers in maintenance: free for the next endpoint. */
  readonly free: number;
  readonly ready: number;
  readonly drain: number;
  /** Of the ready ones, those HAProxy's health check marked DOWN: Kubernetes still says ready. */
  readonly down: number;
}

/** Pure: server records → one row per backend that has kube-haproxy slots, sorted. */
export function summarize(records: readonly ServerRecord[]): ServicePortStatus[] {
  const byBackend = new Map<string, { slots: number; dynamic: number; ready: number; drain: number; maint: number; down: number }>();
  for (const record of records) {
    const slot = parseSlotName(record.server);
    if (!slot) continue;
    const row = byBackend.get(record.backend) ?? { slots: 0, dynamic: 0, ready: 0, drain: 0, maint: 0, down: 0 };
    byBackend.set(record.backend, row);
    if (slot.dynamic) row.dynamic++;
    else row.slots++;
    row[stateOf(record)]++;
    if (isDown(record)) row.down++;
  }
  return [...byBackend.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([servicePort, r]) => ({ servicePort, slots: r.slots, dynamic: r.dynamic, used: r.ready + r.drain, free: r.maint, ready: r.ready, drain: r.drain, down: r.down }));
}

/** Local mode: where the sidecar writes which Service port holds which pool backend (beside --config). */
export function claimsPath(config: string): string {
  return join(dirname(config), "claims.json");
}

/** The holders the sidecar last wrote (pool backend → Service port); empty when there is no such file. */
export async function readClaims(config: string): Promise<ReadonlyMap<string, string>> {
  const text = await readFile(claimsPath(config), "utf8").catch(() => "{}");
  try {
    const parsed: unknown = JSON.parse(text);
    return new Map(Object.entries(parsed as object).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
  } catch {
    return new Map();
  }
}

/** Local mode: pool backends named by the Service port holding them (`holders`, from the sidecar), sorted again. */
export function withHolders(rows: readonly ServicePortStatus[], holders: ReadonlyMap<string, string>): ServicePortStatus[] {
  return rows.map((row) => ({ ...row, servicePort: holders.get(row.servicePort) ?? row.servicePort })).sort((a, b) => (a.servicePort < b.servicePort ? -1 : 1));
}

const COLUMNS: readonly (readonly [string, keyof ServicePortStatus])[] = [
  ["SERVICE PORT", "servicePort"], ["SLOTS", "slots"], ["DYNAMIC", "dynamic"], ["USED", "used"], ["FREE", "free"], ["READY", "ready"], ["DRAIN", "drain"], ["DOWN", "down"],
];

export function formatTable(rows: readonly ServicePortStatus[]): string {
  const lines = [COLUMNS.map(([header]) => header), ...rows.map((row) => COLUMNS.map(([, key]) => String(row[key])))];
  const widths = COLUMNS.map((_, i) => Math.max(...lines.map((line) => line[i]!.length)));
  return lines.map((line) => line.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** Reads the runtime socket once. Throws E_HAPROXY_UNREACHABLE with the reason in one sentence. */
export async function readStatus(socket: string, timeoutMs = 2_000): Promise<ServicePortStatus[]> {
  const reply = await ask(socket, showServersState().line, timeoutMs);
  // The master CLI answers "Unknown command, but maybe…" and lists its own commands.
  if (/\bshow proc\b/.test(reply)) {
    throw unreachable(`${socket} is HAProxy's master socket; status reads the runtime API socket (the \`stats socket\` of haproxy.cfg, e.g. /var/run/haproxy/runtime.sock)`);
  }
  if (!/^1\n# be_id /.test(reply)) throw unreachable(`${socket} did not answer as HAProxy's runtime API: ${JSON.stringify(reply.split("\n")[0] ?? "")}`);
  return summarize(parseServersState(reply));
}

function unreachable(message: string): KubeHaproxyError {
  return new KubeHaproxyError("E_HAPROXY_UNREACHABLE", message);
}

/** Without `prompt`, HAProxy answers one command and closes; the half-close also ends a master CLI exchange. */
function ask(socket: string, line: string, timeoutMs: number): Promise<string> {
  const address = parseSocketAddress(socket);
  return new Promise((resolve, reject) => {
    const connection: Socket = "path" in address ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    let reply = "";
    connection.setEncoding("utf8");
    connection.setTimeout(timeoutMs, () => connection.destroy(unreachable(`no answer from ${socket} within ${timeoutMs} ms`)));
    connection.on("connect", () => connection.end(`${line}\n`));
    connection.on("data", (chunk: string) => (reply += chunk));
    connection.on("close", () => resolve(reply));
    connection.on("error", (error: NodeJS.ErrnoException) => reject(error instanceof KubeHaproxyError ? error : unreachable(describe(socket, error))));
  });
}

function describe(socket: string, error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case "ENOENT": return `no such socket: ${socket}: is HAProxy running?`;
    case "ECONNREFUSED": return `${socket} refuses connections: is HAProxy running?`;
    case "EACCES": return `no permission to use ${socket} (its group needs read and write)`;
    default: return `cannot reach ${socket}: ${error.message}`;
  }
}

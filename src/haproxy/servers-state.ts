// `show servers state`: HAProxy's own account of every server, the source of truth for repair.
// Format version 1, 25 columns in 2.6 to 3.2; columns are found by the header's names.

import { KubeHaproxyError } from "../errors.ts";
import type { ServerState } from "./commands.ts";

export interface ServerRecord {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number;
  /** 0 stopped, 1 starting, 2 running, 3 stopping. */
  readonly operationalState: number;
  /** Bit field of SRV_ADMF_* flags. */
  readonly adminState: number;
  readonly weight: number;
}

// SRV_ADMF_* (include/haproxy/server-t.h). CMAINT (0x04) only says "disabled in the
// configuration" and stays set after `state ready`, so it is not part of MAINT.
const ADMF_FMAINT = 0x01;
const ADMF_IMAINT = 0x02;
const ADMF_FDRAIN = 0x08;
const ADMF_IDRAIN = 0x10;
const ADMF_RMAINT = 0x20;
const ADMF_HMAINT = 0x40;
const MAINT = ADMF_FMAINT | ADMF_IMAINT | ADMF_RMAINT | ADMF_HMAINT;
const DRAIN = ADMF_FDRAIN | ADMF_IDRAIN;

export function stateOf(record: ServerRecord): ServerState {
  if (record.adminState & MAINT) return "maint";
  if (record.adminState & DRAIN) return "drain";
  return "ready";
}

/**
 * Ready as far as kube-haproxy set it, but stopped as far as HAProxy knows: its health check
 * failed. Only health-checked servers get there (without a check a ready server runs).
 */
export function isDown(record: ServerRecord): boolean {
  return stateOf(record) === "ready" && record.operationalState === 0;
}

/** Per backend, how many of its servers `isDown`; every backend of `records` is listed. */
export function countDown(records: readonly ServerRecord[]): Map<string, number> {
  const down = new Map<string, number>();
  for (const record of records) down.set(record.backend, (down.get(record.backend) ?? 0) + (isDown(record) ? 1 : 0));
  return down;
}

const REQUIRED = ["be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_port"] as const;

/** Parses the body of `show servers state [backend]`. Throws on a header it cannot read. */
export function parseServersState(body: string): ServerRecord[] {
  const lines = body.split("\n");
  const header = lines.find((line) => line.startsWith("# "));
  if (!header) {
    // An unknown backend or an empty process: HAProxy sends only the version line.
    if (lines.every((line) => line === "" || /^\d+$/.test(line))) return [];
    throw new KubeHaproxyError("E_UNREADABLE_REPLY", `unreadable "show servers state" reply: ${lines[0] ?? ""}`, { reply: body.slice(0, 200) });
  }
  const columns = header.slice(2).split(" ");
  const index = Object.fromEntries(REQUIRED.map((name) => [name, columns.indexOf(name)])) as Record<
    (typeof REQUIRED)[number],
    number
  >;
  for (const name of REQUIRED) {
    if (index[name] < 0) throw new KubeHaproxyError("E_UNREADABLE_REPLY", `"show servers state" has no column ${name}`);
  }
  const records: ServerRecord[] = [];
  for (const line of lines) {
    if (line === "" || line.startsWith("#") || /^\d+$/.test(line)) continue;
    const field = line.split(" ");
    records.push({
      backend: field[index.be_name] ?? "",
      server: field[index.srv_name] ?? "",
      address: field[index.srv_addr] ?? "",
      port: Number(field[index.srv_port]),
      operationalState: Number(field[index.srv_op_state]),
      adminState: Number(field[index.srv_admin_state]),
      weight: Number(field[index.srv_uweight]),
    });
  }
  return records;
}

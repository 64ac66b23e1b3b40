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

const REQUIRED = ["be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_port"] as const;
type Column = (typeof REQUIRED)[number];

/** A line longer than this is not one of HAProxy's (its own are ~150 characters, 25 columns). */
const MAX_LINE_CHARS = 64 * 1024;

/**
 * Reads the body of `show servers state [backend]` as it arrives, chunk by chunk: the reply of
 * 160,000 servers is ~14 MB, and splitting it whole into lines and each line into its 25
 * columns made ~4 million short strings. This keeps one partial line at a time and cuts out
 * only the columns it needs (found by the header's names). `onServer` gets one record object,
 * reused for the next line: copy what you keep. The first error (an unreadable header, a
 * reply that is not this table) is kept, the rest of the input ignored, and end() throws it.
 */
export class ServersStateReader {
  readonly #onServer: (record: ServerRecord) => void;
  #partial = "";
  // Column index of each REQUIRED name, by the header; undefined before it.
  #index: Record<Column, number> | undefined;
  // Column number → which REQUIRED entry it fills (-1: none); a line is read up to #last.
  #wanted = new Int8Array(0);
  #last = 0;
  #error: KubeHaproxyError | undefined;
  #firstLine: string | undefined;
  // The previous line's backend name: consecutive lines of one backend share one string.
  #backend = "";
  readonly #record = { backend: "", server: "", address: "", port: 0, operationalState: 0, adminState: 0, weight: 0 };
  readonly #starts = new Int32Array(REQUIRED.length);
  readonly #ends = new Int32Array(REQUIRED.length);

  constructor(onServer: (record: ServerRecord) => void) {
    this.#onServer = onServer;
  }

  push(chunk: string): void {
    if (this.#error) return;
    let start = 0;
    try {
      for (let end = chunk.indexOf("\n"); end !== -1; end = chunk.indexOf("\n", start)) {
        if (this.#partial === "") this.#line(chunk, start, end);
        else {
          const line = this.#partial + chunk.slice(start, end);
          this.#partial = "";
          this.#line(line, 0, line.length);
        }
        start = end + 1;
      }
      if (start < chunk.length) {
        this.#partial += chunk.slice(start);
        if (this.#partial.length > MAX_LINE_CHARS) throw unreadable(`a line longer than ${MAX_LINE_CHARS} characters`, this.#partial);
      }
    } catch (error) {
      this.#error = error as KubeHaproxyError;
      this.#partial = "";
    }
  }

  /** The reply is complete: reads its last line; throws the first error met. */
  end(): void {
    const line = this.#partial;
    this.#partial = "";
    if (!this.#error && line !== "") {
      try {
        this.#line(line, 0, line.length);
      } catch (error) {
        this.#error = error as KubeHaproxyError;
      }
    }
    if (this.#error) throw this.#error;
  }

  #line(text: string, start: number, end: number): void {
    if (end === start) return;
    this.#firstLine ??= text.slice(start, Math.min(end, start + 200));
    if (text.charCodeAt(start) === 35 /* # */) {
      if (this.#index === undefined && text.charCodeAt(start + 1) === 32) this.#header(text.slice(start + 2, end));
      return;
    }
    if (isDigits(text, start, end)) return; // the format version line
    // An unknown backend or an empty process: HAProxy sends only the version line; anything
    // else before the header is an error message (Permission denied, Unknown command, …).
    if (this.#index === undefined) throw unreadable(`unreadable "show servers state" reply: ${this.#firstLine}`, this.#firstLine);
    this.#fields(text, start, end);
  }

  #header(names: string): void {
    const columns = names.split(" ");
    const index = {} as Record<Column, number>;
    for (const name of REQUIRED) {
      index[name] = columns.indexOf(name);
      if (index[name] < 0) throw new KubeHaproxyError("E_UNREADABLE_REPLY", `"show servers state" has no column ${name}`);
    }
    this.#index = index;
    this.#last = Math.max(...REQUIRED.map((name) => index[name]));
    this.#wanted = new Int8Array(this.#last + 1).fill(-1);
    REQUIRED.forEach((name, i) => (this.#wanted[index[name]] = i));
  }

  /** Finds the wanted columns' bounds without splitting the line, then fills the record. */
  #fields(text: string, start: number, end: number): void {
    const starts = this.#starts.fill(end);
    const ends = this.#ends.fill(end); // a column the line lacks reads as empty
    const wanted = this.#wanted;
    let from = start;
    for (let column = 0; column <= this.#last && from <= end; column++) {
      let to = text.indexOf(" ", from);
      if (to === -1 || to > end) to = end;
      const entry = wanted[column]!;
      if (entry >= 0) {
        starts[entry] = from;
        ends[entry] = to;
      }
      from = to + 1;
    }
    const record = this.#record;
    if (ends[0]! - starts[0]! !== this.#backend.length || !text.startsWith(this.#backend, starts[0]!)) this.#backend = detached(text.slice(starts[0]!, ends[0]!));
    record.backend = this.#backend;
    record.server = text.slice(starts[1]!, ends[1]!);
    record.address = detached(text.slice(starts[2]!, ends[2]!));
    record.operationalState = number(text, starts[3]!, ends[3]!);
    record.adminState = number(text, starts[4]!, ends[4]!);
    record.weight = number(text, starts[5]!, ends[5]!);
    record.port = number(text, starts[6]!, ends[6]!);
    this.#onServer(record);
  }
}

/**
 * A copy of a piece of a chunk that does not keep the chunk alive. V8 cuts strings of 13
 * characters and more as slices of their parent: an address or backend name kept in the
 * applied picture would hold its ~16 KB chunk, i.e. the whole reply. A concatenation is
 * flattened into a string of its own when sliced; shorter pieces are copies already.
 */
function detached(piece: string): string {
  return piece.length < 13 ? piece : (" " + piece).slice(1);
}

function isDigits(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** A decimal column; NaN when it is not one, 0 when empty (as Number() of the text). */
function number(text: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return Number(text.slice(start, end));
    value = value * 10 + digit;
  }
  return value;
}

function unreadable(message: string, text: string): KubeHaproxyError {
  return new KubeHaproxyError("E_UNREADABLE_REPLY", message, { reply: text.slice(0, 200) });
}

/** Parses the whole body of `show servers state [backend]`. Throws on a header it cannot read. */
export function parseServersState(body: string): ServerRecord[] {
  const records: ServerRecord[] = [];
  const reader = new ServersStateReader((record) => records.push({ ...record }));
  reader.push(body);
  reader.end();
  return records;
}

// Reads the sidecar's per-event marks (tail-marks.ts) against the bench's own samples: where
// each single change spent its time, and whether a GC pause overlapped it. Pure; every time is
// in ms of the monotonic clock the bench and the sidecar share.

/** [what, at, size or duration]: "tls" | "parse" | "write" | "reply" | "gc<kind>". */
export type Mark = readonly [string, number, number];

/** One change: the API write at t0, and the next change's write (or the end of the run). */
export interface Window {
  readonly t0: number;
  readonly until: number;
}

export interface Stages {
  /** t0 → the watch bytes carrying the event arrived in the sidecar. */
  readonly arrive: number;
  /** Those bytes → the sidecar wrote its commands to HAProxy (TLS, parse, translate, plan). */
  readonly work: number;
  /** The commands written → HAProxy's last reply read (HAProxy, and the sidecar woken again). */
  readonly haproxy: number;
  /** t0 → HAProxy's last reply read: the change applied, as the sidecar knows it. */
  readonly total: number;
  /** GC pauses of the sidecar overlapping [t0, total], in ms each. */
  readonly gcPauses: readonly number[];
}

/**
 * The stages of each window, or undefined for a window whose marks are incomplete (no event
 * parsed, no command written, or no reply after it).
 */
export function stagesOf(marks: readonly Mark[], windows: readonly Window[]): (Stages | undefined)[] {
  const sorted = [...marks].sort((a, b) => a[1] - b[1]);
  const gcs = sorted.filter((m) => m[0].startsWith("gc"));
  return windows.map(({ t0, until }) => {
    const inside = sorted.filter((m) => m[1] >= t0 && m[1] < until);
    const parse = inside.find((m) => m[0] === "parse");
    if (!parse) return undefined;
    const tls = inside.findLast((m) => m[0] === "tls" && m[1] <= parse[1]);
    const write = inside.find((m) => m[0] === "write" && m[1] >= parse[1]);
    // The change's replies: up to the sidecar's next write (a periodic full sync's are not its).
    const next = write && inside.find((m) => m[0] === "write" && m[1] > write[1]);
    const reply = write && inside.findLast((m) => m[0] === "reply" && m[1] >= write[1] && m[1] < (next?.[1] ?? Infinity));
    if (!tls || !write || !reply) return undefined;
    const end = reply[1];
    return {
      arrive: tls[1] - t0,
      work: write[1] - tls[1],
      haproxy: end - write[1],
      total: end - t0,
      gcPauses: gcs.filter((g) => g[1] < end && g[1] + g[2] > t0).map((g) => g[2]),
    };
  });
}

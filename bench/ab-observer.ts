// Does the observer cost the observed? The sidecar as its own process (latency-process.ts), its
// single changes alternating, two by two, between two observers: "poll" reads HAProxy's state
// back to back from the write on (the harness), "quiet" lets nothing run for 15 ms and
// then checks once. Both groups are timed the same way, by the sidecar's own marks (API write →
// HAProxy's last reply read), so a difference is what the polling does to the sidecar.
//
//   node bench/ab-observer.ts SAMPLES [SERVICES PER_SERVICE]
//
// Prints one JSON line: the 1-minute load average, then per observer p50/p90/p99/max in µs of
// the change (total) and of the sidecar's own work (bytes in → commands written), and what the
// poll itself saw (t0 → the poll that showed the change).

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startSidecarProcess } from "./latency-process.ts";
import { stagesOf, type Mark, type Window } from "./lib/marks.ts";

const WARMUP = 10;
const QUIET_MS = 15;

const [samples, services = 1, perService = 1] = process.argv.slice(2).map(Number) as [number, number?, number?];
if (!Number.isInteger(samples) || samples < 1) throw new TypeError("usage: node bench/ab-observer.ts SAMPLES [SERVICES PER_SERVICE]");
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const dir = await mkdtemp(join(tmpdir(), "kh-ab-observer-"));
const marksFile = join(dir, "marks.json");
const windows: Record<"poll" | "quiet", Window[]> = { poll: [], quiet: [] };
const pollSaw: number[] = [];
try {
  const p = await startSidecarProcess({ services, perService, marksFile });
  try {
    for (let i = 0; i < WARMUP + 2 * samples; i++) {
      const [from, to] = i % 2 === 0 ? [p.a, p.b] : [p.b, p.a];
      const observer = Math.floor(i / 2) % 2 === 0 ? "poll" : "quiet";
      const t0 = now();
      p.setEndpoint(to.ip);
      if (observer === "quiet") await sleep(QUIET_MS);
      const until = performance.now() + 10_000;
      while (!(await p.shows(to.ip, from.ip))) if (performance.now() > until) throw new Error(`${to.ip} never became ready`);
      const seen = now();
      await sleep(QUIET_MS);
      if (i < WARMUP) continue;
      windows[observer].push({ t0, until: now() });
      if (observer === "poll") pollSaw.push(seen - t0);
    }
  } finally {
    await p.stop();
  }
  const { marks } = JSON.parse(await readFile(marksFile, "utf8")) as { marks: Mark[] };
  const µs = (ms: number): number => Math.round(ms * 1000);
  const row = (values: number[]): Record<string, number> => {
    const sorted = [...values].sort((x, y) => x - y);
    const at = (q: number): number => µs(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
    return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: µs(sorted.at(-1)!) };
  };
  const out: Record<string, unknown> = { load: Number((await readFile("/proc/loadavg", "utf8")).split(" ")[0]), services, perService };
  for (const [observer, list] of Object.entries(windows)) {
    const stages = stagesOf(marks, list).filter((s) => s !== undefined);
    out[observer] = { total: row(stages.map((s) => s.total)), work: row(stages.map((s) => s.work)) };
  }
  out.pollSaw = row(pollSaw);
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);

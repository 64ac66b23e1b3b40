// Single-change latency, A/B: one world per source tree (this repository at other commits, e.g.
// `git worktree add /tmp/old <commit> && (cd /tmp/old && npm ci)`), all in this one process,
// the samples alternating between them. Each sample sees the same load at the same moment, which
// separate runs on a shared machine never do (there, run-to-run noise was larger than the
// differences looked for). Measures what latency.ts's (a) does: the API write, the watch event,
// the proxier, the data plane, HAProxy's ack.
//
//   node bench/ab-latency.ts SAMPLES TAG=DIR [TAG=DIR …]
//
// Prints one JSON line: the 1-minute load average, then per tree p50/p90/p99/max in µs of
// (a) API write → applied, (a2) the proxier, (a3) setBackend → applied. Run it several times
// and compare medians. Trees must have src/sim/world.ts (startWorld, appliedIps), i.e. 2026-11-28
// or later; the data plane is `sidecar.dataplane` (or `sidecar.engine` before issue 9).

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const WARMUP = 20;
const SPACING_MS = 5;

interface Emitter {
  on(event: string, listener: (...args: never[]) => void): unknown;
  off(event: string, listener: (...args: never[]) => void): unknown;
  prependListener(event: string, listener: () => void): unknown;
}

interface Tree {
  readonly tag: string;
  readonly world: { backend: string; pods: { ip: string }[]; setEndpoints(endpoints: { ip: string }[]): void; stop(): Promise<void> };
  readonly dataplane: Emitter;
  readonly readyIps: () => string[];
  t1: number;
  t2: number;
  readonly samples: { a: number[]; a2: number[]; a3: number[] };
}

async function open(tag: string, dir: string, base: number): Promise<Tree> {
  const sim = (await import(resolve(dir, "src/sim/world.ts"))) as {
    startWorld(options: { mode: "tcp"; pods: number; base: number }): Promise<Tree["world"] & { sidecar: Record<string, Emitter> }>;
    appliedIps(sidecar: unknown, backend: string, state: string): string[];
  };
  const world = await sim.startWorld({ mode: "tcp", pods: 2, base });
  const { sidecar } = world;
  const tree: Tree = {
    tag,
    world,
    dataplane: (sidecar.dataplane ?? sidecar.engine)!,
    readyIps: () => sim.appliedIps(sidecar, world.backend, "ready"),
    t1: 0,
    t2: 0,
    samples: { a: [], a2: [], a3: [] },
  };
  sidecar.watch!.prependListener("endpointslice", () => void (tree.t1 = performance.now()));
  sidecar.watch!.on("endpointslice", () => void (tree.t2 = performance.now()));
  return tree;
}

/** performance.now() at the data plane's "applied" that leaves exactly `ip` ready. */
function applied(tree: Tree, ip: string): Promise<number> {
  return new Promise((done) => {
    const on = (name: string): void => {
      if (name !== tree.world.backend) return;
      const at = performance.now();
      const ready = tree.readyIps();
      if (ready.length !== 1 || ready[0] !== ip) return;
      tree.dataplane.off("applied", on);
      done(at);
    };
    tree.dataplane.on("applied", on);
  });
}

const samples = Number(process.argv[2]);
const specs = process.argv.slice(3).map((arg) => arg.split("=") as [string, string]);
if (!Number.isInteger(samples) || samples < 1 || specs.length === 0 || specs.some((spec) => spec.length !== 2)) {
  throw new TypeError("usage: node bench/ab-latency.ts SAMPLES TAG=DIR [TAG=DIR …]");
}
const trees: Tree[] = [];
try {
  for (const [i, [tag, dir]] of specs.entries()) trees.push(await open(tag, dir, 61 + i));
  for (const tree of trees) {
    const first = applied(tree, tree.world.pods[0]!.ip);
    tree.world.setEndpoints([{ ip: tree.world.pods[0]!.ip }]);
    await first;
  }
  for (let i = 0; i < WARMUP + samples; i++) {
    for (const tree of i % 2 === 0 ? trees : [...trees].reverse()) {
      const target = tree.world.pods[i % 2 === 0 ? 1 : 0]!.ip;
      const acked = applied(tree, target);
      const t0 = performance.now();
      tree.world.setEndpoints([{ ip: target }]);
      const t3 = await acked;
      if (i >= WARMUP) {
        tree.samples.a.push(t3 - t0);
        tree.samples.a2.push(tree.t2 - tree.t1);
        tree.samples.a3.push(t3 - tree.t2);
      }
      await sleep(SPACING_MS);
    }
  }
} finally {
  for (const tree of trees) await tree.world.stop();
}
const µs = (ms: number): number => Math.round(ms * 1000);
const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const out: Record<string, unknown> = { load: Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]) };
for (const tree of trees) {
  const row: Record<string, number> = {};
  for (const [name, values] of Object.entries(tree.samples)) {
    const sorted = [...values].sort((x, y) => x - y);
    for (const q of [50, 90, 99]) row[`${name}p${q}`] = µs(quantile(sorted, q / 100));
    row[`${name}max`] = µs(sorted.at(-1)!);
  }
  out[tree.tag] = row;
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0); // the trees' modules may keep handles (client-node agents) open

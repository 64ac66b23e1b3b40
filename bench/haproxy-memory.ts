// HAProxy's memory per server slot against `nbthread` (issue 14): HAProxy keeps per-thread
// state per server, so a slot costs more the more threads the worker runs.
//
//   for each nbthread (1 and the --nbthread default), three idle workers, one after another:
//     empty:  no backends                      (the worker's own base)
//     small:  B backends × S1 template slots
//     large:  B backends × S2 template slots
//   per slot    = (large − small) / (B × (S2 − S1))     backends cancel out
//   per backend = (small − empty) / B − S1 × per slot   the section itself, beyond its slots
//
// Each figure is the worker's VmRSS after its start; the three workers of one nbthread run in
// the same minute, so the differences are measured against a baseline of the same run.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { renderConfig } from "../src/haproxy/render.ts";
import type { Backend } from "../src/model.ts";
import { FLAGS } from "../src/options.ts";
import { runtimeSocketIn, startHaproxy } from "../src/sim/haproxy.ts";
import { rssKb, workerPid } from "./lib/haproxy-rss.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs } from "./lib/stats.ts";

export interface MemoryShape {
  readonly backends: number;
  readonly smallSlots: number;
  readonly largeSlots: number;
}

export interface MemoryResult extends MemoryShape {
  readonly nbthread: number;
  readonly emptyKb: number;
  readonly smallKb: number;
  readonly largeKb: number;
  readonly perSlotBytes: number;
  readonly perBackendBytes: number;
  readonly largeStartMs: number;
}

/** Worker RSS (KB) and start time of an idle HAProxy with `backends` × `slots` and `nbthread`. */
async function idleWorker(backends: number, slots: number, nbthread: number): Promise<{ kb: number; startMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), "kh-bench-mem-"));
  const haproxy = await (async () => {
    const models: Backend[] = Array.from({ length: backends }, (_, b) => ({
      name: `bench:mem${b}:80`, servicePort: `bench/mem${b}:80`, mode: "tcp", algorithm: "roundrobin", binds: [], minSlots: slots, endpoints: [],
    }));
    const config = renderConfig(models.map((backend) => ({ backend, slots, filled: new Map() })), { runtimeSocket: runtimeSocketIn(dir), nbthread });
    const at = performance.now();
    const started = await startHaproxy({ dir, config });
    return { started, startMs: performance.now() - at };
  })().catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  try {
    const pid = await workerPid(haproxy.started);
    await sleep(300); // the threads finish their start-up allocations
    return { kb: rssKb(pid), startMs: haproxy.startMs };
  } finally {
    await haproxy.started.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function measureSlotMemory(shape: MemoryShape, nbthread: number): Promise<MemoryResult> {
  const empty = await idleWorker(0, 0, nbthread);
  const small = await idleWorker(shape.backends, shape.smallSlots, nbthread);
  const large = await idleWorker(shape.backends, shape.largeSlots, nbthread);
  const perSlotBytes = ((large.kb - small.kb) * 1024) / (shape.backends * (shape.largeSlots - shape.smallSlots));
  const perBackendBytes = ((small.kb - empty.kb) * 1024) / shape.backends - shape.smallSlots * perSlotBytes;
  return { ...shape, nbthread, emptyKb: empty.kb, smallKb: small.kb, largeKb: large.kb, perSlotBytes, perBackendBytes, largeStartMs: large.startMs };
}

const QUICK: MemoryShape = { backends: 200, smallSlots: 8, largeSlots: 32 };
const FULL: MemoryShape = { backends: 1_000, smallSlots: 8, largeSlots: 64 };

const COLUMNS = ["nbthread", "backends", "worker RSS: none / × small / × large slots", "per slot", "per backend (beyond its slots)", "start, large"];

export const haproxyMemoryScenario: Scenario = {
  name: "haproxy-memory",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const shape = context.quick ? QUICK : FULL;
    const chosen = Number(FLAGS.nbthread.default);
    const results: MemoryResult[] = [];
    for (const nbthread of [...new Set([1, chosen])]) {
      const result = await measureSlotMemory(shape, nbthread);
      context.log(`haproxy-memory: nbthread ${nbthread}: ${Math.round(result.perSlotBytes)} B per slot`);
      results.push(result);
    }
    const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;
    return {
      title: "HAProxy worker memory per server slot, by nbthread",
      columns: COLUMNS,
      rows: results.map((r) => [
        String(r.nbthread),
        r.backends.toLocaleString("en-US"),
        `${mb(r.emptyKb)} / ${r.smallSlots} ${mb(r.smallKb)} / ${r.largeSlots} ${mb(r.largeKb)}`,
        `${(r.perSlotBytes / 1024).toFixed(2)} KB`,
        `${(r.perBackendBytes / 1024).toFixed(1)} KB`,
        formatMs(r.largeStartMs),
      ]),
      notes: [
        `Idle workers (template slots disabled), VmRSS after start; per slot = (large − small) / (backends × extra slots), per backend = the rest of (small − none) / backends. nbthread ${chosen} is the --nbthread default.`,
        "Sizing (README): worker ≈ base + slots × per slot(nbthread) + Service ports × per backend; a reload runs two workers at once.",
      ],
      json: { results },
    };
  },
};

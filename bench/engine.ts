// Issue 2's micro-benchmark: how close the engine (Dataplane + RuntimeClient) comes to the raw
// socket limit when applying endpoint changes over HAProxy's runtime API.
//
//   one real HAProxy, `backends` × `slotsPerBackend` template slots, nothing listening behind them
//   round r (r = 0 is a warm-up), raw and engine taking turns at going first:
//     raw:    fill  = the exact `set server … addr … port …` + `state ready` lines the engine
//                     sends, written by raw-socket.ts;  empty = the `state maint` lines
//     engine: fill  = setBackend(endpoints) for every backend → whenSynced();  empty = setBackend([])
//   after every phase, untimed: `show servers state` must match the expected slots exactly
//   result: the median of each phase per client, commands/s, and engine/raw (target ≤ 2×)
//
// Every fill uses new addresses and a new port, so each `addr` command really changes the slot
// for both clients. Before its turn the engine re-reads HAProxy (`requestFullSync`, untimed), as
// the raw turn changed HAProxy behind its back; that costs no command, everything is in maint.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setServerAddr, setServerState, showServersState } from "../src/haproxy/commands.ts";
import { slotName } from "../src/haproxy/names.ts";
import { renderConfig } from "../src/haproxy/render.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { silentLogger } from "../src/log.ts";
import { endpointKey, type Backend, type Endpoint } from "../src/model.ts";
import { runtimeSocketIn, startHaproxy, type HaproxyProcess } from "../src/sim/haproxy.ts";
import { Dataplane } from "../src/dataplane/dataplane.ts";
import { haproxyRss } from "./lib/haproxy-rss.ts";
import { rawCommand, rawSocketRun } from "./lib/raw-socket.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs, median } from "./lib/stats.ts";

export interface EngineBenchOptions {
  /** Endpoint changes per phase: endpoints added by a fill, removed by an empty. */
  readonly changes: number;
  readonly backends: number;
  readonly slotsPerBackend: number;
  /** Timed rounds, after one untimed warm-up round. @default 3 */
  readonly rounds?: number;
  readonly log?: (line: string) => void;
}

export type Phase = "fill" | "empty";

export interface PhaseResult {
  readonly phase: Phase;
  /** Runtime commands per run of this phase (identical for both clients). */
  readonly commands: number;
  /** Medians over the timed rounds, in ms. */
  readonly rawMs: number;
  readonly engineMs: number;
  readonly rawCommandsPerSec: number;
  readonly engineCommandsPerSec: number;
  /** engineMs / rawMs. */
  readonly ratio: number;
  readonly rawSamplesMs: readonly number[];
  readonly engineSamplesMs: readonly number[];
}

export interface EngineBenchResult {
  readonly changes: number;
  readonly backends: number;
  readonly slotsPerBackend: number;
  readonly rounds: number;
  readonly haproxy: { readonly startMs: number; readonly masterRssMb: number; readonly workerRssMb: number };
  readonly phases: readonly PhaseResult[];
  /** Fill and empty together: sums of the medians. */
  readonly total: { readonly commands: number; readonly rawMs: number; readonly engineMs: number; readonly ratio: number };
}

export async function benchEngine(options: EngineBenchOptions): Promise<EngineBenchResult> {
  const { changes, backends, slotsPerBackend } = options;
  const rounds = options.rounds ?? 3;
  const log = options.log ?? (() => {});
  for (const [name, value] of Object.entries({ changes, backends, slotsPerBackend, rounds })) {
    if (!Number.isInteger(value) || value < 1) throw new TypeError(`benchEngine: ${name} must be a positive integer, got ${value}`);
  }
  if (changes > backends * slotsPerBackend) {
    throw new TypeError(`benchEngine: ${changes} changes do not fit in ${backends} × ${slotsPerBackend} slots`);
  }

  const models: Backend[] = [];
  for (let b = 0; b < backends; b++) {
    models.push({ name: `bench:svc${b}:80`, servicePort: `bench/svc${b}:80`, mode: "tcp", algorithm: "roundrobin", binds: [], minSlots: slotsPerBackend, endpoints: [] });
  }
  // Endpoints per backend: changes spread evenly, the remainder on the first backends.
  const counts = models.map((_, b) => Math.floor(changes / backends) + (b < changes % backends ? 1 : 0));

  const dir = await mkdtemp(join(tmpdir(), "kh-bench-"));
  let haproxy: HaproxyProcess | undefined;
  let client: RuntimeClient | undefined;
  let engine: Dataplane | undefined;
  try {
    const config = renderConfig(
      models.map((backend) => ({ backend, slots: slotsPerBackend, filled: new Map() })),
      { runtimeSocket: runtimeSocketIn(dir) },
    );
    const startAt = performance.now();
    haproxy = await startHaproxy({ dir, config });
    const startMs = performance.now() - startAt;
    const rss = await haproxyRss(haproxy);
    log(`engine: HAProxy with ${backends} × ${slotsPerBackend} slots started in ${formatMs(startMs)} (master ${rss.masterRssMb} MB, worker ${rss.workerRssMb} MB)`);

    client = new RuntimeClient({ address: haproxy.runtimeSocket, commandTimeoutMs: 120_000 });
    engine = new Dataplane({ transport: client, log: silentLogger, configSyncPeriodMs: 0 });
    let engineCommands = 0;
    let engineFailed = 0;
    engine.on("flushed", (report) => {
      engineCommands += report.commands;
      engineFailed += report.failed;
    });
    engine.start();
    engine.beginSync();
    await client.waitConnected();
    await engine.whenSynced();

    const samples = { raw: { fill: [] as number[], empty: [] as number[] }, engine: { fill: [] as number[], empty: [] as number[] } };
    const commands = { fill: 2 * changes, empty: changes };
    let fillNo = 0;
    for (let round = 0; round <= rounds; round++) {
      const order = round % 2 === 0 ? (["raw", "engine"] as const) : (["engine", "raw"] as const);
      for (const who of order) {
        const wanted = endpointsFor(counts, fillNo++);
        const timed: Record<Phase, number> = { fill: 0, empty: 0 };
        if (who === "raw") {
          timed.fill = await rawSocketRun(haproxy.runtimeSocket, fillLines(models, wanted));
          await verify(haproxy.runtimeSocket, models, wanted, "raw fill");
          timed.empty = await rawSocketRun(haproxy.runtimeSocket, emptyLines(models, wanted));
          await verify(haproxy.runtimeSocket, models, undefined, "raw empty");
        } else {
          engine.requestFullSync();
          await engine.whenSynced();
          for (const phase of ["fill", "empty"] as const) {
            engineCommands = engineFailed = 0;
            const started = performance.now();
            for (let b = 0; b < backends; b++) engine.setBackend({ ...models[b]!, endpoints: phase === "fill" ? wanted[b]! : [] });
            await engine.whenSynced();
            timed[phase] = performance.now() - started;
            if (engineFailed > 0 || engineCommands !== commands[phase]) {
              throw new Error(`engine ${phase}: ${engineCommands} commands (${engineFailed} failed), expected ${commands[phase]}`);
            }
            await verify(haproxy.runtimeSocket, models, phase === "fill" ? wanted : undefined, `engine ${phase}`);
          }
        }
        log(`engine: round ${round}${round === 0 ? " (warm-up)" : ""} ${who}: fill ${formatMs(timed.fill)}, empty ${formatMs(timed.empty)}`);
        if (round > 0) {
          samples[who].fill.push(timed.fill);
          samples[who].empty.push(timed.empty);
        }
      }
    }

    const phases = (["fill", "empty"] as const).map((phase): PhaseResult => {
      const rawMs = median(samples.raw[phase]);
      const engineMs = median(samples.engine[phase]);
      return {
        phase,
        commands: commands[phase],
        rawMs,
        engineMs,
        rawCommandsPerSec: commands[phase] / (rawMs / 1000),
        engineCommandsPerSec: commands[phase] / (engineMs / 1000),
        ratio: engineMs / rawMs,
        rawSamplesMs: samples.raw[phase],
        engineSamplesMs: samples.engine[phase],
      };
    });
    const rawMs = phases.reduce((sum, p) => sum + p.rawMs, 0);
    const engineMs = phases.reduce((sum, p) => sum + p.engineMs, 0);
    return {
      changes,
      backends,
      slotsPerBackend,
      rounds,
      haproxy: { startMs, ...rss },
      phases,
      total: { commands: commands.fill + commands.empty, rawMs, engineMs, ratio: engineMs / rawMs },
    };
  } finally {
    await engine?.stop();
    await client?.close();
    await haproxy?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The endpoints of fill number `fillNo`, per backend, sorted as the model wants them. Addresses
 * on 127.250–253/16 (nothing listens there); every fill moves to another /16 and port.
 */
function endpointsFor(counts: readonly number[], fillNo: number): Endpoint[][] {
  let g = 0;
  return counts.map((count) => {
    const endpoints: Endpoint[] = [];
    for (let j = 0; j < count; j++, g++) {
      endpoints.push({ ip: `127.${250 + (fillNo % 4)}.${Math.floor(g / 250) % 250}.${(g % 250) + 1}`, port: 10_000 + (fillNo % 50_000), state: "ready" });
    }
    return endpoints.sort((a, b) => (endpointKey(a) < endpointKey(b) ? -1 : 1));
  });
}

/** What the engine sends to fill empty slots: endpoint i of a backend goes to slot i + 1. */
function fillLines(models: readonly Backend[], wanted: readonly Endpoint[][]): string[] {
  const lines: string[] = [];
  models.forEach((model, b) => {
    wanted[b]!.forEach((endpoint, i) => {
      lines.push(setServerAddr(model.name, slotName(i + 1), endpoint.ip, endpoint.port).line);
      lines.push(setServerState(model.name, slotName(i + 1), "ready").line);
    });
  });
  return lines;
}

/** What the engine sends when every endpoint goes: `state maint` on each used slot. */
function emptyLines(models: readonly Backend[], wanted: readonly Endpoint[][]): string[] {
  const lines: string[] = [];
  models.forEach((model, b) => {
    for (let i = 0; i < wanted[b]!.length; i++) lines.push(setServerState(model.name, slotName(i + 1), "maint").line);
  });
  return lines;
}

/** Throws unless every slot holds its expected endpoint (ready) or is in maint (`wanted` undefined: all). */
async function verify(address: string, models: readonly Backend[], wanted: readonly Endpoint[][] | undefined, what: string): Promise<void> {
  const index = new Map(models.map((model, b) => [model.name, b]));
  let wrong = 0;
  let first = "";
  // A one-shot connection, not the engine's client: its reply decoder is slow on replies of
  // many MB (the finding of this benchmark), and this check is not what is measured.
  for (const record of parseServersState(await rawCommand(address, showServersState().line))) {
    const b = index.get(record.backend);
    const slot = templateSlot(record.server);
    if (b === undefined || slot === undefined) continue;
    const want = wanted?.[b]![slot - 1];
    const ok = want ? stateOf(record) === "ready" && record.address === want.ip && record.port === want.port : stateOf(record) === "maint";
    if (!ok && wrong++ === 0) first = `${record.backend}/${record.server} is ${record.address}:${record.port} ${stateOf(record)}, want ${want ? endpointKey(want) : "maint"}`;
  }
  if (wrong > 0) throw new Error(`${what}: ${wrong} slots differ from the expected state (first: ${first})`);
}

/** The slot number of a template server (s1…sN); undefined for any other server. */
function templateSlot(server: string): number | undefined {
  const match = /^s([1-9]\d*)$/.exec(server);
  return match ? Number(match[1]) : undefined;
}

// ---- the scenario for run.ts ----

const QUICK: EngineBenchOptions[] = [{ changes: 2_000, backends: 200, slotsPerBackend: 16, rounds: 9 }];
// 16 slots for 10 endpoints is what slotCapacity(10, …) renders. HAProxy 2.6 needs ~6.7 kB per
// slot in each of master and worker: 10,000 × 16 slots ≈ 1 GB each, ~5 s to start.
const FULL: EngineBenchOptions[] = [
  { changes: 10_000, backends: 10, slotsPerBackend: 1_000, rounds: 5 },
  { changes: 10_000, backends: 1_000, slotsPerBackend: 16, rounds: 5 },
  { changes: 100_000, backends: 10_000, slotsPerBackend: 16, rounds: 3 },
];

const COLUMNS = ["changes", "backends × slots", "phase", "commands", "raw socket", "raw cmd/s", "engine", "engine cmd/s", "engine / raw"];

export const engineScenario: Scenario = {
  name: "engine",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const results: EngineBenchResult[] = [];
    for (const options of context.quick ? QUICK : FULL) results.push(await benchEngine({ ...options, log: context.log }));
    const rows: string[][] = [];
    for (const r of results) {
      const shape = [r.changes.toLocaleString("en-US"), `${r.backends.toLocaleString("en-US")} × ${r.slotsPerBackend.toLocaleString("en-US")}`];
      for (const p of r.phases) {
        rows.push([...shape, p.phase, p.commands.toLocaleString("en-US"), formatMs(p.rawMs), rate(p.rawCommandsPerSec), formatMs(p.engineMs), rate(p.engineCommandsPerSec), `${p.ratio.toFixed(2)}×`]);
      }
      const t = r.total;
      rows.push([...shape, "total", t.commands.toLocaleString("en-US"), formatMs(t.rawMs), rate(t.commands / (t.rawMs / 1000)), formatMs(t.engineMs), rate(t.commands / (t.engineMs / 1000)), `${t.ratio.toFixed(2)}×`]);
    }
    return {
      title: "Engine vs raw socket (runtime API, one HAProxy)",
      columns: COLUMNS,
      rows,
      notes: [
        `Medians of ${results.map((r) => r.rounds).join("/")} rounds after a warm-up; fill = addr + state ready per endpoint, empty = state maint per endpoint. Target: engine / raw ≤ 2×.`,
        ...results.map((r) => `HAProxy ${r.backends.toLocaleString("en-US")} × ${r.slotsPerBackend.toLocaleString("en-US")} slots: started in ${formatMs(r.haproxy.startMs)}, master ${r.haproxy.masterRssMb} MB, worker ${r.haproxy.workerRssMb} MB RSS.`),
      ],
      json: { runs: results },
    };
  },
};

function rate(perSecond: number): string {
  return perSecond >= 1_000 ? `${(perSecond / 1000).toFixed(perSecond >= 100_000 ? 0 : 1)}k` : perSecond.toFixed(0);
}

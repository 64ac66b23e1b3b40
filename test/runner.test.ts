// The runner (when the data plane syncs) with a fake clock: min and max interval, runAfter,
// backoff doubling and capped, a cancelled backoff, asks during a run merged into one run.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Runner, type RunResult } from "../src/dataplane/runner.ts";
import { FakeClock } from "./fakes.ts";

function setup(options: { minIntervalMs?: number; maxIntervalMs?: number; results?: RunResult[] } = {}) {
  const clock = new FakeClock();
  const starts: number[] = [];
  const results = [...(options.results ?? [])];
  let release: (() => void) | undefined;
  let holdNext = false;
  const runner = new Runner({
    clock,
    minIntervalMs: options.minIntervalMs,
    maxIntervalMs: options.maxIntervalMs,
    backoffMinMs: 100,
    backoffMaxMs: 400,
    onError: () => {},
    run: async () => {
      starts.push(clock.now() - 1_000);
      if (holdNext) {
        holdNext = false;
        await new Promise<void>((resolve) => (release = resolve));
      }
      return results.shift() ?? "done";
    },
  });
  runner.start();
  return { clock, runner, starts, hold: () => (holdNext = true), release: () => release?.() };
}

test("run() goes at once; asks within the min interval wait for it and merge", async () => {
  const { clock, runner, starts } = setup({ minIntervalMs: 500 });
  runner.run();
  await clock.advance(0);
  assert.deepEqual(starts, [0]);
  await clock.advance(100);
  runner.run();
  runner.run();
  await clock.advance(300);
  assert.deepEqual(starts, [0], "not before 500 ms after the last start");
  await clock.advance(100);
  assert.deepEqual(starts, [0, 500], "both asks in one run");
});

test("the max interval runs without being asked; runAfter runs at the latest then", async () => {
  const { clock, runner, starts } = setup({ maxIntervalMs: 1_000 });
  await clock.advance(999);
  assert.deepEqual(starts, []);
  await clock.advance(1);
  assert.deepEqual(starts, [1_000]);
  runner.runAfter(200);
  await clock.advance(200);
  assert.deepEqual(starts, [1_000, 1_200]);
  await clock.advance(1_000);
  assert.deepEqual(starts, [1_000, 1_200, 2_200], "the max interval counts from the last start");
});

test("a failed run: the next waits for the backoff, doubling and capped; run() does not skip it; success resets", async () => {
  const { clock, runner, starts } = setup({ results: ["failed", "failed", "failed", "failed", "done", "failed"] });
  runner.run();
  await clock.advance(0);
  runner.run(); // a change arriving during the backoff waits for it
  await clock.advance(99);
  assert.deepEqual(starts, [0]);
  await clock.advance(1);
  await clock.advance(200);
  await clock.advance(400);
  await clock.advance(400);
  assert.deepEqual(starts, [0, 100, 300, 700, 1_100], "100, 200, 400, 400 (capped)");
  runner.run();
  await clock.advance(0);
  assert.deepEqual(starts.at(-1), 1_100, "after the success, nothing was asked: no run");
  assert.equal(starts.length, 6);
  await clock.advance(99);
  assert.equal(starts.length, 6);
  await clock.advance(1);
  assert.equal(starts.length, 7, "the backoff started again from its minimum");
});

test("cancelBackoff(): the retry goes at once (a reconnect)", async () => {
  const { clock, runner, starts } = setup({ results: ["failed", "failed", "failed"] });
  runner.run();
  await clock.advance(0);
  await clock.advance(100);
  assert.deepEqual(starts, [0, 100]);
  await clock.advance(50);
  runner.cancelBackoff();
  await clock.advance(0);
  assert.deepEqual(starts, [0, 100, 150]);
});

test("asks during a run become one run after it", async () => {
  const { clock, runner, starts, hold, release } = setup();
  hold();
  runner.run();
  await clock.advance(0);
  runner.run();
  runner.runAfter(10);
  runner.run();
  await clock.advance(50);
  assert.deepEqual(starts, [0], "one run at a time");
  release();
  await clock.advance(0);
  assert.deepEqual(starts, [0, 50]);
  await clock.advance(100);
  assert.equal(starts.length, 2);
});

test("runs asked one after another never touch the max-interval timer (no timer per change)", async () => {
  const clock = new FakeClock();
  const delays: number[] = [];
  const schedule = clock.schedule.bind(clock);
  clock.schedule = (fn, ms) => {
    delays.push(ms);
    return schedule(fn, ms);
  };
  let runs = 0;
  const runner = new Runner({
    clock,
    maxIntervalMs: 60_000,
    onError: () => {},
    run: async () => {
      runs++;
      return "done";
    },
  });
  runner.start();
  for (let i = 0; i < 100; i++) {
    runner.run();
    await clock.advance(1);
  }
  assert.equal(runs, 100);
  assert.deepEqual(delays.filter((ms) => ms > 0), [60_000], "the periodic timer was armed once, at start");
  await clock.advance(60_000);
  assert.equal(runs, 101, "and still runs once no run started for the max interval");
});

// The bench harness's building blocks: statistics, the CDF plot, and the two baselines
// (raw socket, reload per change) against a real HAProxy.

import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { rawCommand, rawSocketRun } from "../bench/lib/raw-socket.ts";
import { filledBackend, reloadPerChange } from "../bench/lib/reload-baseline.ts";
import { formatMs, median, percentile, summarize } from "../bench/lib/stats.ts";
import { cdfSvg, escapeXml } from "../bench/lib/svg.ts";
import { showServersState } from "../src/haproxy/commands.ts";
import { reloadCount } from "../src/haproxy/master.ts";
import { renderConfig } from "../src/haproxy/render.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { runtimeSocketIn, startHaproxy } from "../src/sim/haproxy.ts";
import { makeBackend, ready, tempDir } from "./helpers.ts";

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("stats", () => {
  test("nearest-rank percentiles", () => {
    const cases: [number[], number, number][] = [
      [range(1, 100), 50, 50],
      [range(1, 100), 90, 90],
      [range(1, 100), 99, 99],
      [range(1, 100), 100, 100],
      [range(1, 100), 0, 1],
      [range(1, 10), 50, 5],
      [range(1, 10), 90, 9],
      [range(1, 10), 99, 10],
      [range(1, 10), 11, 2],
      [[7], 50, 7],
      [[7], 99, 7],
    ];
    for (const [sorted, p, want] of cases) assert.equal(percentile(sorted, p), want, `p${p} of ${sorted.length} samples`);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), RangeError);
    assert.throws(() => percentile([1], Number.NaN), RangeError);
  });

  test("summarize sorts a copy and reports count, extremes, percentiles and mean", () => {
    const samples = range(1, 1000).reverse();
    assert.deepEqual(summarize(samples), { count: 1000, min: 1, p50: 500, p90: 900, p99: 990, max: 1000, mean: 500.5 });
    assert.equal(samples[0], 1000, "input left as it was");
    assert.deepEqual(summarize([0.5, 0.25]), { count: 2, min: 0.25, p50: 0.25, p90: 0.5, p99: 0.5, max: 0.5, mean: 0.375 });
    const empty = summarize([]);
    assert.equal(empty.count, 0);
    assert.ok(Number.isNaN(empty.p50) && Number.isNaN(empty.mean));
    assert.equal(median([3, 1, 2]), 2);
  });

  test("formatMs", () => {
    const cases: [number, string][] = [
      [0.0123, "12.3 µs"],
      [0.8124, "812 µs"],
      [4.271, "4.27 ms"],
      [153.4, "153 ms"],
      [2410, "2410 ms"],
      [12_500, "12.5 s"],
      [Number.NaN, "–"],
    ];
    for (const [ms, want] of cases) assert.equal(formatMs(ms), want);
  });
});

/** Checks that every tag is closed in order (or self-closed); returns the tag names seen. */
function balancedTags(xml: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  for (const match of xml.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, closing, name, , selfClosing] = match;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the open tag`);
    else {
      seen.push(name!);
      if (!selfClosing) stack.push(name!);
    }
  }
  assert.deepEqual(stack, [], "every tag is closed");
  // No stray '<' or '&' outside tags and entities.
  const text = xml.replace(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g, "");
  assert.doesNotMatch(text, /</, "no '<' outside tags");
  assert.doesNotMatch(text.replace(/&(lt|gt|amp|quot|apos);/g, ""), /&/, "no bare '&'");
  return seen;
}

describe("svg", () => {
  test("a well-formed CDF: one polyline per series, axes, legend, escaped text", () => {
    const svg = cdfSvg(
      [
        { name: "engine <fast> & co", samples: [0.2, 0.5, 0.7, 1.2, 3] },
        { name: "reload", samples: range(1, 500).map((i) => 50 + i / 5) },
        { name: "empty", samples: [] },
      ],
      { title: "latency < 1 s & more", xLabel: "ms \"from\" change" },
    );
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const tags = balancedTags(svg);
    assert.equal(tags.filter((t) => t === "polyline").length, 3);
    assert.equal(tags[0], "svg");
    assert.ok(svg.includes("engine &lt;fast&gt; &amp; co (n=5)"), "series names escaped in the legend");
    assert.ok(svg.includes("latency &lt; 1 s &amp; more"));
    assert.ok(svg.includes("ms &quot;from&quot; change"));
    for (const label of ["0.1 ms", "1 ms", "10 ms", "100 ms", "1 s", "0%", "100%"]) assert.ok(svg.includes(`>${label}<`), `tick ${label}`);
    const colours = [...svg.matchAll(/<polyline fill="none" stroke="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(colours).size, 3, "distinct colours");
    assert.equal(escapeXml(`<a href='x'>&</a>`), "&lt;a href=&apos;x&apos;&gt;&amp;&lt;/a&gt;");
  });

  test("large series are thinned but keep their extremes", () => {
    const samples = range(1, 100_000).map((i) => i / 1000);
    const svg = cdfSvg([{ name: "big", samples }], { title: "t", xLabel: "x" });
    const points = /points="([^"]*)"/.exec(svg)![1]!.split(" ");
    assert.ok(points.length <= 2 * 2000 + 2, `${points.length} points`);
    assert.ok(svg.includes(">1 ms<") && svg.includes(">100 s<") === false);
    balancedTags(svg);
  });
});

describe("raw socket", () => {
  test("counts terminators that arrive split across chunks", async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, "fake.sock");
    const server = createServer((socket: Socket) => {
      let buffered = "";
      socket.on("data", async (chunk) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        for (const line of lines) {
          // Every reply in pieces: the body, "\n", ">", " " — each its own write.
          for (const piece of [line === "prompt" ? "" : "ok", "\n", ">", " "]) {
            if (piece) socket.write(piece);
            await sleep(1);
          }
        }
      });
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const ms = await rawSocketRun(path, ["a", "b", "c", "d"]);
    assert.ok(ms > 0);
    await assert.rejects(rawSocketRun(path, ["a", "b"], { timeoutMs: 1 }), /replies after 1 ms/);
    await rm(path, { force: true });
  });

  test("pushes pipelined lines through a real HAProxy", async (t) => {
    const dir = await tempDir(t);
    const backend = makeBackend("default:raw:80", [], { minSlots: 500 });
    const haproxy = await startHaproxy({ dir, config: renderConfig([{ backend, slots: 500, filled: new Map() }], { runtimeSocket: runtimeSocketIn(dir) }) });
    t.after(() => haproxy.stop());
    const lines: string[] = [];
    for (let i = 1; i <= 500; i++) lines.push(`set server default:raw:80/s${i} addr 127.250.${i >> 8}.${i & 255} port 9`, `set server default:raw:80/s${i} state ready`);
    lines.push("set server default:raw:80/s999 state ready"); // an error reply counts as a reply too
    const ms = await rawSocketRun(haproxy.runtimeSocket, lines);
    assert.ok(ms > 0 && ms < 10_000, `${ms} ms`);
    const client = new RuntimeClient({ address: haproxy.runtimeSocket });
    t.after(() => client.close());
    await client.waitConnected();
    const records = parseServersState(await client.execute(showServersState("default:raw:80")));
    assert.equal(records.filter((r) => stateOf(r) === "ready").length, 500);
    assert.equal(records.find((r) => r.server === "s300")?.address, "127.250.1.44");
    assert.equal(parseServersState(await rawCommand(haproxy.runtimeSocket, "show servers state default:raw:80")).length, 500);
    assert.equal(await rawSocketRun(haproxy.runtimeSocket, []), 0);
  });
});

describe("reload baseline", () => {
  test("one reload per change, each complete with a new worker that has the new endpoints", async (t) => {
    const dir = await tempDir(t);
    const backend = makeBackend("default:reload:80", [], { minSlots: 4 });
    const render = { runtimeSocket: runtimeSocketIn(dir) };
    const haproxy = await startHaproxy({ dir, config: renderConfig([filledBackend(backend, 4, [])], render) });
    t.after(() => haproxy.stop());
    const before = await waitReloadCount(haproxy.masterSocket);
    const steps = [[ready("127.250.0.1", 8080)], [ready("127.250.0.1", 8080), ready("127.250.0.2", 8080)], [ready("127.250.0.3", 8081)]];
    const samples = await reloadPerChange(
      steps.map((endpoints) => [filledBackend(backend, 4, endpoints)]),
      { haproxy, render },
    );
    assert.equal(samples.length, 3);
    for (const ms of samples) assert.ok(ms > 0 && ms < 30_000, `${ms} ms`);
    assert.equal(await reloadCount(haproxy.masterSocket), before + 3);

    const client = new RuntimeClient({ address: haproxy.runtimeSocket });
    t.after(() => client.close());
    await client.waitConnected();
    const records = parseServersState(await client.execute(showServersState("default:reload:80")));
    assert.deepEqual(
      records.map((r) => `${r.server} ${r.address}:${r.port} ${stateOf(r)}`),
      ["s1 127.250.0.3:8081 ready", "s2 0.0.0.0:0 maint", "s3 0.0.0.0:0 maint", "s4 0.0.0.0:0 maint"],
    );
    assert.throws(() => filledBackend(backend, 1, steps[1]!), RangeError);
  });
});

/** The master CLI may refuse connections just after start: retry for a moment. */
async function waitReloadCount(masterSocket: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await reloadCount(masterSocket);
    } catch (error) {
      if (attempt > 250) throw error;
      await sleep(20);
    }
  }
}

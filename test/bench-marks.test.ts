// The single-change tail's instruments (bench/lib/marks.ts, tail-marks.ts): the stages read from
// a process's marks, and the preload marking a real process on the clock this one shares.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { stagesOf, type Mark } from "../bench/lib/marks.ts";
import { tempDir } from "./helpers.ts";

describe("stagesOf", () => {
  const marks: Mark[] = [
    ["tls", 9, 100], // before the window: someone else's bytes
    ["tls", 10.5, 80], // a bookmark's bytes
    ["tls", 10.8, 900],
    ["parse", 11, 880],
    ["write", 11.6, 60],
    ["reply", 12, 40],
    ["reply", 12.4, 30], // the last reply chunk: the change is applied
    ["write", 13, 20], // a full sync's command, and its reply: not the change's
    ["reply", 19, 3_000_000],
    ["gc4", 11.2, 0.3],
    ["parse", 21, 880], // the second window: parsed, never written
    ["gc1", 30, 2],
  ];
  test("splits each window where the bytes arrived, the commands were written and the last reply was read", () => {
    const [first, second, third] = stagesOf(marks, [{ t0: 10, until: 20 }, { t0: 20, until: 29 }, { t0: 29, until: 40 }]);
    assert.ok(first);
    const close = (got: number, want: number, what: string): void => assert.ok(Math.abs(got - want) < 1e-9, `${what}: ${got} vs ${want}`);
    close(first.arrive, 0.8, "arrive");
    close(first.work, 0.8, "work");
    close(first.haproxy, 0.8, "haproxy");
    close(first.total, 2.4, "total");
    assert.deepEqual(first.gcPauses, [0.3]);
    assert.equal(second, undefined, "a window with no command written is incomplete");
    assert.equal(third, undefined, "a window with no event parsed is incomplete");
  });
  test("a GC pause overlaps a window only when it ran between the write and the last reply", () => {
    const [stages] = stagesOf([["tls", 1, 1], ["parse", 1.1, 1], ["write", 1.2, 1], ["reply", 1.5, 1], ["gc4", 0, 0.9], ["gc1", 0.5, 1], ["gc8", 1.6, 1]], [{ t0: 1, until: 5 }]);
    assert.deepEqual(stages?.gcPauses, [1]);
  });
});

describe("tail-marks preload", () => {
  test("marks a real process's unix socket writes and replies, watch events and GC on this process's clock", async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, "marks.json");
    const script = `
      const net = require("node:net");
      const path = ${JSON.stringify(join(dir, "echo.sock"))};
      const server = net.createServer((s) => s.on("data", (d) => s.write(d)));
      server.listen(path, () => {
        const c = net.connect({ path }, () => c.write("set server be/s1 state ready\\n"));
        c.on("data", () => {
          JSON.parse('{"type":"MODIFIED","object":{}}');
          JSON.parse('{"type":"BOOKMARK","object":{}}');
          globalThis.gc();
          c.destroy();
          server.close();
        });
      });`;
    const before = Number(process.hrtime.bigint()) / 1e6;
    await promisify(execFile)(process.execPath, ["--expose-gc", "--import", join(import.meta.dirname, "..", "bench", "lib", "tail-marks.ts"), "-e", script], { env: { ...process.env, KUBE_HAPROXY_BENCH_MARKS: file } });
    const after = Number(process.hrtime.bigint()) / 1e6;
    const { marks } = JSON.parse(await readFile(file, "utf8")) as { marks: Mark[] };
    const kinds = marks.map((m) => m[0]);
    for (const kind of ["write", "reply", "parse"]) assert.ok(kinds.includes(kind), `${kind} in ${kinds.join(" ")}`);
    assert.equal(kinds.filter((k) => k === "parse").length, 1, "a bookmark is no event");
    assert.ok(kinds.some((k) => k.startsWith("gc")), "the forced GC");
    for (const [kind, at] of marks) assert.ok(at > before && at < after, `${kind} at ${at} within this process's [${before}, ${after}]`);
    const at = (kind: string): number => marks.find((m) => m[0] === kind)![1];
    assert.ok(at("write") <= at("reply") && at("reply") <= at("parse"), "in the order they happened");
  });
});

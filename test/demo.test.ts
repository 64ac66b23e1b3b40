// The demo end to end: a real HAProxy, the sidecar in process, churn and traffic for a few
// seconds, then nothing left behind.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { renderHeader, renderSummary, renderView, runDemo, type DemoView } from "../src/demo.ts";
import { isKubeHaproxyError } from "../src/errors.ts";
import { get } from "../src/sim/pods.ts";
import { waitFor } from "./helpers.ts";

/** Processes whose command line contains `text`, from /proc. */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}

test("runDemo: views name the Services, pods churn without a reload or a failed request, nothing is left behind", async () => {
  const stdout = new PassThrough();
  let output = "";
  stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const running = runDemo({ stdout, durationMs: 4_000 });

  const header = await waitFor(() => /stats page (\S+), files in (\S+);/.exec(output), 20_000, "the demo's header line");
  const [, statsUrl, dir] = header as unknown as [string, string, string];
  const haproxy = await waitFor(async () => (await processesMentioning(dir)).filter((pid) => existsSync(`/proc/${pid}`)), 5_000, "HAProxy running from the demo's folder");
  assert.ok(haproxy.length >= 1, "HAProxy runs from the demo's folder");
  await get(statsUrl); // the stats page answers 200

  const summary = await running;
  const lines = output.trim().split("\n").slice(1);
  assert.ok(lines.length >= 6, `about two views a second (${lines.length})`);
  assert.match(lines.at(-1)!, /demo\/web:http http .*demo\/api:tcp tcp /);
  assert.ok(summary.changes > 0, `changes applied: ${JSON.stringify(summary)}`);
  assert.equal(summary.reloads, 0, "endpoint churn never reloads HAProxy");
  assert.ok(summary.requests > 10, `traffic flowed: ${summary.requests}`);
  // Terminating pods are drained (no new connections) before they leave the slice and stop.
  assert.equal(summary.failedRequests, 0, `failed requests:\n${output}`);
  assert.ok(summary.p99Ms >= summary.p50Ms && summary.p50Ms >= 0);

  assert.deepEqual(await processesMentioning(dir), [], "no process runs from the demo's folder");
  for (const pid of haproxy) assert.equal(existsSync(`/proc/${pid}`), false, `haproxy ${pid} is gone`);
  assert.equal(existsSync(dir), false, "the temp folder is removed");
});

test("runDemo without haproxy on the PATH: one clear message", async () => {
  const path = process.env.PATH;
  process.env.PATH = "/nonexistent";
  try {
    await assert.rejects(runDemo({ stdout: new PassThrough(), durationMs: 0 }), (error: unknown) => {
      assert.ok(isKubeHaproxyError(error));
      assert.equal(error.message, "the demo needs HAProxy: apt-get install haproxy");
      return true;
    });
  } finally {
    process.env.PATH = path;
  }
});

test("runDemo with HAProxy but no openssl: falls back to a plain-HTTP API server and works", async () => {
  const bin = await mkdtemp(join(tmpdir(), "kh-demo-path-"));
  const haproxy = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin"].map((dir) => join(dir, "haproxy")).find((file) => existsSync(file))!;
  await symlink(haproxy, join(bin, "haproxy"));
  const path = process.env.PATH;
  process.env.PATH = bin;
  try {
    const summary = await runDemo({ stdout: new PassThrough(), durationMs: 2_500 });
    assert.ok(summary.changes > 0, JSON.stringify(summary));
    assert.equal(summary.failedRequests, 0);
  } finally {
    process.env.PATH = path;
    await rm(bin, { recursive: true, force: true });
  }
});

test("renderView: one compact line off a terminal, a screen on one", () => {
  const view: DemoView = {
    elapsedMs: 2_345,
    ports: [{
      name: "demo/web:http", mode: "http", slots: 8, used: 5, ready: 4, drain: 1,
      answered: [{ ip: "127.201.0.2", state: "ready", count: 3 }, { ip: "127.201.0.3", state: "drain", count: 1 }, { ip: "127.201.0.4", state: "gone", count: 2 }],
    }],
    skipped: ["Service demo/dns: port dns is UDP, which HAProxy cannot proxy."],
    latenciesMs: [4, 2, 3],
    reloads: 0, requests: 20, failed: 0, lastError: undefined,
    events: ["2.0s + web 127.201.0.5 ready"],
    statsUrl: "http://127.0.0.1:8404/", dir: "/tmp/kube-haproxy-demo-x",
  };
  assert.equal(
    renderView(view, false),
    "[2.3s] | demo/web:http http used 5 free 3 ready 4 drain 1 [127.201.0.2 ×3  127.201.0.3 (drain) ×1  127.201.0.4 (gone) ×2]" +
      " | 3 changes (last 3 ms, p50 3 ms, p99 4 ms) | 0 reloads | 20 requests, 0 failed",
  );
  assert.equal(renderView(view, true), [
    "kube-haproxy demo: simulated cluster, real HAProxy, sidecar in process   2.3s",
    "",
    "demo/web:http  (http)  slots 5 used / 3 free  endpoints 4 ready / 1 drain",
    "    answered in the last 3 s: 127.201.0.2 ×3  127.201.0.3 (drain) ×1  127.201.0.4 (gone) ×2",
    "skipped: Service demo/dns: port dns is UDP, which HAProxy cannot proxy.",
    "",
    "changes applied   3   API write → HAProxy: last 3 ms, p50 3 ms, p99 4 ms",
    "reloads           0   (endpoint changes never reload)",
    "traffic           20 requests, 0 failed",
    "stats page        http://127.0.0.1:8404/",
    "files             /tmp/kube-haproxy-demo-x (haproxy.cfg, sockets)",
    "",
    "  2.0s + web 127.201.0.5 ready",
    "",
    "Ctrl-C to stop",
    "",
  ].join("\n"));
  assert.equal(renderHeader(view), "kube-haproxy demo: stats page http://127.0.0.1:8404/, files in /tmp/kube-haproxy-demo-x; Ctrl-C to stop\n");
});

test("renderSummary: no NaN without a change", () => {
  const base = { reloads: 0, requests: 12, failedRequests: 0 };
  assert.equal(renderSummary({ ...base, changes: 0, p50Ms: NaN, p99Ms: NaN }), "0 changes applied, 0 reloads, 12 requests, 0 failed");
  assert.equal(renderSummary({ ...base, changes: 3, p50Ms: 2.4, p99Ms: 7 }), "3 changes applied (p50 2 ms, p99 7 ms), 0 reloads, 12 requests, 0 failed");
});

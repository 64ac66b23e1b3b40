// src/sim/graceful-pod.ts: a pod that stops like an application on SIGTERM.

import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { test } from "node:test";
import { startGracefulPod } from "../src/sim/graceful-pod.ts";

function get(url: string, agent: Agent | false): Promise<{ body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ body: body.trim(), connection: res.headers.connection }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("stop: no new connections, the next request on a keep-alive connection is answered with Connection: close", async () => {
  const pod = await startGracefulPod("127.77.0.1");
  const url = `http://${pod.ip}:${pod.port}/`;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    assert.equal((await get(url, agent)).body, pod.ip);
    const stopped = pod.stop(5_000);
    // The open keep-alive connection still gets its answer, told to close.
    const last = await get(url, agent);
    assert.equal(last.body, pod.ip);
    assert.equal(last.connection, "close");
    assert.deepEqual(await stopped, { closedAfterResponse: 1, closedAtGraceEnd: 0 });
    await assert.rejects(get(url, false), /ECONNREFUSED/);
    assert.equal(pod.served, 2);
  } finally {
    agent.destroy();
    await pod.stop();
  }
});

test("stop: a connection idle for the whole grace period is destroyed at its end", async () => {
  const pod = await startGracefulPod("127.77.0.2");
  const socket = connect({ host: pod.ip, port: pod.port });
  await new Promise((resolve) => socket.once("connect", resolve));
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.on("error", () => {});
  const started = performance.now();
  assert.deepEqual(await pod.stop(200), { closedAfterResponse: 0, closedAtGraceEnd: 1 });
  assert.ok(performance.now() - started >= 190);
  await closed;
});

// Failover by retry: a pod killed while its endpoint is still in the EndpointSlice (the cluster
// has not noticed yet) costs no request sent after its death, because a connection that fails
// to connect is retried on another endpoint. Real HAProxy, the sidecar in process, real clients
// on new connections.

import assert from "node:assert/strict";
import { test } from "node:test";
import { killUnderLoad } from "../src/sim/failover.ts";
import { world } from "./world.ts";

const CLIENTS = 4;

for (const mode of ["tcp", "http"] as const) {
  test(`${mode}: a pod killed under new-connection load costs 0 failed requests (retried on another endpoint)`, async (t) => {
    const w = await world(t, mode);
    const r = await killUnderLoad(w, { staleMs: 1_500, clients: CLIENTS });
    t.diagnostic(`${r.load.sent} requests, ${r.load.failed} failed (${r.failedAfterKill} sent after the kill); ${r.attemptsOnDead} connections tried on the killed pod, ${r.redispatched} redispatched`);
    assert.ok(r.attemptsOnDead >= 5, `the killed pod was still picked while in the slice: ${JSON.stringify(r)}`);
    // Sessions already established on the pod when it died are no connection failure and are
    // not redispatched: at most one per client (the requests in flight, counted just below).
    assert.ok(r.redispatched >= r.attemptsOnDead - CLIENTS, `those connections went elsewhere: ${JSON.stringify(r)}`);
    assert.ok(r.load.sent > 100, `enough traffic: ${JSON.stringify(r.load)}`);
    assert.equal(r.failedAfterKill, 0, `failed requests sent after the kill: ${JSON.stringify(r.load)}`);
    assert.ok(r.load.failed <= CLIENTS, `at most the requests in flight at the kill died with the pod: ${JSON.stringify(r.load)}`);
  });
}

test("tcp, --connect-retries 0 (kube-proxy's behaviour): the same kill fails the requests sent to the dead pod", async (t) => {
  const w = await world(t, "tcp", { "connect-retries": "0" });
  const r = await killUnderLoad(w, { staleMs: 1_500, clients: CLIENTS });
  t.diagnostic(`${r.load.sent} requests, ${r.load.failed} failed (${r.failedAfterKill} sent after the kill: ${r.load.errors.join("; ")})`);
  assert.ok(r.failedAfterKill >= 5, `expected failures without retries: ${JSON.stringify(r.load)}`);
  assert.equal(r.redispatched, 0);
});

// ClusterWatch against the simulated API server: restarts after errors and after a stall, one
// per failure, each on one token of the rate limiter; no restart of a quiet, healthy watch.

import assert from "node:assert/strict";
import { test } from "node:test";
import { silentLogger } from "../src/log.ts";
import { isKubeHaproxyError } from "../src/errors.ts";
import { loadKubeConfig } from "../src/kube/kubeconfig.ts";
import { listEach } from "../src/kube/list.ts";
import { ClusterWatch, type Limiter } from "../src/kube/watch.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { tempDir, waitFor } from "./helpers.ts";

/** A limiter that counts the tokens taken and can hold them back. */
class CountingLimiter implements Limiter {
  taken = 0;
  #held: (() => void)[] = [];
  holding = false;
  take(): Promise<void> {
    this.taken++;
    if (!this.holding) return Promise.resolve();
    return new Promise((resolve) => this.#held.push(resolve));
  }
  release(): void {
    this.holding = false;
    for (const resolve of this.#held.splice(0)) resolve();
  }
}

interface SetupOptions {
  readonly bookmarkIntervalMs?: number;
  readonly expiredWatch?: "event" | "status";
  readonly idleReopenMs?: number;
}

async function setup(t: Parameters<typeof tempDir>[0], stallTimeoutMs: number, options: SetupOptions = {}) {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir, { bookmarkIntervalMs: options.bookmarkIntervalMs, expiredWatch: options.expiredWatch });
  const kubeConfig = loadKubeConfig(cluster.kubeconfig, {});
  const limiter = new CountingLimiter();
  const watch = new ClusterWatch({ kubeConfig, log: silentLogger, stallTimeoutMs, restartMinMs: 20, restartMaxMs: 100, limiter, idleReopenMs: options.idleReopenMs });
  const restarts: string[] = [];
  const seen: string[] = [];
  watch.on("restart", (resource, reason) => restarts.push(`${resource}:${reason}`));
  watch.on("service", (type, service) => seen.push(`${type}:${service.metadata!.name}`));
  t.after(async () => {
    limiter.release();
    await watch.stop();
    await cluster.stop();
  });
  return { cluster, watch, restarts, seen, limiter };
}

test("a watch that fails with a 500 is restarted and catches up", async (t) => {
  const { cluster, watch, restarts, seen } = await setup(t, 0);
  await watch.start();
  cluster.api.failNext(2, 500);
  cluster.api.dropWatches();
  cluster.api.upsert("services", makeService("default", "after-error", [{ port: 80 }]));
  await waitFor(() => seen.includes("add:after-error"), 10_000, "the event after the failure");
  assert.ok(restarts.some((r) => r.endsWith(":error")), `restarted after the error (${restarts.join(", ")})`);
});

test("a watch that stalls (connected, silent) is restarted after the stall timeout", async (t) => {
  const { cluster, watch, restarts, seen } = await setup(t, 400);
  await watch.start();
  cluster.api.pauseWatches();
  cluster.api.upsert("services", makeService("default", "during-stall", [{ port: 80 }]));
  await waitFor(() => restarts.some((r) => r.endsWith(":stall")), 5_000, "a stall restart");
  cluster.api.resumeWatches();
  await waitFor(() => seen.includes("add:during-stall"), 10_000, "the event made during the stall");
});

test("start() resolves only once both initial lists arrived, even if the first list fails", async (t) => {
  const { cluster, watch } = await setup(t, 0);
  cluster.api.upsert("services", makeService("default", "early", [{ port: 80 }]));
  cluster.api.failNext(1, 500);
  await watch.start();
  assert.deepEqual(watch.services().map((s) => s.metadata!.name), ["early"]);
});

test("lists page through large collections (limit/continue) from one snapshot", async (t) => {
  const { cluster, watch } = await setup(t, 0);
  for (let i = 0; i < 1_234; i++) cluster.api.upsert("services", makeService("bulk", `svc-${i}`, [{ port: 80 }]));
  const before = cluster.api.stats().services.lists;
  await watch.start();
  assert.equal(watch.services().length, 1_234);
  assert.equal(cluster.api.stats().services.lists - before, 3, "pages of 500");
  // Plain JSON, as watch events are: no class instances with every optional field.
  assert.equal(Object.getPrototypeOf(watch.services()[0]), Object.prototype);
});

test("a restart takes one token, also when it lists again (issue 9, bug 10)", async (t) => {
  const { cluster, watch, restarts, limiter } = await setup(t, 0);
  cluster.api.failNext(1, 500); // the first list fails: the restart lists again
  await watch.start();
  assert.equal(restarts.length, 1, restarts.join(", "));
  assert.equal(limiter.taken, 3, "two first lists, and one token for the restart and its list");
});

test("while a restart waits for the limiter, the stall check starts no second one (issue 9, bug 10)", async (t) => {
  const { cluster, watch, restarts, limiter } = await setup(t, 300);
  await watch.start();
  limiter.holding = true;
  cluster.api.dropWatches();
  await waitFor(() => restarts.length === 2, 5_000, "both watches restarting");
  await sleep(1_500); // five stall timeouts, waiting on the limiter
  assert.deepEqual(restarts.sort(), ["endpointslices:error", "services:error"]);
  limiter.release();
});

test("a quiet, healthy watch is never restarted; one failure is one restart (issue 13, item 4)", async (t) => {
  const { cluster, watch, restarts, seen } = await setup(t, 1_000, { bookmarkIntervalMs: 200 });
  await watch.start();
  await sleep(3_000); // three stall timeouts of silence but for bookmarks
  assert.deepEqual(restarts, [], "bookmarks are activity");
  cluster.api.dropWatches();
  await waitFor(() => restarts.length === 2, 5_000, "one restart per watch");
  cluster.api.upsert("services", makeService("default", "after-drop", [{ port: 80 }]));
  await waitFor(() => seen.includes("add:after-drop"), 5_000, "the watch works again");
  await sleep(2_500);
  assert.deepEqual(restarts.sort(), ["endpointslices:error", "services:error"], "our own stop of the old watch is no failure");
});

test("a silent watch is restarted when the stall timeout expires, not later (issue 13, item 4)", async (t) => {
  const { cluster, watch, restarts } = await setup(t, 1_000, { bookmarkIntervalMs: 200 });
  await watch.start();
  const paused = performance.now();
  cluster.api.pauseWatches();
  await waitFor(() => restarts.length === 2, 5_000, "both silent watches restarted");
  const after = performance.now() - paused;
  assert.ok(after < 2_000, `restarted ${Math.round(after)} ms after the silence began (timeout 1000 ms)`);
  cluster.api.resumeWatches();
});

test("a failed list is a KubeHaproxyError with the HTTP status (issue 9, bug 9)", async (t) => {
  const { cluster } = await setup(t, 0);
  const kubeConfig = loadKubeConfig(cluster.kubeconfig, {});
  cluster.api.failNext(1, 503);
  await assert.rejects(listEach(kubeConfig, "/api/v1/services", undefined, () => {}), (error) => isKubeHaproxyError(error, "E_API_REQUEST") && error.status === 503);
});

test("a handler that throws is reported, not swallowed by client-node, and the watch goes on", async (t) => {
  const { cluster, watch, seen } = await setup(t, 0);
  const errors: string[] = [];
  watch.on("handlerError", (resource, key, error) => errors.push(`${resource} ${key}: ${(error as Error).message}`));
  watch.on("service", (_type, service) => {
    if (service.metadata!.name === "poison") throw new Error("boom");
  });
  await watch.start();
  cluster.api.upsert("services", makeService("default", "poison", [{ port: 80 }]));
  cluster.api.upsert("services", makeService("default", "after", [{ port: 80 }]));
  await waitFor(() => seen.includes("add:after"), 10_000, "the next event");
  assert.deepEqual(errors, ["services default/poison: boom"]);
});

test("410 Gone, as an ERROR event or as the HTTP status: list again, deleting what vanished; unchanged objects are no event", async (t) => {
  for (const expiredWatch of ["event", "status"] as const) {
    await t.test(expiredWatch, async (t) => {
      const { cluster, watch, restarts, seen } = await setup(t, 0, { expiredWatch });
      cluster.api.upsert("services", makeService("default", "kept", [{ port: 80 }]));
      cluster.api.upsert("services", makeService("default", "gone", [{ port: 80 }]));
      await watch.start();
      const lists = cluster.api.stats().services.lists;
      seen.length = 0;
      cluster.api.pauseWatches(); // the open watches see none of what follows
      cluster.api.remove("services", "default", "gone");
      cluster.api.upsert("services", makeService("default", "new", [{ port: 80 }]));
      cluster.api.compact();
      cluster.api.dropWatches({ graceful: true }); // the server ends the watch; the re-watch is expired
      cluster.api.resumeWatches();
      await waitFor(() => seen.includes("delete:gone"), 10_000, "the vanished Service deleted");
      assert.deepEqual(seen, ["add:new", "delete:gone"], "added and updated first, then deleted; nothing for the unchanged one");
      assert.equal(cluster.api.stats().services.lists, lists + 1, "one list");
      assert.deepEqual(restarts, [], "a 410 is no failure");
      assert.deepEqual(watch.services().map((s) => s.metadata!.name).sort(), ["kept", "new"]);
      cluster.api.upsert("services", makeService("default", "after", [{ port: 80 }]));
      await waitFor(() => seen.includes("add:after"), 10_000, "the watch works again");
    });
  }
});

test("a watch the server ends cleanly is opened again from its resourceVersion: no list, no restart, nothing missed", async (t) => {
  const { cluster, watch, restarts, seen } = await setup(t, 0);
  await watch.start();
  const before = cluster.api.stats().services;
  cluster.api.dropWatches({ graceful: true });
  cluster.api.upsert("services", makeService("default", "meanwhile", [{ port: 80 }]));
  await waitFor(() => seen.includes("add:meanwhile"), 10_000, "the event made while no watch was open");
  const after = cluster.api.stats().services;
  assert.equal(after.lists, before.lists, "no list");
  assert.equal(after.watches, before.watches + 1, "one new watch");
  assert.deepEqual(restarts, []);
});

test("a watch that receives no byte for the idle timeout is opened again, without a restart", async (t) => {
  const { cluster, watch, restarts, seen } = await setup(t, 0, { idleReopenMs: 300 });
  await watch.start();
  const before = cluster.api.stats().services.watches;
  cluster.api.pauseWatches();
  cluster.api.upsert("services", makeService("default", "held", [{ port: 80 }]));
  await waitFor(() => cluster.api.stats().services.watches > before, 5_000, "a new watch after 300 ms of silence");
  cluster.api.resumeWatches();
  await waitFor(() => seen.includes("add:held"), 10_000, "the held event");
  assert.deepEqual(restarts, []);
});

test("an unreadable watch line is a failure: the watch restarts from the last good resourceVersion", async (t) => {
  const { cluster, watch, restarts, seen } = await setup(t, 0);
  await watch.start();
  cluster.api.upsert("services", makeService("default", "before", [{ port: 80 }]));
  await waitFor(() => seen.includes("add:before"), 5_000, "the first event");
  cluster.api.writeToWatches("services", "{not json\n");
  await waitFor(() => restarts.includes("services:error"), 5_000, "a restart");
  cluster.api.upsert("services", makeService("default", "after", [{ port: 80 }]));
  await waitFor(() => seen.includes("add:after"), 10_000, "the next event");
  assert.deepEqual(seen.filter((event) => event === "add:before"), ["add:before"], "resumed, not listed again from scratch");
});

test("objects are kept pruned to the fields translation reads (objects.ts), from the list and from the watch", async (t) => {
  const { cluster, watch } = await setup(t, 0);
  const extra = { managedFields: [{ manager: "kubectl", operation: "Apply", fieldsV1: { "f:spec": {} } }], ownerReferences: [] };
  const service = (name: string) => makeService("default", name, [{ port: 80, name: "http" }], (s) => {
    Object.assign(s.metadata!, extra);
    s.spec!.selector = { app: name };
    s.spec!.sessionAffinity = "ClientIP";
  });
  cluster.api.upsert("services", service("listed"));
  cluster.api.upsert("endpointslices", makeSlice("default", "listed", "listed-1", [{ ip: "10.0.0.1" }], [{ port: 8080, name: "http" }], (slice) => {
    Object.assign(slice.metadata!, extra);
    slice.endpoints![0]!.targetRef = { kind: "Pod", name: "listed-abc", namespace: "default" };
    slice.endpoints![0]!.nodeName = "node-1";
  }));
  const slices: string[] = [];
  watch.on("endpointslice", (_type, slice) => slices.push(JSON.stringify(slice)));
  await watch.start();
  cluster.api.upsert("services", service("watched"));
  await waitFor(() => watch.services().length === 2, 5_000, "the watched Service");
  for (const kept of watch.services()) {
    assert.deepEqual(Object.keys(kept).sort(), ["metadata", "spec"]);
    assert.deepEqual(Object.keys(kept.metadata!).sort(), ["annotations", "creationTimestamp", "labels", "name", "namespace", "resourceVersion", "uid"]);
    assert.deepEqual(kept.spec, { type: "ClusterIP", clusterIP: "10.96.0.10", ports: [{ name: "http", protocol: "TCP", port: 80 }], sessionAffinity: "ClientIP" });
  }
  const [slice] = watch.endpointSlices();
  assert.deepEqual(slice!.endpoints, [{ addresses: ["10.0.0.1"], conditions: { ready: true, serving: true, terminating: false }, nodeName: "node-1" }]);
  assert.equal(slices.length, 1);
  assert.doesNotMatch(slices[0]!, /managedFields|targetRef|apiVersion/);
});

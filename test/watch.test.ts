// ClusterWatch against the simulated API server: restarts after errors and after a stall.

import assert from "node:assert/strict";
import { test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { silentLogger } from "../src/log.ts";
import { ClusterWatch } from "../src/kube/watch.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { makeService } from "../src/sim/objects.ts";
import { tempDir, waitFor } from "./helpers.ts";

async function setup(t: Parameters<typeof tempDir>[0], stallTimeoutMs: number) {
  const dir = await tempDir(t);
  const cluster = await startSimulatedCluster(dir);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(cluster.kubeconfig);
  const watch = new ClusterWatch({ kubeConfig, log: silentLogger, stallTimeoutMs, restartMinMs: 20, restartMaxMs: 100, qps: 100, burst: 100 });
  const restarts: string[] = [];
  const seen: string[] = [];
  watch.on("restart", (resource, reason) => restarts.push(`${resource}:${reason}`));
  watch.on("service", (type, service) => seen.push(`${type}:${service.metadata!.name}`));
  t.after(async () => {
    await watch.stop();
    await cluster.stop();
  });
  return { cluster, watch, restarts, seen };
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

// This node's zone from its Node object (src/kube/node.ts), read over HTTPS from the fake API
// server with the project's authenticated GET (kube/list.ts): the label, no label, no such Node, a failing server.

import assert from "node:assert/strict";
import { test } from "node:test";
import { isKubeHaproxyError } from "../src/errors.ts";
import { loadKubeConfig } from "../src/kube/kubeconfig.ts";
import { LABEL_ZONE, readNodeZone } from "../src/kube/node.ts";
import { startSimulatedCluster } from "../src/sim/cluster.ts";
import { tempDir } from "./helpers.ts";

test("readNodeZone: the zone label, none, no such Node, a failing API server", async (t) => {
  const cluster = await startSimulatedCluster(await tempDir(t, "kh-node-"));
  t.after(() => cluster.stop());
  const kubeConfig = loadKubeConfig(cluster.kubeconfig, {});
  cluster.api.upsertNode({ metadata: { name: "node-a", labels: { [LABEL_ZONE]: "zone-a" } } });
  cluster.api.upsertNode({ metadata: { name: "node-b", labels: { "kubernetes.io/hostname": "node-b" } } });
  assert.equal(await readNodeZone(kubeConfig, "node-a"), "zone-a");
  assert.equal(await readNodeZone(kubeConfig, "node-b"), undefined);
  await assert.rejects(readNodeZone(kubeConfig, "node-x"), (error) => isKubeHaproxyError(error, "E_API_REQUEST") && error.status === 404 && /no Node "node-x"/.test(error.message));
  cluster.api.failNext(1, 403);
  await assert.rejects(readNodeZone(kubeConfig, "node-a"), (error) => isKubeHaproxyError(error, "E_API_REQUEST") && /get on nodes/.test(error.message));
  assert.equal(cluster.api.nodeGets, 4);
});

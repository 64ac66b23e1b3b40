// Local mode's promise under churn: 1,000 Services created and deleted in a loop (batches of
// BATCH, each served from the client namespace, then deleted) cost 0 reloads once the pool is
// warm, while a client hammering a control Service's ClusterIP fails no request. The warm-up is
// one batch: the pool grows to it once (a reload), then every batch reuses freed backends.

import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { LOCAL_TOOLS, churnIP, churnServices, service, slice, startLocalNode, type LocalNode } from "./local-node.ts";
import { bodies, netnsTestOptions } from "./netns.ts";

const SERVICES = 1_000;
const BATCH = 100;
const CONTROL = { ip: "198.18.128.30", port: 80 };

/** Served: every request answered by a pod. (Which pods: HAProxy's roundrobin puts a server made
 * ready again at its old place in the rotation, so two requests may meet the same one.) */
async function served(local: LocalNode, indexes: readonly number[]): Promise<void> {
  for (const i of [indexes[0]!, indexes.at(-1)!]) {
    for (const body of await bodies(local.agents.client, churnIP(i), 80, 2)) assert.match(body, /^pod[12]$/, `churn${i}`);
  }
}

const batch = (first: number): number[] => Array.from({ length: BATCH }, (_, k) => first + k);

test(`local mode: ${SERVICES} Services created and deleted, 0 reloads once the pool is warm, 0 failed requests on a control Service`, netnsTestOptions(LOCAL_TOOLS), async (t: TestContext) => {
  const local = await startLocalNode(t, {}, (api) => {
    api.upsert("services", service("control", CONTROL.ip, [CONTROL.port]));
    api.upsert("endpointslices", slice("control", [CONTROL.port]));
  });
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const load = (async () => {
    while (!stop) {
      const outcome = await local.agents.client.http(CONTROL.ip, CONTROL.port);
      if (outcome.kind === "response") ok++;
      else failures.push(JSON.stringify(outcome));
    }
  })();
  t.after(async () => {
    stop = true;
    await load;
  });

  const initial = await local.reloads();
  await churnServices(local, batch(SERVICES), served); // the warm-up batch, outside the 1,000
  await local.sidecar.dataplane.whenSynced();
  const warm = await local.reloads();
  // Grown as the batch arrived (one reload per sync that found its group short), so at least one.
  assert.ok(warm > initial, "the warm-up batch grew the pool");
  const okBefore = ok;
  const started = performance.now();
  for (let first = 0; first < SERVICES; first += BATCH) await churnServices(local, batch(first), served);
  await local.sidecar.dataplane.whenSynced();
  t.diagnostic(`${SERVICES} Services created and deleted in ${Math.round(performance.now() - started)} ms; ${ok - okBefore} requests to the control Service meanwhile`);
  stop = true;
  await load;

  assert.equal(await local.reloads(), warm, "a reload after the pool was warm");
  assert.deepEqual(failures, []);
  assert.ok(ok - okBefore > 0, "the control Service took requests during the churn");
  assert.deepEqual(await bodies(local.agents.client, CONTROL.ip, CONTROL.port, 4), new Set(["pod1", "pod2"]));
});

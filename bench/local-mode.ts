// Local mode against onlyfetch, in one run:
//   (a) a Service created → its first request served, K times each way, p50/p99:
//       local: the Service's ClusterIP from a pod on the node (network namespaces, the capture in
//       the node's kernel): a free pool backend's `set server`s plus one nft element, no reload;
//       onlyfetch: the Service's port on the node (loopback): a reload binds its frontend
//       (--min-reload-period 0 here; its default, 2 s, would come on top);
//   (b) 1,000 Services created and deleted in local mode, in batches of 100 after one warm-up
//       batch (the pool grows to it once): the time, and the reloads after the warm-up.
// Each Service is deleted before the next is made, so the pool never has to grow in (a).
// Local mode needs root, ip, nft and iptables (test/netns.ts); without them the scenario says
// so in its table and its JSON, and measures nothing (under CI=true it fails instead).

import { setTimeout as sleep } from "node:timers/promises";
import { reloadsSoFar } from "./lib/master-cli.ts";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs, summarize, type Summary } from "./lib/stats.ts";
import { makeService, makeSlice } from "../src/sim/objects.ts";
import { freePort, get } from "../src/sim/pods.ts";
import { startWorld } from "../src/sim/world.ts";
import { LOCAL_TOOLS, churnIP, churnServices, service, slice, startLocalNode, type LocalNode } from "../test/local-node.ts";
import { netnsUnavailable } from "../test/netns.ts";

const TITLE = "Local mode: a new Service's first request, and 1,000 Services created and deleted";
const CHURN = 1_000;
const BATCH = 100;

/** Polls `attempt` until it answers; the time from `create()` to that answer, in ms. */
async function untilServed(create: () => void, attempt: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  create();
  const deadline = t0 + 30_000;
  while (!(await attempt())) {
    if (performance.now() > deadline) throw new Error("a new Service was not served within 30 s");
    await sleep(1);
  }
  return performance.now() - t0;
}

async function localFirstRequests(local: LocalNode, samples: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const ip = churnIP(1_500 + i);
    out.push(await untilServed(() => {
      local.api.upsert("services", service(`first${i}`, ip, [80]));
      local.api.upsert("endpointslices", slice(`first${i}`, [80]));
    }, async () => (await local.agents.client.http(ip, 80, 1_000)).kind === "response"));
    local.api.remove("services", "default", `first${i}`);
    local.api.remove("endpointslices", "default", `first${i}-1`);
    while ((await local.agents.client.http(ip, 80, 1_000)).kind === "response") await sleep(1);
  }
  return out;
}

async function onlyfetchFirstRequests(samples: number, log: (line: string) => void): Promise<{ samples: number[]; reloads: number }> {
  const world = await startWorld({ mode: "tcp", pods: 2, base: 75 });
  try {
    const before = await reloadsSoFar(world.haproxy.masterSocket);
    const out: number[] = [];
    for (let i = 0; i < samples; i++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}/`;
      out.push(await untilServed(() => {
        world.cluster.api.upsert("services", makeService("default", `first${i}`, [{ port }]));
        world.cluster.api.upsert("endpointslices", makeSlice("default", `first${i}`, `first${i}-1`, world.pods.map((p) => ({ ip: p.ip })), [{ port: world.pods[0]!.port }]));
      }, () => get(url, 1_000).then(() => true, () => false)));
      world.cluster.api.remove("services", "default", `first${i}`);
      world.cluster.api.remove("endpointslices", "default", `first${i}-1`);
      while (await get(url, 1_000).then(() => true, () => false)) await sleep(1);
    }
    const reloads = (await reloadsSoFar(world.haproxy.masterSocket)) - before;
    log(`local-mode: onlyfetch done (${reloads} reloads)`);
    return { samples: out, reloads };
  } finally {
    await world.stop();
  }
}

export const localModeScenario: Scenario = {
  name: "local-mode",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const unavailable = netnsUnavailable(LOCAL_TOOLS);
    if (unavailable !== undefined) {
      // As the tests: under CI a missing capability must fail, not hide behind "not run".
      if (process.env.CI === "true") throw new Error(`local-mode cannot run under CI=true: ${unavailable}`);
      context.log(`local-mode: NOT RUN: ${unavailable}`);
      return { title: TITLE, columns: ["", "result"], rows: [["not run", unavailable]], notes: ["Local mode needs root, ip, nft and iptables (network namespaces); nothing was measured."], json: { notRun: unavailable } };
    }
    const samples = context.quick ? 5 : 30;
    const cleanups: (() => void | Promise<void>)[] = [];
    try {
      const local = await startLocalNode({ after: (fn) => void cleanups.push(fn) });
      const reloadsAtStart = await local.reloads();
      const localFirst = await localFirstRequests(local, samples);
      const localFirstReloads = (await local.reloads()) - reloadsAtStart;
      context.log(`local-mode: local first requests done (${localFirstReloads} reloads)`);
      const onlyfetch = await onlyfetchFirstRequests(samples, context.log);

      const batches = Array.from({ length: CHURN / BATCH }, (_, b) => Array.from({ length: BATCH }, (_, k) => b * BATCH + k));
      const beforeWarm = await local.reloads();
      await churnServices(local, Array.from({ length: BATCH }, (_, k) => CHURN + k));
      const warm = await local.reloads();
      const t0 = performance.now();
      for (const batch of batches) await churnServices(local, batch);
      const churnMs = performance.now() - t0;
      const churnReloads = (await local.reloads()) - warm;
      context.log(`local-mode: ${CHURN} Services churned in ${formatMs(churnMs)}`);

      const a = summarize(localFirst);
      const b = summarize(onlyfetch.samples);
      const row = (name: string, pick: (s: Summary) => number): string[] => [name, formatMs(pick(a)), formatMs(pick(b)), `${(pick(b) / pick(a)).toFixed(1)}×`];
      return {
        title: TITLE,
        columns: ["", "local (ClusterIP, pool + nft element)", "onlyfetch (node port, reload)", "onlyfetch / local"],
        rows: [
          row(`first request after create, p50 (${samples} Services)`, (s) => s.p50),
          row("first request after create, p99", (s) => s.p99),
          ["reloads for those Services", String(localFirstReloads), String(onlyfetch.reloads), ""],
          [`${CHURN} Services created and deleted (batches of ${BATCH})`, formatMs(churnMs), "", ""],
          ["reloads during those, after a warm-up batch", `${churnReloads} (warm-up: ${warm - beforeWarm})`, "", ""],
        ],
        notes: [
          "First request: from the API write to the first answer, polled every millisecond (local: from a client network namespace; onlyfetch: over loopback, --min-reload-period 0).",
          "Onlyfetch also reloads to remove each Service; local mode releases the pool backend with runtime commands and one nft element.",
        ],
        json: { samples, local: { firstRequestMs: a, reloads: localFirstReloads }, onlyfetch: { firstRequestMs: b, reloads: onlyfetch.reloads }, churn: { services: CHURN, batch: BATCH, ms: churnMs, reloadsAfterWarmUp: churnReloads, warmUpReloads: warm - beforeWarm } },
      };
    } finally {
      for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch(() => {});
    }
  },
};

// A pod killed under load while its endpoint is still in the EndpointSlice (the cluster has not
// noticed yet), and what HAProxy did about it: the failover measurement shared by the tests
// and the bench.

import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { startLoad, type LoadResult } from "./load.ts";
import type { World } from "./world.ts";

/** One row of HAProxy's `show stat` per proxy or server, keyed by the CSV header's names (pxname, svname, addr, status, stot, …). */
export function showStat(socket: string): Promise<Record<string, string>[]> {
  return new Promise((resolve, reject) => {
    const connection = connect(socket);
    let text = "";
    connection.setEncoding("utf8");
    connection.on("connect", () => connection.end("show stat\n"));
    connection.on("data", (chunk: string) => (text += chunk));
    connection.on("error", reject);
    connection.on("close", () => {
      const [header = "", ...lines] = text.split("\n").filter(Boolean);
      const names = header.replace(/^# /, "").split(",");
      resolve(lines.map((line) => Object.fromEntries(line.split(",").map((value, i) => [names[i] ?? String(i), value]))));
    });
  });
}

export interface KillResult {
  readonly load: LoadResult;
  /** Failed requests sent after the kill; the ones in flight at the kill died with the pod. */
  readonly failedAfterKill: number;
  /** While the dead pod was in the slice: connections HAProxy tried on it, and retries it sent elsewhere. */
  readonly attemptsOnDead: number;
  readonly redispatched: number;
}

export interface KillOptions {
  /** How long the dead pod stays in the slice before the cluster notices and removes it. */
  readonly staleMs: number;
  /** Load before the kill. @default 300 */
  readonly warmupMs?: number;
  /** Clients, each opening a new connection per request. @default 4 */
  readonly clients?: number;
}

/**
 * New-connection load on `world`; its first pod stops abruptly (listener closed and every
 * connection destroyed at once, as a SIGKILL does), stays in the slice for `staleMs`, then
 * leaves it. The world's other pods keep serving.
 */
export async function killUnderLoad(world: World, options: KillOptions): Promise<KillResult> {
  const [dead, ...alive] = world.pods;
  if (!dead || alive.length === 0) throw new Error("killUnderLoad needs a world with two pods or more");
  const address = `${dead.ip}:${dead.port}`;
  const rows = async (): Promise<{ server: Record<string, string>; backend: Record<string, string> }> => {
    const stat = (await showStat(world.haproxy.runtimeSocket)).filter((row) => row.pxname === world.backend);
    const server = stat.find((row) => row.addr === address);
    const backend = stat.find((row) => row.svname === "BACKEND");
    if (!server || !backend) throw new Error(`${world.backend}: no server at ${address}`);
    return { server, backend };
  };
  const load = startLoad(world.url, options.clients ?? 4, 0);
  await sleep(options.warmupMs ?? 300);
  const before = await rows();
  const killedAt = performance.now();
  await dead.stop(0);
  await sleep(options.staleMs);
  const after = await rows();
  world.setEndpoints(alive.map((pod) => ({ ip: pod.ip })));
  const deadline = performance.now() + 10_000;
  while ((await rows()).server.status !== "MAINT") {
    if (performance.now() > deadline) throw new Error(`${world.backend}: ${address} still in service 10 s after leaving the slice`);
    await sleep(20);
  }
  await sleep(200);
  const result = await load.stop();
  return {
    load: result,
    failedAfterKill: result.failedStarts.filter((at) => at >= killedAt).length,
    attemptsOnDead: Number(after.server.stot) - Number(before.server.stot),
    redispatched: Number(after.backend.wredis) - Number(before.backend.wredis),
  };
}

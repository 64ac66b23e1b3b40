// The runtime client and the data plane's endpoint path against a real HAProxy, with real
// traffic to loopback pods.

import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { setServerState, showServersState } from "../src/haproxy/commands.ts";
import { renderConfig, type RenderedBackend } from "../src/haproxy/render.ts";
import { masterCommand, parseShowProc, reloadCount } from "../src/haproxy/master.ts";
import { isKubeHaproxyError, type KubeHaproxyError } from "../src/errors.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { silentLogger } from "../src/log.ts";
import type { Backend, Endpoint } from "../src/model.ts";
import { startHaproxy, runtimeSocketIn, type HaproxyProcess } from "../src/sim/haproxy.ts";
import { freePort, get, spread, startPods, type Pod } from "../src/sim/pods.ts";
import { Dataplane } from "../src/dataplane/dataplane.ts";
import { deferrer, draining, makeBackend, ready, tempDir, waitFor } from "./helpers.ts";

interface Setup {
  haproxy: HaproxyProcess;
  client: RuntimeClient;
  engine: Dataplane;
  url: string;
  backend: Backend;
  pods: Pod[];
}

async function setup(
  t: Parameters<typeof tempDir>[0],
  options: { slots?: number; pods?: number; runtimeAddress?: string; algorithm?: string; deleteRetryMs?: number } = {},
): Promise<Setup> {
  // Each cleanup is registered as soon as its thing runs: when HAProxy refuses to start, the
  // pods must still stop, or they keep the test process (and `npm test`) alive. The folder is
  // the first registered, so it is removed last, after HAProxy has stopped writing to it.
  const defer = deferrer(t);
  const dir = await tempDir({ after: defer });
  const port = await freePort();
  const pods = await startPods(options.pods ?? 4, { base: 1 + Math.floor(Math.random() * 200) });
  defer(() => Promise.all(pods.map((pod) => pod.stop())));
  const backend = makeBackend("default:web:80", [], { binds: [{ address: "127.0.0.1", port }], minSlots: options.slots ?? 4, algorithm: options.algorithm ?? "roundrobin" });
  const rendered: RenderedBackend = { backend, slots: options.slots ?? 4, filled: new Map() };
  const haproxy = await startHaproxy({ dir, runtimeSocket: options.runtimeAddress, config: renderConfig([rendered], { runtimeSocket: options.runtimeAddress ?? runtimeSocketIn(dir) }) });
  defer(() => haproxy.stop());
  const client = new RuntimeClient({ address: options.runtimeAddress ?? haproxy.runtimeSocket, reconnectMinMs: 20, reconnectMaxMs: 200 });
  defer(() => client.close());
  const engine = new Dataplane({ transport: client, log: silentLogger, retryMinMs: 20, retryMaxMs: 200, configSyncPeriodMs: 0, deleteRetryMs: options.deleteRetryMs });
  defer(() => engine.stop());
  engine.start();
  engine.beginSync();
  return { haproxy, client, engine, url: `http://127.0.0.1:${port}/`, backend, pods };
}

function endpointsOf(pods: Pod[], state: "ready" | "drain" = "ready"): Endpoint[] {
  return pods.map((pod) => (state === "ready" ? ready(pod.ip, pod.port) : draining(pod.ip, pod.port)));
}

/**
 * The set of pods that answer. HAProxy's roundrobin is fair over time but not right after
 * servers change state, so keep asking (up to 200 requests) until `expected` pods have answered.
 */
async function servedBy(url: string, expected: number): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < expected; i++) for (const who of (await spread(url, 1)).keys()) seen.add(who);
  return [...seen].sort();
}

const ips = (pods: Pod[]): string[] => pods.map((pod) => pod.ip).sort();

describe("runtime client", () => {
  test("pipelines commands; each gets its own result, errors carry HAProxy's text", async (t) => {
    const { client } = await setup(t);
    await client.waitConnected();
    const results = await client.executeAll([
      setServerState("default:web:80", "s1", "ready"),
      setServerState("default:web:80", "s99", "ready"),
      setServerState("default:web:80", "s2", "drain"),
      showServersState("default:web:80"),
    ]);
    assert.equal(results.length, 4);
    assert.ok(results[0]!.ok);
    assert.ok(!results[1]!.ok);
    assert.equal(results[1]!.ok ? "" : results[1]!.error.reply, "No such server.");
    assert.ok(results[2]!.ok);
    const states = parseServersState(results[3]!.ok ? results[3]!.reply : "").map(stateOf);
    assert.deepEqual(states, ["ready", "drain", "maint", "maint"]);
  });

  test("a line that would smuggle a second command is refused and HAProxy is unchanged", async (t) => {
    const { client } = await setup(t);
    await client.waitConnected();
    const before = await client.execute(showServersState());
    const [result] = await client.executeAll([{ line: "set server default:web:80/s1 state maint\nset server default:web:80/s1 state ready", expect: "empty" }]);
    assert.ok(!result!.ok);
    assert.equal(result!.ok ? "" : result!.error.code, "E_INVALID_IDENTIFIER");
    assert.equal(await client.execute(showServersState()), before);
  });

  test("a HAProxy that stops answering: the command times out, the client reconnects once it is back", async (t) => {
    const { haproxy } = await setup(t);
    const client = new RuntimeClient({ address: haproxy.runtimeSocket, commandTimeoutMs: 300, reconnectMinMs: 20, reconnectMaxMs: 100 });
    t.after(() => client.close());
    await client.waitConnected();
    const worker = parseShowProc(await masterCommand(haproxy.masterSocket, "show proc")).find((p) => p.role === "worker")!;
    const disconnects: string[] = [];
    client.on("disconnect", (error) => disconnects.push((error as KubeHaproxyError).code));
    process.kill(worker.pid, "SIGSTOP");
    try {
      // A signal is delivered asynchronously: on a busy machine the worker could still answer a
      // command sent at once. Every thread of it stopped ("T" in /proc) before the command goes.
      await waitFor(async () => {
        const threads = await readdir(`/proc/${worker.pid}/task`);
        const states = await Promise.all(threads.map(async (id) => /\) (\w)/.exec(await readFile(`/proc/${worker.pid}/task/${id}/stat`, "utf8"))?.[1]));
        return states.every((state) => state === "T");
      }, 5_000, "the worker stopped");
      await assert.rejects(client.execute(showServersState()), (error) => isKubeHaproxyError(error, "E_COMMAND_TIMEOUT"));
      assert.deepEqual(disconnects, ["E_COMMAND_TIMEOUT"]);
    } finally {
      process.kill(worker.pid, "SIGCONT");
    }
    await waitFor(async () => client.connected && /default:web:80/.test(await client.execute(showServersState())), 5_000, "reconnected");
  });

  test("works over a TCP runtime socket (host:port)", async (t) => {
    const address = `127.0.0.1:${await freePort()}`;
    const { client } = await setup(t, { runtimeAddress: address });
    await client.waitConnected();
    assert.equal(client.address, address);
    assert.match(await client.execute(showServersState()), /default:web:80/);
  });
});

describe("sync engine", () => {
  test("traffic reaches exactly the ready endpoints after each change", async (t) => {
    const { engine, url, backend, pods } = await setup(t);
    const steps: Pod[][] = [pods.slice(0, 3), pods.slice(0, 1), pods.slice(1, 4), pods];
    for (const step of steps) {
      engine.setBackend({ ...backend, endpoints: endpointsOf(step) });
      await engine.whenSynced();
      assert.deepEqual(await servedBy(url, step.length), ips(step));
    }
    engine.setBackend({ ...backend, endpoints: [] });
    await engine.whenSynced();
    await assert.rejects(get(url), "no endpoint: the request fails");
  });

  test("a drained endpoint keeps its open connection but gets no new ones", async (t) => {
    const { engine, url, backend, pods } = await setup(t, { pods: 2 });
    const [a, b] = pods as [Pod, Pod];
    engine.setBackend({ ...backend, endpoints: [ready(a.ip, a.port)] });
    await engine.whenSynced();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const viaKeepAlive = (): Promise<string> =>
      new Promise((resolve, reject) => {
        request(url, { agent }, (res) => {
          let body = "";
          res.on("data", (chunk) => (body += chunk));
          res.on("end", () => resolve(body.trim()));
        })
          .on("error", reject)
          .end();
      });
    assert.equal(await viaKeepAlive(), a.ip);
    engine.setBackend({ ...backend, endpoints: [draining(a.ip, a.port), ready(b.ip, b.port)] });
    await engine.whenSynced();
    assert.deepEqual(await servedBy(url, 2), [b.ip], "new connections avoid the draining pod");
    assert.equal(await viaKeepAlive(), a.ip, "the open connection still reaches it");
  });

  test("removed endpoints go to maint and get nothing", async (t) => {
    const { engine, url, backend, pods } = await setup(t, { pods: 3 });
    engine.setBackend({ ...backend, endpoints: endpointsOf(pods) });
    await engine.whenSynced();
    engine.setBackend({ ...backend, endpoints: endpointsOf(pods.slice(2)) });
    await engine.whenSynced();
    assert.deepEqual(await servedBy(url, 2), ips(pods.slice(2)));
    const applied = [...engine.applied("default:web:80")!.values()].map((slot) => slot.state);
    assert.deepEqual(applied, ["maint", "maint", "ready", "maint"]);
    engine.setBackend({ ...backend, endpoints: [ready(pods[0]!.ip, pods[0]!.port)] });
    await engine.whenSynced();
    assert.deepEqual(await servedBy(url, 2), [pods[0]!.ip]);
  });

  test("more endpoints than slots: one overflow event, and the endpoints that fit keep working", async (t) => {
    // static-rr cannot take dynamic servers (roundrobin would grow instead, see below).
    const { engine, url, backend, pods } = await setup(t, { slots: 2, pods: 3, algorithm: "static-rr" });
    const overflows: string[][] = [];
    engine.on("overflow", (_name, keys) => overflows.push([...keys]));
    engine.setBackend({ ...backend, endpoints: endpointsOf(pods) });
    await engine.whenSynced();
    assert.equal(overflows.length, 1);
    assert.equal(overflows[0]!.length, 1);
    assert.equal(engine.status()[0]!.overflow, 1);
    assert.equal((await servedBy(url, 3)).length, 2);
    // Counted once, not again at every flush that still finds it (issue 9, bug 5).
    for (let i = 0; i < 3; i++) {
      engine.requestFullSync();
      await engine.whenSynced();
    }
    assert.equal(overflows.length, 1);
  });

  test("3 slots, 50 endpoints: dynamic servers, no reload; back to 2: dynamic servers deleted", async (t) => {
    const { engine, url, backend, pods, haproxy, client } = await setup(t, { slots: 3, pods: 50 });
    const overflows: number[] = [];
    engine.on("overflow", (_name, keys) => overflows.push(keys.length));
    engine.setBackend({ ...backend, endpoints: endpointsOf(pods) });
    await engine.whenSynced();
    assert.deepEqual(overflows, [], "roundrobin grows at runtime, no overflow");
    assert.equal(engine.status()[0]!.dynamic, 47);
    assert.deepEqual(await servedBy(url, 50), ips(pods));
    assert.equal(await reloadCount(haproxy.masterSocket), 0);

    engine.setBackend({ ...backend, endpoints: endpointsOf(pods.slice(0, 2)) });
    await waitFor(() => engine.status()[0]!.dynamic === 0, 10_000, "dynamic servers deleted");
    const servers = parseServersState(await client.execute(showServersState("default:web:80"))).map((r) => r.server);
    assert.deepEqual(servers, ["s1", "s2", "s3"]);
    assert.deepEqual(await servedBy(url, 2), ips(pods.slice(0, 2)));
  });

  test("a removed dynamic server that keeps a connection: healthy, other changes flow, deleted once it closes (issue 9, bug 1)", { timeout: 60_000 }, async (t) => {
    const { engine, url, backend, pods, client } = await setup(t, { slots: 1, pods: 3, deleteRetryMs: 100 });
    const [a, b, c] = pods as [Pod, Pod, Pod];
    engine.setBackend({ ...backend, endpoints: endpointsOf([a, b]) });
    await engine.whenSynced();
    const dynamicIp = (): string | undefined => {
      const applied = engine.applied(backend.name)!;
      return [...applied].find(([slot]) => slot > 1 && applied.get(slot)!.state !== "maint")?.[1].ip;
    };
    const held = dynamicIp()!;
    assert.ok(held, "one endpoint on a dynamic server");
    // A long-lived connection to the pod on the dynamic server (keep-alive HTTP through a TCP frontend).
    const port = Number(new URL(url).port);
    let socket: Socket | undefined;
    for (let i = 0; i < 50 && !socket; i++) {
      const candidate = connect({ host: "127.0.0.1", port });
      t.after(() => candidate.destroy());
      candidate.setEncoding("utf8");
      const who = await new Promise<string>((resolve) => {
        candidate.once("data", (chunk: string) => resolve(chunk.trim().split("\n").at(-1)!));
        candidate.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      });
      if (who === held) socket = candidate;
      else candidate.destroy();
    }
    assert.ok(socket, `a connection to ${held}`);
    const kept = a.ip === held ? a : b;
    const reports: { commands: number; failed: number }[] = [];
    engine.on("flushed", (report) => reports.push(report));
    engine.setBackend({ ...backend, endpoints: endpointsOf([kept === a ? b : a]) });
    await engine.whenSynced();
    // Held for many delete retries: every one answered "still has connections", none a failure.
    for (let i = 0; i < 10; i++) {
      await sleep(150);
      assert.equal(engine.health().pendingMs, 0, "a pending delete is not a pending change");
      assert.equal(engine.statusOf(backend.name).dynamic, 1, "not deleted while the connection lives");
    }
    // Meanwhile a change is applied at once, not behind the delete's retry timer (bug 2).
    engine.setBackend({ ...backend, endpoints: endpointsOf([kept === a ? b : a, c]) });
    await engine.whenSynced();
    assert.ok((await servedBy(url, 2)).includes(c.ip));
    assert.ok(reports.filter((r) => r.commands > 0).length >= 5, `delete retried (${reports.length} flushes)`);
    assert.deepEqual(reports.filter((r) => r.failed > 0), [], "busy deletes are not failures");
    socket.destroy();
    await waitFor(() => engine.statusOf(backend.name).dynamic === 1, 10_000, "the held server deleted (c's remains)");
    const names = parseServersState(await client.execute(showServersState(backend.name))).map((r) => `${r.server} ${r.address}`);
    assert.ok(!names.some((name) => name.endsWith(` ${held}`)), `the held server is gone: ${names.join(", ")}`);
  });

  test("add server refused (the running algorithm takes no dynamic servers): tried once per endpoint, not after every full sync (issue 9, bug 4)", async (t) => {
    const { engine, backend, pods, url } = await setup(t, { slots: 1, pods: 3, algorithm: "static-rr" });
    const adds: string[] = [];
    engine.on("failed", (command) => void (command.startsWith("add server") && adds.push(command)));
    // The cluster asks for roundrobin (dynamic servers); the running worker still has static-rr
    // (its reload pending, refused or failed).
    engine.setBackend({ ...backend, algorithm: "roundrobin", endpoints: endpointsOf(pods) });
    await sleep(2_000); // some ten retry backoffs of 20–200 ms
    assert.equal(adds.length, 2, adds.join("\n"));
    assert.equal((await servedBy(url, 1)).length, 1, "the endpoint that fits is served");
  });

  test("a 1,000-slot backend filled and emptied", async (t) => {
    const { engine, backend, client, url, pods } = await setup(t, { slots: 1000, pods: 1 });
    const pod = pods[0]!;
    // 999 endpoints on addresses nothing listens on, plus one real pod: all programmed.
    const endpoints = [ready(pod.ip, pod.port)];
    for (let i = 1; i < 1000; i++) endpoints.push(ready(`127.250.${Math.floor(i / 250)}.${(i % 250) + 1}`, 9));
    let commands = 0;
    engine.on("flushed", (report) => (commands += report.commands));
    engine.setBackend({ ...backend, endpoints });
    await engine.whenSynced();
    const full = parseServersState(await client.execute(showServersState("default:web:80")));
    assert.equal(full.filter((r) => stateOf(r) === "ready").length, 1000);
    assert.equal(commands, 2000, "one addr and one state command per endpoint");
    engine.setBackend({ ...backend, endpoints: [ready(pod.ip, pod.port)] });
    await engine.whenSynced();
    const emptied = parseServersState(await client.execute(showServersState("default:web:80")));
    assert.equal(emptied.filter((r) => stateOf(r) === "ready").length, 1);
    assert.equal(await get(url), pod.ip);
  });

  test("an address that could inject a command is refused; HAProxy is unchanged", async (t) => {
    const { engine, backend, client, url, pods } = await setup(t, { pods: 1 });
    const pod = pods[0]!;
    engine.setBackend({ ...backend, endpoints: [ready(pod.ip, pod.port)] });
    await engine.whenSynced();
    const before = await client.execute(showServersState());
    const refused: string[] = [];
    engine.on("invalid", (_name, endpoint) => refused.push(endpoint.ip));
    engine.setBackend({ ...backend, endpoints: [ready(pod.ip, pod.port), ready("10.0.0.1 state maint;shutdown sessions", 80)] });
    await engine.whenSynced();
    assert.deepEqual(refused, ["10.0.0.1 state maint;shutdown sessions"]);
    const afterState = await client.execute(showServersState());
    const strip = (s: string): string => s.replace(/^(\S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+) \d+/gm, "$1 T");
    assert.equal(strip(afterState), strip(before));
    assert.equal(await get(url), pod.ip);
  });

  test("HAProxy killed and started again: reconnect, and the full desired state is restored", async (t) => {
    const { engine, backend, haproxy, url, pods } = await setup(t, { pods: 3 });
    engine.setBackend({ ...backend, endpoints: endpointsOf(pods) });
    await engine.whenSynced();
    assert.deepEqual(await servedBy(url, 3), ips(pods));
    await haproxy.kill();
    // The same (bootstrap, empty) configuration again, like a container restart.
    const again = await startHaproxy({ dir: haproxy.configPath.replace(/\/haproxy\.cfg$/, ""), configPath: haproxy.configPath });
    t.after(() => again.stop());
    await waitFor(async () => (await servedBy(url, 3)).join() === ips(pods).join(), 5_000, "state restored after restart");
  });
});

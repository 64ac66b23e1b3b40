// The health check node ports (mesh mode) over real HTTP on loopback: kube-proxy's answer and
// headers, the count following the Service, ports opened and closed as Services come and go, a
// port two Services name served for the first, a port taken on the node logged and counted.

import assert from "node:assert/strict";
import { request, type IncomingHttpHeaders } from "node:http";
import { createServer, type Server as NetServer } from "node:net";
import { test } from "node:test";
import { HealthCheckNodePorts } from "../src/health-check-node-port.ts";
import { interceptLogger, silentLogger } from "../src/log.ts";
import { freePort } from "../src/sim/pods.ts";

function onLoopback(server: NetServer, port: number, host = "127.0.0.1"): Promise<void> {
  return new Promise((resolve, reject) => server.once("error", reject).listen(port, host, () => resolve()));
}

/** One request on a connection of its own (a load balancer's probe): the answer, or refused. */
function get(port: number, host = "127.0.0.1"): Promise<{ status: number; headers: IncomingHttpHeaders; body: string } | "refused"> {
  return new Promise((resolve, reject) => {
    request({ host, port, path: "/healthz", agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    })
      .on("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNREFUSED" ? resolve("refused") : reject(error)))
      .end();
  });
}

test("health check node ports: kube-proxy's answer, the count following the Service, closed when it goes", async (t) => {
  const [port, other] = [await freePort(), await freePort()];
  const checks = new HealthCheckNodePorts({ log: silentLogger, listen: onLoopback });
  t.after(() => checks.close());

  checks.set("shop/web", { port, localEndpoints: 2 });
  await checks.settled();
  const ok = await get(port);
  assert.ok(ok !== "refused");
  assert.equal(ok.status, 200);
  assert.equal(ok.headers["content-type"], "application/json");
  assert.equal(ok.headers["x-content-type-options"], "nosniff");
  assert.equal(ok.headers["x-load-balancing-endpoint-weight"], "2");
  assert.deepEqual(JSON.parse(ok.body), { service: { namespace: "shop", name: "web" }, localEndpoints: 2, serviceProxyHealthy: true });

  checks.set("shop/web", { port, localEndpoints: 0 });
  const none = await get(port);
  assert.ok(none !== "refused");
  assert.equal(none.status, 503);
  assert.equal(JSON.parse(none.body).localEndpoints, 0);

  // The Service moves to another port: the old one closes, the new one answers.
  checks.set("shop/web", { port: other, localEndpoints: 1 });
  await checks.settled();
  assert.equal(await get(port), "refused");
  assert.equal((await get(other)) !== "refused", true);
  assert.deepEqual(checks.ports(), new Map([["shop/web", other]]));

  checks.set("shop/web", undefined);
  await checks.close();
  assert.equal(await get(other), "refused");
  assert.deepEqual(checks.ports(), new Map());
});

test("a port another Service holds is not taken over; a port taken on the node is logged, counted and tried again", async (t) => {
  const port = await freePort();
  const warnings: string[] = [];
  const failed: string[] = [];
  const log = interceptLogger(silentLogger, (type, message) => (type === "warn" || type === "error" ? (warnings.push(message), true) : false));
  const checks = new HealthCheckNodePorts({ log, listen: onLoopback, onError: (service) => failed.push(service) });
  t.after(() => checks.close());

  checks.set("shop/web", { port, localEndpoints: 1 });
  checks.set("shop/api", { port, localEndpoints: 0 });
  await checks.settled();
  const answer = await get(port);
  assert.ok(answer !== "refused");
  assert.equal(JSON.parse(answer.body).service.name, "web");
  assert.ok(warnings.some((w) => /shop\/api: healthCheckNodePort \d+ is already served for shop\/web/.test(w)), warnings.join("\n"));

  const taken = createServer();
  const busy = await freePort();
  await onLoopback(taken, busy);
  t.after(() => void taken.close());
  checks.set("shop/db", { port: busy, localEndpoints: 1 });
  await checks.settled();
  assert.deepEqual(failed, ["shop/db"]);
  assert.ok(warnings.some((w) => /shop\/db: cannot serve healthCheckNodePort/.test(w)));
  assert.equal(checks.ports().has("shop/db"), false);
  await new Promise<void>((resolve) => taken.close(() => resolve()));
  checks.set("shop/db", { port: busy, localEndpoints: 1 }); // the Service's next change
  await checks.settled();
  assert.equal(checks.ports().get("shop/db"), busy);
  const retried = await get(busy);
  assert.ok(retried !== "refused" && retried.status === 200);
});

test("with --nodeport-addresses: one server per node address within them, all or nothing", async (t) => {
  const port = await freePort();
  const failed: number[] = [];
  const hosts = ["127.0.0.2", "127.0.0.3"];
  const checks = new HealthCheckNodePorts({ log: silentLogger, listen: (server, p, host) => onLoopback(server, p, host), hosts: () => hosts, onError: (_s, p) => failed.push(p) });
  t.after(() => checks.close());
  checks.set("shop/web", { port, localEndpoints: 1 });
  await checks.settled();
  for (const host of hosts) assert.notEqual(await get(port, host), "refused", host);
  assert.equal(await get(port, "127.0.0.4"), "refused", "not on other addresses");

  // One address taken: the port is served on none of them (a partial answer would mislead).
  const busy = await freePort("127.0.0.3");
  const taken = createServer();
  await onLoopback(taken, busy, "127.0.0.3");
  t.after(() => void taken.close());
  checks.set("shop/api", { port: busy, localEndpoints: 1 });
  await checks.settled();
  await new Promise((resolve) => setImmediate(resolve)); // the closing runs after the failed opening settles
  assert.deepEqual(failed, [busy]);
  assert.equal(await get(busy, "127.0.0.2"), "refused");
  assert.equal(checks.ports().has("shop/api"), false);
});

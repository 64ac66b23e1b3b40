// While run and render wait for the API server's first lists: the failures summarised, a
// permanent one told from one that may pass (src/commands/api-wait.ts), one log line per event.

import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { apiWait, classifyApiFailure } from "../src/commands/api-wait.ts";
import { createLogger } from "../src/log.ts";

test("classifyApiFailure: what no retry cures, and what may pass", () => {
  const cases: [string, "permanent" | "transient"][] = [
    ["GET /api/v1/services: HTTP 401 {\"kind\":\"Status\"}", "permanent"],
    ["GET /apis/discovery.k8s.io/v1/endpointslices: HTTP 404 not found", "permanent"],
    ["self-signed certificate in certificate chain", "permanent"],
    ["unable to verify the first certificate", "permanent"],
    ["Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list", "permanent"],
    ["ENOENT: no such file or directory, open '/etc/kubernetes/pki/ca.crt'", "permanent"],
    ["connect ECONNREFUSED 127.0.0.1:6443", "transient"],
    ["getaddrinfo EAI_AGAIN kubernetes.default.svc", "transient"],
    ["GET /api/v1/services: HTTP 403 forbidden", "transient"],
    ["GET /api/v1/services: HTTP 500 etcd timeout", "transient"],
    ["GET /api/v1/services: no answer in 60 s", "transient"],
    ["socket hang up", "transient"],
  ];
  for (const [reason, kind] of cases) assert.equal(classifyApiFailure(reason), kind, reason);
});

function capture(): { log: ReturnType<typeof createLogger>; lines: () => string[] } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (chunk) => (text += chunk));
  return { log: createLogger({ level: "debug", stream }), lines: () => text.trimEnd().split("\n").filter(Boolean) };
}

test("apiWait: the first failure said once at warn, the rest at debug; other lines untouched; normal logging once done", async () => {
  const { log, lines } = capture();
  const waiting = apiWait(log, { server: "https://api:6443" });
  waiting.log.info("waiting for HAProxy's runtime API at /run/x.sock");
  for (const delay of [500, 1000, 2000]) waiting.log.warn(`services watch failed (connect ECONNREFUSED 10.0.0.1:6443); restarting in ${delay} ms`);
  waiting.log.warn("restarted the services watch (error)");
  waiting.log.warn("skipping default/dns port dns (udp): HAProxy has no UDP");
  assert.equal(waiting.lastFailure(), "connect ECONNREFUSED 10.0.0.1:6443");
  waiting.done();
  waiting.log.warn("endpointslices watch failed (socket hang up); restarting in 500 ms");
  const levels = lines().map((line) => line.split(/\s+/)[1]);
  const text = lines().map((line) => line.replace(/^\S+ \S+\s+/, ""));
  assert.deepEqual(levels, ["INFO", "WARN", "DEBUG", "DEBUG", "DEBUG", "WARN", "INFO", "WARN"]);
  assert.equal(text[1], "waiting for the API server at https://api:6443 to list Services and EndpointSlices: connect ECONNREFUSED 10.0.0.1:6443; retrying (nothing is programmed before both lists arrive)");
  assert.match(text[6]!, /^the API server at https:\/\/api:6443 answered after \d+ s$/);
  assert.equal(text[7], "endpointslices watch failed (socket hang up); restarting in 500 ms");
});

test("apiWait: a permanent failure resolves `permanent`", async () => {
  const { log } = capture();
  const waiting = apiWait(log, { server: "https://api:6443" });
  waiting.log.warn("services watch failed (GET /api/v1/services: HTTP 401 Unauthorized); restarting in 500 ms");
  assert.equal(await waiting.permanent, "GET /api/v1/services: HTTP 401 Unauthorized");
});

test("text logs: one line per event, no blank lines around warnings, newlines escaped", () => {
  const { log, lines } = capture();
  log.warn("first\nsecond");
  log.info("with fields", { service: "default/web" });
  log.error("failed");
  assert.equal(lines().length, 3);
  assert.match(lines()[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN  first\\nsecond$/);
  assert.match(lines()[1]!, / INFO  with fields \{"service":"default\/web"\}$/);
  assert.match(lines()[2]!, / ERROR failed$/);
});

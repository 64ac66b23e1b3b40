// Tests of the fake API server with the REAL @kubernetes/client-node informers (no mocks).
//
// How client-node 2.0.1 informers behave (ListWatch in dist/cache.js, Watch in dist/watch.js),
// as read from the source and checked by the tests below:
// - start() emits 'connect', calls listFn() with NO arguments (so the list function must apply the
//   label selector itself: makeInformer's labelSelector only reaches the watch), emits 'add' per
//   listed object ('delete' for cached objects missing from a re-list), opens the watch from the
//   list's resourceVersion and resolves once the watch's response HEADERS arrive. It resolves even
//   when the list or the watch failed: failures are visible only as 'error' events.
// - Events: 'add' / 'update' / 'delete' per object ('change' = all three; no 'update' if the
//   resourceVersion is unchanged); 'connect' at each start() and automatic reconnect, BEFORE the
//   list/watch is tried (not a success signal); 'error'.
// - A watch that ends cleanly (server timeout, graceful close) is re-opened from the last seen
//   resourceVersion, no re-list, after a back-off 0, 1, 2, 4 … 30 s reset to 0 by any received
//   event (BOOKMARK included). A 410 (ERROR event with code 410, or HTTP 410 on the watch) makes it
//   re-list (with 'delete' for vanished objects) and watch again by itself, without 'error'.
// - ANY other failure (list error, watch answered 401/500/…, connection refused, stream cut mid-way
//   → "terminated") emits 'error' once and the informer STOPS for good: the application must call
//   start() again, which re-watches from the last resourceVersion (re-lists only if it has none).
//   stop() of a watching informer also emits 'error' (AbortError): a restart-on-error handler
//   needs its own "stopped" flag.
// - Client side, a watch with no bytes for 30 s is aborted and re-opened at once (no 'error'); the
//   informer never asks for bookmarks, so an idle watch reconnects every 30 s.
// - Cached objects that came from the list are client-node class instances (creationTimestamp is a
//   Date); those that came from watch events are plain JSON (creationTimestamp is a string).

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  makeInformer,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  type V1EndpointSlice,
  type V1Service,
} from "@kubernetes/client-node";
import { FakeApiServer, parseLabelSelector, type FakeApiServerOptions } from "../src/sim/api-server.ts";
import { makeTestCertificates, type TestCertificates } from "../src/sim/certs.ts";
import { writeKubeconfig } from "../src/sim/kubeconfig.ts";

const TOKEN = "s3cret";
let dir = "";
let certs: TestCertificates;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kube-haproxy-sim-"));
  certs = await makeTestCertificates(join(dir, "pki"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Polls `cond` until it holds; fails the test after `timeoutMs`. Never a fixed sleep. */
async function waitFor(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Env {
  server: FakeApiServer;
  /** Run before the server stops, so that informers never see it go away. */
  cleanups: (() => Promise<void>)[];
  kc: KubeConfig;
  core: CoreV1Api;
  discovery: DiscoveryV1Api;
}

let kcSeq = 0;
/** A started server plus a kubeconfig for it; everything is stopped when the test ends. */
async function setup(
  t: TestContext,
  opts: FakeApiServerOptions & { plain?: boolean; clientToken?: string } = {},
): Promise<Env> {
  const server = new FakeApiServer({ token: TOKEN, tls: opts.plain ? undefined : certs, ...opts });
  await server.start();
  // Registered before anything else can fail: a server left running keeps the test process alive.
  const cleanups: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await server.stop();
  });
  const path = join(dir, `kubeconfig-${++kcSeq}.json`);
  await writeKubeconfig(path, { server: server.url, ca: opts.plain ? undefined : certs.ca, token: opts.clientToken ?? TOKEN });
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return { server, cleanups, kc, core: kc.makeApiClient(CoreV1Api), discovery: kc.makeApiClient(DiscoveryV1Api) };
}

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;
interface Recorder {
  events: string[];
  errors: unknown[];
  connects: number;
}

/**
 * Records an informer's events as "add ns/name" etc. With `restartOnError` it does what an
 * application must do with client-node: start() again after an 'error' (unless we stopped it).
 */
function record<T extends KubernetesObject>(env: Env, informer: Watched<T>, restartOnError = false): Recorder {
  const rec: Recorder = { events: [], errors: [], connects: 0 };
  let stopped = false;
  for (const verb of ["add", "update", "delete"] as const) {
    informer.on(verb, (o) => rec.events.push(`${verb} ${o.metadata?.namespace}/${o.metadata?.name}`));
  }
  informer.on("connect", () => rec.connects++);
  informer.on("error", (err) => {
    if (stopped) return; // stop() itself reports an AbortError
    rec.errors.push(err);
    if (restartOnError) setTimeout(() => void (stopped || informer.start()), 10);
  });
  env.cleanups.push(async () => {
    stopped = true;
    await informer.stop();
  });
  return rec;
}

function servicesInformer(env: Env, labelSelector?: string): Watched<V1Service> {
  return makeInformer(env.kc, "/api/v1/services", () => env.core.listServiceForAllNamespaces({ labelSelector }), labelSelector);
}

const names = (objs: readonly KubernetesObject[]) => objs.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`).sort();
const svc = (namespace: string, name: string, labels?: Record<string, string>, clusterIP = "10.96.0.10"): V1Service => ({
  metadata: { namespace, name, labels },
  spec: { clusterIP, ports: [{ port: 80, protocol: "TCP" }] },
});

test("makeTestCertificates: a CA and a server certificate for 127.0.0.1 and localhost", () => {
  const ca = new X509Certificate(certs.ca);
  const cert = new X509Certificate(certs.cert);
  assert.ok(ca.ca);
  assert.ok(cert.verify(ca.publicKey));
  assert.ok(cert.checkIP("127.0.0.1"));
  assert.ok(cert.checkHost("localhost"));
  assert.match(certs.key, /PRIVATE KEY/);
});

test("services informer over HTTPS: initial list, then add, update and delete events", async (t) => {
  const env = await setup(t);
  env.server.upsert("services", svc("default", "kubernetes"));
  env.server.upsert("services", svc("demo", "web"));
  const informer = servicesInformer(env);
  const rec = record(env, informer);

  await informer.start();
  assert.deepEqual(names(informer.list()), ["default/kubernetes", "demo/web"]);
  assert.deepEqual(rec.events, ["add default/kubernetes", "add demo/web"]);
  assert.equal(env.server.watchCount(), 1); // start() resolved with the watch open

  env.server.upsert("services", svc("demo", "api"));
  const updated = env.server.upsert("services", svc("demo", "web", undefined, "10.96.0.99"));
  const deleted = env.server.remove("services", "default", "kubernetes");
  assert.ok(deleted && Number(deleted.metadata?.resourceVersion) > Number(updated.metadata?.resourceVersion));
  await waitFor("three watch events", () => rec.events.length === 5);
  assert.deepEqual(rec.events.slice(2), ["add demo/api", "update demo/web", "delete default/kubernetes"]);
  assert.equal(informer.get("web", "demo")?.spec?.clusterIP, "10.96.0.99");
  assert.equal(informer.get("web", "demo")?.metadata?.uid, updated.metadata?.uid);
  assert.deepEqual(names(informer.list()), ["demo/api", "demo/web"]);
  assert.deepEqual(env.server.stats().services, { lists: 1, watches: 1 });
  assert.equal(rec.errors.length, 0);
});

test("endpointslices informer on a namespaced path sees only its namespace", async (t) => {
  const env = await setup(t);
  const slice = (namespace: string, name: string, ip: string): V1EndpointSlice => ({
    metadata: { namespace, name, labels: { "kubernetes.io/service-name": "web" } },
    addressType: "IPv4",
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  });
  env.server.upsert("endpointslices", slice("demo", "web-abc", "10.0.0.1"));
  env.server.upsert("endpointslices", slice("other", "web-xyz", "10.0.0.2"));
  const informer = makeInformer(env.kc, "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices", () =>
    env.discovery.listNamespacedEndpointSlice({ namespace: "demo" }),
  );
  const rec = record(env, informer);
  await informer.start();
  assert.deepEqual(names(informer.list()), ["demo/web-abc"]);
  assert.equal(informer.get("web-abc", "demo")?.endpoints?.[0]?.addresses[0], "10.0.0.1");

  env.server.upsert("endpointslices", slice("other", "web-xyz", "10.0.0.3")); // other namespace: not seen
  env.server.upsert("endpointslices", slice("demo", "web-abc", "10.0.0.4"));
  await waitFor("the update", () => rec.events.includes("update demo/web-abc"));
  assert.equal(informer.get("web-abc", "demo")?.endpoints?.[0]?.addresses[0], "10.0.0.4");
  assert.deepEqual(rec.events, ["add demo/web-abc", "update demo/web-abc"]);

  // The cluster-wide list the informers use, through the generated client.
  const all = await env.discovery.listEndpointSliceForAllNamespaces();
  assert.deepEqual(names(all.items), ["demo/web-abc", "other/web-xyz"]);
  assert.equal(all.items[0]?.kind, "EndpointSlice");
  assert.equal(all.metadata?.resourceVersion, env.server.resourceVersion);
  assert.deepEqual(env.server.stats().endpointslices, { lists: 2, watches: 1 });
});

test("dropWatches(): the informer errors and stops; started again it re-watches without re-listing", async (t) => {
  const env = await setup(t);
  env.server.upsert("services", svc("demo", "a"));
  const informer = servicesInformer(env);
  const rec = record(env, informer); // no automatic restart: observe that it stops

  await informer.start();
  env.server.dropWatches();
  await waitFor("an error", () => rec.errors.length === 1);
  assert.match(String((rec.errors[0] as Error).message), /terminated/);
  assert.equal(env.server.watchCount(), 0);

  env.server.upsert("services", svc("demo", "b")); // made while nobody watches: replayed from history
  await informer.start();
  env.server.upsert("services", svc("demo", "c"));
  await waitFor("both adds", () => rec.events.includes("add demo/c"));
  assert.deepEqual(rec.events, ["add demo/a", "add demo/b", "add demo/c"]);
  assert.deepEqual(env.server.stats().services, { lists: 1, watches: 2 });
});

test("dropWatches({graceful}): the informer re-watches by itself, no error", async (t) => {
  const env = await setup(t);
  const informer = servicesInformer(env);
  const rec = record(env, informer);
  await informer.start();
  env.server.upsert("services", svc("demo", "a")); // an event resets the client's back-off to 0
  await waitFor("the add", () => rec.events.length === 1);

  env.server.dropWatches({ graceful: true });
  await waitFor("a second watch", () => env.server.stats().services.watches === 2 && env.server.watchCount() === 1);
  env.server.upsert("services", svc("demo", "b"));
  await waitFor("the next add", () => rec.events.length === 2);
  assert.equal(rec.errors.length, 0);
  assert.equal(env.server.stats().services.lists, 1);
});

test("expireAll(): the re-watch gets an ERROR 410 event, the informer re-lists and converges", async (t) => {
  const env = await setup(t);
  for (const name of ["a", "b", "c"]) env.server.upsert("services", svc("demo", name));
  const informer = servicesInformer(env);
  const rec = record(env, informer, true);
  await informer.start();

  env.server.expireAll(); // abrupt: 'error', our handler restarts the informer
  env.server.remove("services", "demo", "b"); // deleted while the watch is down
  env.server.upsert("services", svc("demo", "d"));
  env.server.upsert("services", svc("demo", "a", { changed: "yes" }));
  await waitFor("a re-list", () => env.server.stats().services.lists === 2);
  await waitFor("a watch after it", () => env.server.watchCount() === 1);
  assert.deepEqual(names(informer.list()), names(env.server.list("services")));
  assert.deepEqual(informer.get("a", "demo")?.metadata?.labels, { changed: "yes" });
  assert.ok(rec.events.includes("delete demo/b"));
  assert.ok(rec.events.includes("add demo/d"));
  assert.equal(rec.errors.length, 1); // only the dropped connection; the 410 itself is no 'error'
  // Watches: the first, the expired one, the one after the re-list.
  assert.equal(env.server.stats().services.watches, 3);
  env.server.upsert("services", svc("demo", "e"));
  await waitFor("a live event after the re-list", () => rec.events.includes("add demo/e"));
});

test("expired watch as HTTP 410 (expiredWatch: 'status'), graceful end: the informer recovers alone", async (t) => {
  const env = await setup(t, { expiredWatch: "status" });
  env.server.upsert("services", svc("demo", "a"));
  env.server.upsert("services", svc("demo", "b"));
  const informer = servicesInformer(env);
  const rec = record(env, informer);
  await informer.start();

  env.server.expireAll({ graceful: true });
  env.server.remove("services", "demo", "a");
  await waitFor("the re-list's delete", () => rec.events.includes("delete demo/a"));
  assert.deepEqual(names(informer.list()), ["demo/b"]);
  assert.equal(env.server.stats().services.lists, 2);
  // After a failed re-watch the client waits its 1 s back-off before watching again.
  await waitFor("the watch after the re-list", () => env.server.watchCount() === 1, 4000);
  assert.equal(rec.errors.length, 0);
});

test("labelSelector: labelled services are filtered out of list and watch", async (t) => {
  const env = await setup(t);
  const selector = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
  env.server.upsert("services", svc("demo", "plain"));
  env.server.upsert("services", svc("demo", "other-proxy", { "service.kubernetes.io/service-proxy-name": "x" }));
  env.server.upsert("services", svc("demo", "headless", { "service.kubernetes.io/headless": "" }));
  const informer = servicesInformer(env, selector);
  const rec = record(env, informer);
  await informer.start();
  assert.deepEqual(names(informer.list()), ["demo/plain"]);

  env.server.upsert("services", svc("demo", "new-headless", { "service.kubernetes.io/headless": "" }));
  env.server.upsert("services", svc("demo", "plain", { "service.kubernetes.io/headless": "" })); // leaves
  env.server.upsert("services", svc("demo", "other-proxy")); // label removed: enters
  await waitFor("two more events", () => rec.events.length === 3);
  assert.deepEqual(rec.events, ["add demo/plain", "delete demo/plain", "add demo/other-proxy"]);
  assert.deepEqual(names(informer.list()), ["demo/other-proxy"]);
});

test("parseLabelSelector: equality and set-based operators", () => {
  const m = (sel: string, labels: Record<string, string>) => parseLabelSelector(sel)(labels);
  assert.ok(m("", {}));
  assert.ok(m("a", { a: "" }) && !m("a", {}));
  assert.ok(m("!a", {}) && !m("!a", { a: "1" }));
  assert.ok(m("a=1", { a: "1" }) && m("a==1", { a: "1" }) && !m("a=1", { a: "2" }));
  assert.ok(m("a!=1", {}) && m("a!=1", { a: "2" }) && !m("a!=1", { a: "1" }));
  assert.ok(m("a in (1, 2),b", { a: "2", b: "" }) && !m("a in (1,2)", {}));
  assert.ok(m("a notin (1,2)", {}) && !m("a notin (1,2)", { a: "1" }));
  assert.ok(m("x.io/k = v , !y", { "x.io/k": "v" }));
  assert.throws(() => parseLabelSelector("a=(1"));
});

test("authentication: 401 without the right bearer token", async (t) => {
  const env = await setup(t, { clientToken: "wrong" });
  await assert.rejects(env.core.listServiceForAllNamespaces(), (err: unknown) => err instanceof ApiException && err.code === 401);
  const plain = await setup(t, { plain: true });
  const res = await fetch(`${plain.server.url}/api/v1/services`);
  assert.equal(res.status, 401);
  assert.equal(((await res.json()) as { reason: string }).reason, "Unauthorized");
  assert.deepEqual(plain.server.stats().services, { lists: 0, watches: 0 });
});

test("failNext(1): the informer's list fails with 500 ('error', start() still resolves)", async (t) => {
  const env = await setup(t);
  env.server.upsert("services", svc("demo", "a"));
  env.server.failNext(1);
  const informer = servicesInformer(env);
  const rec = record(env, informer);
  await informer.start();
  assert.equal(rec.errors.length, 1);
  assert.ok(rec.errors[0] instanceof ApiException && rec.errors[0].code === 500);
  assert.equal(env.server.watchCount(), 0);
  await informer.start(); // it never listed, so this lists again
  assert.deepEqual(names(informer.list()), ["demo/a"]);
  assert.deepEqual(env.server.stats().services, { lists: 2, watches: 1 });
});

test("plain HTTP with insecure-skip-tls-verify", async (t) => {
  const env = await setup(t, { plain: true });
  assert.match(env.server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const informer = servicesInformer(env);
  const rec = record(env, informer);
  await informer.start();
  env.server.upsert("services", svc("demo", "a"));
  await waitFor("the add", () => rec.events.length === 1);
  assert.deepEqual(names(informer.list()), ["demo/a"]);

  // stop() aborts the watch, and client-node reports that abort as an 'error'.
  const errors: unknown[] = [];
  informer.on("error", (err) => errors.push(err));
  await informer.stop();
  await waitFor("the AbortError", () => errors.length === 1);
  assert.equal((errors[0] as Error).name, "AbortError");
  await waitFor("the watch to close", () => env.server.watchCount() === 0);
});

/** A raw watch over plain HTTP: the parsed events, the status, whether the stream ended. */
function rawWatch(url: string) {
  const w = { status: 0, events: [] as { type: string; object: Record<string, any> }[], ended: false, close: () => {} };
  const req = http.get(url, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
    w.status = res.statusCode ?? 0;
    let buf = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        w.events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    res.on("close", () => (w.ended = true));
  });
  req.on("error", () => (w.ended = true));
  w.close = () => req.destroy();
  return w;
}

test("watch protocol: replay, live events, pause/resume, bookmarks, timeoutSeconds, 410, stop()", async (t) => {
  const env = await setup(t, { plain: true, historyLimit: 3, bookmarkIntervalMs: 20 });
  const { server } = env;
  const base = `${server.url}/api/v1/namespaces/demo/services?watch=true`;
  server.upsert("services", svc("demo", "a"));
  const rvAfterA = Number(server.resourceVersion);
  server.upsert("services", svc("other", "x"));
  server.upsert("services", svc("demo", "b"));

  // Headers come at once, before any event; then the replay after rvAfterA, namespace-filtered.
  const idle = rawWatch(`${server.url}/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion=${server.resourceVersion}`);
  await waitFor("idle watch headers", () => idle.status === 200);
  const replay = rawWatch(`${base}&resourceVersion=${rvAfterA}`);
  await waitFor("the replay", () => replay.events.length === 1);
  assert.equal(replay.events[0]?.type, "ADDED");
  assert.equal(replay.events[0]?.object.metadata.name, "b");
  assert.equal(replay.events[0]?.object.kind, "Service");

  // resourceVersion=0: the current state as synthetic ADDED events.
  const any = rawWatch(`${base}&resourceVersion=0`);
  await waitFor("synthetic adds", () => any.events.length === 2);

  server.pauseWatches();
  server.remove("services", "demo", "a");
  await new Promise((resolve) => setTimeout(resolve, 50)); // a negative check needs some time
  assert.equal(replay.events.length, 1); // stalled: nothing written
  server.resumeWatches();
  await waitFor("the buffered delete", () => replay.events.length === 2);
  assert.equal(replay.events[1]?.type, "DELETED");
  assert.equal(replay.events[1]?.object.metadata.resourceVersion, server.resourceVersion);

  // Bookmarks only when asked, carrying the current version.
  const marks = rawWatch(`${base}&resourceVersion=${server.resourceVersion}&allowWatchBookmarks=true`);
  await waitFor("a bookmark", () => marks.events.length > 0);
  assert.deepEqual(marks.events[0], {
    type: "BOOKMARK",
    object: { kind: "Service", apiVersion: "v1", metadata: { resourceVersion: server.resourceVersion } },
  });

  const timed = rawWatch(`${base}&resourceVersion=${server.resourceVersion}&timeoutSeconds=1`);
  await waitFor("timeoutSeconds", () => timed.ended, 3000);

  // historyLimit 3: a watch from the first version is too old now.
  const old = rawWatch(`${base}&resourceVersion=${rvAfterA - 1}`);
  await waitFor("the 410 event and the end", () => old.ended);
  assert.equal(old.status, 200);
  assert.equal(old.events[0]?.type, "ERROR");
  assert.equal(old.events[0]?.object.code, 410);
  assert.equal(old.events[0]?.object.reason, "Expired");
  assert.match(old.events[0]?.object.message, /^too old resource version: /);

  // failNext also hits watches; the Status body says why.
  server.failNext(1, 503);
  const failed = await fetch(`${base}&resourceVersion=${server.resourceVersion}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(failed.status, 503);
  assert.equal(((await failed.json()) as { code: number }).code, 503);

  assert.equal(server.watchCount(), 4); // idle, replay, any, marks
  await server.stop();
  await waitFor("every stream closed", () => [idle, replay, any, marks].every((w) => w.ended));
  assert.equal(server.watchCount(), 0);
});

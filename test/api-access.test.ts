// How the sidecar reaches the API server without client-node in its process (src/kube/api-access.ts):
// the service account read natively (a temp folder stands in for /var/run/secrets/…), and a
// kubeconfig read by client-node in the loader process, both against the real fake API server
// over HTTPS; a 401 has the credentials read again.

import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { isKubeHaproxyError } from "../src/errors.ts";
import { ServiceAccountAccess, TOKEN_MAX_AGE_MS } from "../src/kube/in-cluster.ts";
import { loadKubeConfig } from "../src/kube/kubeconfig.ts";
import { apiGet, apiUrl, listEach } from "../src/kube/list.ts";
import { FakeApiServer } from "../src/sim/api-server.ts";
import { makeTestCertificates } from "../src/sim/certs.ts";
import { DEFAULT_TEST_TOKEN, writeKubeconfig } from "../src/sim/kubeconfig.ts";
import { makeService } from "../src/sim/objects.ts";
import { tempDir } from "./helpers.ts";

async function fakeApi(t: Parameters<typeof tempDir>[0], dir: string) {
  const tls = await makeTestCertificates(dir);
  const api = new FakeApiServer({ tls: { cert: tls.cert, key: tls.key }, token: DEFAULT_TEST_TOKEN });
  await api.start();
  t.after(() => api.stop());
  api.upsert("services", makeService("default", "web", [{ port: 80 }]));
  return { api, ca: tls.ca, port: new URL(api.url).port };
}

const names = async (access: Parameters<typeof listEach>[0]): Promise<string[]> => {
  const seen: string[] = [];
  await listEach(access, "/api/v1/services", undefined, (item) => seen.push((item as { metadata: { name: string } }).metadata.name));
  return seen;
};

/** The status of one GET of the Services. */
const status = async (access: Parameters<typeof apiGet>[0]): Promise<number | undefined> => {
  const { res } = await apiGet(access, apiUrl(access, "/api/v1/services", {}), 10_000);
  res.resume();
  return res.statusCode;
};

test("in-cluster: the server from KUBERNETES_SERVICE_HOST/PORT (IPv6 in brackets; client-node's plain-HTTP ports), the CA read at once", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "token"), "t\n");
  assert.equal(new ServiceAccountAccess({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "8001" }, { dir }).server, "http://[fd00::1]:8001");
  assert.throws(
    () => new ServiceAccountAccess({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, { dir }),
    (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && /^the in-cluster service account: not usable \(ENOENT: .*ca\.crt/.test(error.message),
  );
  assert.throws(
    () => new ServiceAccountAccess({ KUBERNETES_SERVICE_HOST: "10.96.0.1" }, { dir }),
    (error) => isKubeHaproxyError(error, "E_BAD_OPTION") && /KUBERNETES_SERVICE_HOST\/PORT make no valid server URL/.test(error.message),
  );
});

test("in-cluster: the token is read again when a minute old (a rotated token is picked up), and at once after a 401", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "ca.crt"), "unused: the agent reads it only to connect\n");
  await writeFile(join(dir, "token"), "first\n");
  let now = 1_000;
  const access = new ServiceAccountAccess({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, { dir, now: () => now });
  const bearer = async () => (await access.requestOptions()).headers.Authorization;
  assert.equal(await bearer(), "Bearer first");
  await writeFile(join(dir, "token"), "second\n");
  now += TOKEN_MAX_AGE_MS - 1;
  assert.equal(await bearer(), "Bearer first", "kept for a minute");
  now += 1;
  assert.equal(await bearer(), "Bearer second", "read again after a minute");
  await writeFile(join(dir, "token"), "third\n");
  access.refused();
  assert.equal(await bearer(), "Bearer third", "read again after a 401");
  await chmod(join(dir, "token"), 0o000);
  access.refused();
  if (process.getuid?.() !== 0) await assert.rejects(bearer(), /EACCES/); // root reads it anyway
  await chmod(join(dir, "token"), 0o600);
  assert.equal(await bearer(), "Bearer third", "a failed read is not kept");
});

test("in-cluster against the fake API server over HTTPS: loadKubeConfig picks it in a Pod; a stale token's 401 has it read again", async (t) => {
  const dir = await tempDir(t);
  const { ca, port } = await fakeApi(t, dir);
  const account = join(dir, "serviceaccount");
  await mkdir(account);
  await writeFile(join(account, "ca.crt"), ca);
  await writeFile(join(account, "token"), "expired-token");
  const env = { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port };
  const access = loadKubeConfig(undefined, env, { serviceAccountDir: account });
  assert.ok(access instanceof ServiceAccountAccess);
  assert.equal(access.server, `https://127.0.0.1:${port}`);
  assert.equal(await status(access), 401);
  await writeFile(join(account, "token"), `${DEFAULT_TEST_TOKEN}\n`); // the kubelet rotated it
  assert.deepEqual(await names(access), ["web"]);
});

test("kubeconfig: read by client-node in the loader process, HTTPS with the CA and a token, and plain HTTP with insecure-skip-tls-verify", async (t) => {
  const dir = await tempDir(t);
  const { api, ca } = await fakeApi(t, dir);
  const https = join(dir, "https.kubeconfig");
  await writeKubeconfig(https, { server: api.url, ca });
  const access = loadKubeConfig(https, {});
  assert.equal(access.server, api.url);
  assert.equal(loadKubeConfig(https, {}), access, "one access per kubeconfig in a process");
  assert.deepEqual(await names(access), ["web"]);

  const plain = new FakeApiServer({ token: DEFAULT_TEST_TOKEN });
  await plain.start();
  t.after(() => plain.stop());
  plain.upsert("services", makeService("default", "plain", [{ port: 80 }]));
  const http = join(dir, "http.kubeconfig");
  await writeKubeconfig(http, { server: plain.url });
  assert.deepEqual(await names(loadKubeConfig(http, {})), ["plain"]);
});

test("kubeconfig: a 401 has the loader run again (a token fixed in the file is used), and an exec plugin's credential works the same way", async (t) => {
  const dir = await tempDir(t);
  const { api, ca } = await fakeApi(t, dir);
  const path = join(dir, "kubeconfig");
  await writeKubeconfig(path, { server: api.url, ca, token: "wrong" });
  const access = loadKubeConfig(path, {});
  assert.equal(await status(access), 401);
  await writeKubeconfig(path, { server: api.url, ca });
  assert.deepEqual(await names(access), ["web"]);

  // An exec plugin (client-go's ExecCredential) printing the token held in a file.
  const tokenFile = join(dir, "exec-token");
  await writeFile(tokenFile, "wrong");
  const plugin = join(dir, "plugin.mjs");
  await writeFile(plugin, `import { readFileSync } from "node:fs";
process.stdout.write(JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token: readFileSync(${JSON.stringify(tokenFile)}, "utf8") } }));\n`);
  const exec = join(dir, "exec.kubeconfig");
  await writeFile(exec, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "c",
    clusters: [{ name: "c", cluster: { server: api.url, "certificate-authority-data": Buffer.from(ca).toString("base64") } }],
    users: [{ name: "u", user: { exec: { apiVersion: "client.authentication.k8s.io/v1", command: process.execPath, args: [plugin], interactiveMode: "Never" } } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
  }));
  const viaExec = loadKubeConfig(exec, {});
  assert.equal(await status(viaExec), 401);
  await writeFile(tokenFile, DEFAULT_TEST_TOKEN);
  assert.deepEqual(await names(viaExec), ["web"]);
});

test("kubeconfig: credentials that cannot be applied fail each request with client-node's reason, and are tried again", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "kubeconfig");
  const certFile = join(dir, "client.crt");
  await writeFile(path, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "c",
    clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1", "insecure-skip-tls-verify": true } }],
    users: [{ name: "u", user: { "client-certificate": certFile, "client-key": certFile } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
  }));
  const access = loadKubeConfig(path, {});
  await assert.rejects(access.requestOptions(), (error) => isKubeHaproxyError(error, "E_API_REQUEST") && /ENOENT: no such file or directory, open '.*client\.crt'/.test(error.message));
  await writeFile(certFile, "not checked before a connection\n");
  const { agent } = await access.requestOptions();
  assert.equal(String((agent as unknown as { options: { cert?: Buffer } }).options.cert), "not checked before a connection\n");
});

test("kubeconfig with a proxy-url: client-node's proxy agent, in the sidecar's process (it cannot cross processes), reaches the API through the proxy", { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const { api, ca } = await fakeApi(t, dir);
  // An HTTP CONNECT proxy to loopback, recording where it was asked to go.
  const tunnels: string[] = [];
  const sockets = new Set<{ destroy(): void }>();
  const proxy = createServer().on("connect", (req, client) => {
    tunnels.push(req.url ?? "");
    const [host, port] = (req.url ?? "").split(":");
    sockets.add(client);
    const upstream = connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.pipe(client).pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy(); // the agent keeps its tunnel open
    return new Promise((resolve) => proxy.close(resolve));
  });
  const path = join(dir, "kubeconfig");
  await writeFile(path, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "c",
    clusters: [{ name: "c", cluster: { server: api.url, "certificate-authority-data": Buffer.from(ca).toString("base64"), "proxy-url": `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` } }],
    users: [{ name: "u", user: { token: DEFAULT_TEST_TOKEN } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
  }));
  const access = loadKubeConfig(path, {});
  assert.deepEqual(await names(access), ["web"]);
  assert.deepEqual(tunnels, [new URL(api.url).host]);
});

// `kube-haproxy run --proxy-mode local --interface <name>` as a process inside the node's network
// namespace (the interface is looked up where the sidecar runs): captured connections are DNATed
// to that interface's address instead of REDIRECTed, so a pod on an unnumbered veth (Calico
// style, test/netns-node.ts's "bare"), whose connections REDIRECT drops, reaches the ClusterIP.
// The fake API server lives in this process, in the root namespace: a TCP-to-Unix-socket bridge
// on the same loopback port inside the node namespace carries the sidecar's (TLS) connection to it.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { CLI, waitFor } from "./helpers.ts";
import { LOCAL_TOOLS, service, slice, startLocalNode, type LocalNode } from "./local-node.ts";
import { bodies, netnsTestOptions } from "./netns.ts";
import { SERVICE_CIDRS, STANDIN } from "./netns-node.ts";

/** Makes 127.0.0.1:<the API server's port> inside the node namespace lead to the API server. */
async function bridgeApi(t: TestContext, local: LocalNode, dir: string): Promise<void> {
  const { port } = new URL(local.api.url);
  const path = join(dir, "api.sock");
  const open = new Set<{ destroy(): void }>();
  const server = createServer((socket) => {
    const upstream = connect({ host: "127.0.0.1", port: Number(port) });
    open.add(socket).add(upstream);
    const close = (): void => void (socket.destroy(), upstream.destroy());
    socket.on("error", close).pipe(upstream).on("error", close).pipe(socket);
  });
  // close() waits for open connections: end them first (the sidecar may still hold one).
  t.after(() => new Promise<void>((resolve) => {
    for (const socket of open) socket.destroy();
    server.close(() => resolve());
  }));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const code = `const net=require("node:net");net.createServer((s)=>{const u=net.connect(${JSON.stringify(path)});const c=()=>{s.destroy();u.destroy()};s.on("error",c).pipe(u).on("error",c).pipe(s)}).listen(${port},"127.0.0.1",()=>console.log("ready"))`;
  const bridge = spawn("ip", ["netns", "exec", local.node.name, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(async () => void bridge.kill("SIGKILL"));
  await new Promise<void>((resolve, reject) => {
    bridge.stdout.once("data", () => resolve());
    bridge.once("exit", (code) => reject(new Error(`the API bridge exited (${code})`)));
  });
}

test("run --proxy-mode local --interface: DNAT to the interface's address serves a pod on an unnumbered veth", netnsTestOptions(LOCAL_TOOLS), async (t: TestContext) => {
  const local = await startLocalNode(t, {}, (api) => {
    api.upsert("services", service("web", STANDIN.web.ip, [80]));
    api.upsert("endpointslices", slice("web", [80]));
  });
  const { bare, client } = local.agents;
  assert.equal((await bare.http(STANDIN.web.ip, 80, 1_500)).kind, "timeout", "REDIRECT (no --interface) drops the unnumbered pod's connection");
  await local.sidecar.stop(); // the CLI takes over below

  const dir = join(local.options.config, "..");
  await bridgeApi(t, local, dir);
  const o = local.options;
  const args = [
    CLI, "run", "--kubeconfig", o.kubeconfig!, "--config", o.config, "--socket", o.socket, "--master-socket", o.masterSocket,
    "--proxy-mode", "local", "--service-cidr", SERVICE_CIDRS.join(","), "--capture-port", String(o.capturePort), "--hostname-override", o.nodeName,
    "--interface", "v-outside", "--bind-address", o.bindAddress, "--stats-bind-address", "", "--metrics-bind-address", "", "--healthz-bind-address", "",
    "--slots", String(o.slots), "--haproxy-binary", o.haproxyBinary, "--min-reload-period", "0s",
  ];
  let stderr = "";
  const sidecar = spawn("ip", ["netns", "exec", local.node.name, process.execPath, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  sidecar.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  t.after(async () => {
    if (sidecar.exitCode === null && sidecar.signalCode === null) sidecar.kill("SIGKILL");
  });

  await waitFor(async () => / dnat (ip )?to 198\.18\.9\.1/.test(await local.node.exec(["nft", "list", "table", "inet", "kube-haproxy"])), 15_000, `the DNAT rule (sidecar: ${stderr.slice(-500)})`);
  await waitFor(async () => (await bare.http(STANDIN.web.ip, 80, 1_000)).kind === "response", 15_000, "the unnumbered pod served");
  assert.deepEqual(await bodies(bare, STANDIN.web.ip, 80), new Set(["pod1", "pod2"]));
  assert.deepEqual(await bodies(client, STANDIN.web.ip, 80), new Set(["pod1", "pod2"]), "a numbered pod too");
  assert.equal(sidecar.exitCode, null, stderr);
});

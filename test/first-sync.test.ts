// The data plane's first sync against a real HAProxy started from the configuration rendered
// from the same lists (issue 14): what is already right costs no command, what is wrong is
// repaired. Every line the data plane writes is recorded on its way to the real socket.

import assert from "node:assert/strict";
import { test } from "node:test";
import { layoutBackend } from "../src/dataplane/planner.ts";
import type { Transport } from "../src/dataplane/executor.ts";
import { Dataplane } from "../src/dataplane/dataplane.ts";
import { setServerAddr, setServerState, showServersState, type RuntimeCommand } from "../src/haproxy/commands.ts";
import { renderConfig } from "../src/haproxy/render.ts";
import { RuntimeClient } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { silentLogger } from "../src/log.ts";
import { runtimeSocketIn, startHaproxy } from "../src/sim/haproxy.ts";
import { freePort, spread, startPods } from "../src/sim/pods.ts";
import { deferrer, makeBackend, ready, tempDir } from "./helpers.ts";

/** The real runtime client, with every command line it is given kept in `lines`. */
function recording(client: RuntimeClient): { transport: Transport; lines: string[] } {
  const lines: string[] = [];
  const keep = (commands: readonly RuntimeCommand[]): void => void lines.push(...commands.map((command) => command.line));
  const transport: Transport = {
    get connected() {
      return client.connected;
    },
    start: () => client.start(),
    close: () => client.close(),
    reconnect: () => client.reconnect(),
    executeAll: (commands) => (keep(commands), client.executeAll(commands)),
    execute: (command) => (keep([command]), client.execute(command)),
    on: (event: "connect" | "disconnect", listener: (...args: never[]) => void) => client.on(event, listener as () => void),
    off: (event: "connect" | "disconnect", listener: (...args: never[]) => void) => client.off(event, listener as () => void),
  };
  return { transport, lines };
}

async function setup(t: Parameters<typeof tempDir>[0]) {
  const defer = deferrer(t);
  const dir = await tempDir({ after: defer });
  const pods = await startPods(3, { base: 1 + Math.floor(Math.random() * 200) });
  defer(() => Promise.all(pods.map((pod) => pod.stop())));
  const port = await freePort();
  const backend = makeBackend("default:web:80", pods.map((pod) => ready(pod.ip, pod.port)), { binds: [{ address: "127.0.0.1", port }], minSlots: 5 });
  // What `kube-haproxy render` writes from the lists: the endpoints already in their slots.
  const runtimeSocket = runtimeSocketIn(dir);
  const haproxy = await startHaproxy({ dir, config: renderConfig([layoutBackend(backend)], { runtimeSocket }) });
  defer(() => haproxy.stop());
  const client = new RuntimeClient({ address: runtimeSocket, reconnectMinMs: 20, reconnectMaxMs: 200 });
  defer(() => client.close());
  const { transport, lines } = recording(client);
  const dataplane = new Dataplane({ transport, log: silentLogger, retryMinMs: 20, retryMaxMs: 200, configSyncPeriodMs: 0 });
  defer(() => dataplane.stop());
  const sync = async (): Promise<void> => {
    dataplane.start();
    dataplane.setBackend(backend);
    dataplane.beginSync();
    await dataplane.whenSynced();
  };
  const state = async () => parseServersState(await client.execute(showServersState(backend.name))).map((r) => `${r.server} ${r.address}:${r.port} ${stateOf(r)}`);
  const serverCommands = (): string[] => lines.filter((line) => !line.startsWith("show "));
  return { backend, pods, client, lines, serverCommands, sync, state, url: `http://127.0.0.1:${port}/` };
}

test("first sync against an HAProxy already in the desired state: no server command at all (issue 14)", async (t) => {
  const { pods, serverCommands, lines, sync, url } = await setup(t);
  await sync();
  assert.deepEqual(serverCommands(), [], "every slot was right");
  assert.equal(lines.filter((line) => line === "show servers state").length, 1, "one read of HAProxy's state");
  const served = new Set<string>();
  for (let i = 0; i < 100 && served.size < pods.length; i++) for (const who of (await spread(url, 1)).keys()) served.add(who);
  assert.equal(served.size, pods.length, "every endpoint serves");
});

test("first sync: slots changed behind the rendered configuration are repaired, with only the commands they need (issue 14)", async (t) => {
  const { backend, pods, client, serverCommands, sync, state } = await setup(t);
  await client.waitConnected();
  const rendered = await state();
  // s2 taken out of service, and an empty slot (s5) put in service at another address.
  await client.execute(setServerState(backend.name, "s2", "maint"));
  await client.execute(setServerAddr(backend.name, "s5", "127.0.0.1", pods[0]!.port));
  await client.execute(setServerState(backend.name, "s5", "ready"));
  assert.notDeepEqual(await state(), rendered);
  await sync();
  assert.deepEqual(serverCommands().sort(), [`set server ${backend.name}/s2 state ready`, `set server ${backend.name}/s5 state maint`]);
  const after = await state();
  assert.deepEqual(after.slice(0, 4), rendered.slice(0, 4), "the endpoints back in their slots, in service");
  assert.match(after[4]!, / maint$/, "the stray slot out of service (its address left as it was: one command, not two)");
});

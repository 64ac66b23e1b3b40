// The runtime client's framing and flow control: against a real HAProxy first; then against
// peers that misbehave on purpose (no HAProxy can be made to), to prove the client's own limits.

import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isKubeHaproxyError } from "../src/errors.ts";
import { setServerAddr, setServerState, showServersState, type RuntimeCommand } from "../src/haproxy/commands.ts";
import { renderConfig } from "../src/haproxy/render.ts";
import { PROMPT } from "../src/haproxy/reply.ts";
import { RuntimeClient, type RuntimeClientOptions } from "../src/haproxy/runtime-client.ts";
import { parseServersState, stateOf } from "../src/haproxy/servers-state.ts";
import { runtimeSocketIn, startHaproxy, type HaproxyProcess } from "../src/sim/haproxy.ts";
import { makeBackend, tempDir, waitFor } from "./helpers.ts";

type Context = Parameters<typeof tempDir>[0];

const BACKEND = "default:web:80";

/** A real HAProxy with one `slots`-slot backend; `global` lines are added to its global section. */
async function haproxyWith(t: Context, slots: number, global: string[] = []): Promise<HaproxyProcess> {
  const dir = await tempDir(t);
  const config = renderConfig([{ backend: makeBackend(BACKEND), slots, filled: new Map() }], { runtimeSocket: runtimeSocketIn(dir) });
  const haproxy = await startHaproxy({ dir, config: config.replace(/^global\n/m, `global\n${global.map((line) => `  ${line}\n`).join("")}`) });
  t.after(() => haproxy.stop());
  return haproxy;
}

async function connected(t: Context, options: RuntimeClientOptions): Promise<RuntimeClient> {
  const client = new RuntimeClient({ reconnectMinMs: 20, reconnectMaxMs: 200, ...options });
  t.after(() => client.close());
  await client.waitConnected();
  return client;
}

const showEnv = (name: string): RuntimeCommand => ({ line: `show env ${name}`, expect: "any" });

describe("runtime client against HAProxy", () => {
  test("a batch eight times tune.bufsize, pipelined: every command gets its own reply", async (t) => {
    const haproxy = await haproxyWith(t, 1000);
    const client = await connected(t, { address: haproxy.runtimeSocket });
    const commands: RuntimeCommand[] = [];
    for (let slot = 1; slot <= 1000; slot++) {
      commands.push(setServerAddr(BACKEND, `s${slot}`, `127.1.${slot >> 8}.${slot & 255}`, 8000 + slot));
      commands.push(setServerState(BACKEND, `s${slot}`, "ready"), setServerState(BACKEND, `s${slot}`, slot % 2 ? "drain" : "ready"));
    }
    const bytes = commands.reduce((sum, command) => sum + command.line.length + 1, 0);
    assert.ok(bytes > 8 * 16_384, `${bytes} bytes`);
    const results = await client.executeAll(commands);
    assert.deepEqual(results.filter((result) => !result.ok), []);
    assert.match(results[0]!.ok ? results[0]!.reply : "", /changed from '0\.0\.0\.0' to '127\.1\.0\.1'/);
    // From 2.9 the address is applied by a background task: wait for it.
    const records = await waitFor(async () => {
      const state = parseServersState(await client.execute(showServersState(BACKEND)));
      return state.every((record) => record.address !== "0.0.0.0") ? state : undefined;
    }, 5_000, "every address applied");
    assert.equal(records.length, 1000);
    for (const record of records) {
      const slot = Number(record.server.slice(1));
      assert.equal(`${record.address}:${record.port}`, `127.1.${slot >> 8}.${slot & 255}:${8000 + slot}`);
      assert.equal(stateOf(record), slot % 2 ? "drain" : "ready", record.server);
    }
  });

  test('a reply holding "\\n> " stays one reply, and the commands around it keep theirs', async (t) => {
    const haproxy = await haproxyWith(t, 4, ['setenv KH_FRAMING "x\\n> y\\n> "']);
    const client = await connected(t, { address: haproxy.runtimeSocket });
    const results = await client.executeAll([
      setServerState(BACKEND, "s1", "ready"),
      showEnv("KH_FRAMING"),
      setServerState(BACKEND, "s2", "drain"),
      showEnv("KH_FRAMING"),
      setServerState(BACKEND, "s9", "ready"),
    ]);
    assert.deepEqual(results.map((result) => (result.ok ? result.reply : `error: ${result.error.reply}`)), [
      "",
      "KH_FRAMING=x\n> y\n> ",
      "",
      "KH_FRAMING=x\n> y\n> ",
      "error: No such server.",
    ]);
  });

  test("an open-ended command sees every command before it and none after it", async (t) => {
    const haproxy = await haproxyWith(t, 2);
    const client = await connected(t, { address: haproxy.runtimeSocket });
    const show = showServersState(BACKEND);
    const results = await client.executeAll([
      setServerState(BACKEND, "s1", "ready"),
      show,
      setServerState(BACKEND, "s1", "drain"),
      setServerState(BACKEND, "s2", "ready"),
      show,
      setServerState(BACKEND, "s1", "maint"),
    ]);
    const states = (i: number): string[] => parseServersState(results[i]!.ok ? results[i]!.reply : "").map(stateOf);
    assert.deepEqual(states(1), ["ready", "maint"]);
    assert.deepEqual(states(4), ["drain", "ready"]);
    assert.deepEqual(parseServersState(await client.execute(show)).map(stateOf), ["maint", "ready"]);
  });

  test("the master CLI is not the runtime API: no connection, and the error says why", async (t) => {
    const haproxy = await haproxyWith(t, 1);
    const client = new RuntimeClient({ address: haproxy.masterSocket, reconnectMinMs: 50, reconnectMaxMs: 50 });
    t.after(() => client.close());
    let connects = 0;
    client.on("connect", () => connects++);
    await assert.rejects(client.waitConnected(500), (error) => {
      assert.ok(isKubeHaproxyError(error, "E_NOT_CONNECTED"));
      assert.match(error.message, /is not HAProxy's runtime API: it answered `prompt` with "master> .*this is HAProxy's master CLI/);
      return true;
    });
    assert.equal(connects, 0);
  });
});

/** A Unix socket peer in a temp folder; `onConnection` plays the other side. */
async function peer(t: Context, onConnection: (socket: Socket) => void): Promise<string> {
  const path = join(await tempDir(t), "peer.sock");
  const server: Server = createServer(onConnection);
  const sockets = new Set<Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // The client hanging up while a peer still writes (EPIPE) is what these peers provoke.
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return path;
}

/** Answers `prompt`, then hands every later chunk to `onData`. */
function afterPrompt(onData: (socket: Socket, chunk: string) => void): (socket: Socket) => void {
  return (socket) => {
    let prompted = false;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      if (!prompted && chunk.startsWith("prompt\n")) {
        prompted = true;
        socket.write(PROMPT);
        chunk = chunk.slice("prompt\n".length);
      }
      if (chunk) onData(socket, chunk);
    });
  };
}

describe("runtime client against peers that misbehave", () => {
  const state = setServerState(BACKEND, "s1", "ready");

  test("a peer that sends bytes but never completes a reply times out", async (t) => {
    const path = await peer(t, afterPrompt((socket) => {
      const drip = setInterval(() => socket.write("."), 20);
      socket.on("close", () => clearInterval(drip));
    }));
    const client = await connected(t, { address: path, commandTimeoutMs: 300 });
    const started = performance.now();
    await assert.rejects(client.execute(state), (error) => isKubeHaproxyError(error, "E_COMMAND_TIMEOUT"));
    assert.ok(performance.now() - started >= 290, "bytes without a reply are no progress");
  });

  test("a reply longer than maxReplyChars fails the connection, and nothing more is held", async (t) => {
    const path = await peer(t, afterPrompt((socket) => void socket.write("x".repeat(64 * 1024))));
    const client = await connected(t, { address: path, maxReplyChars: 32 * 1024 });
    const disconnects: string[] = [];
    client.on("disconnect", (error) => disconnects.push(String((error as { code?: string }).code)));
    await assert.rejects(client.execute(state), (error) => isKubeHaproxyError(error, "E_REPLY_TOO_LARGE"));
    assert.deepEqual(disconnects, ["E_REPLY_TOO_LARGE"]);
  });

  test("bytes in flight stay under tune.bufsize: a peer that stalls like HAProxy 3.2.0-3.2.3 still answers everything", async (t) => {
    // 3.2.0–3.2.3 stop answering for good once pipelined input fills the CLI's 16 KB buffer
    // (upstream fix c6c2ef1f1). This peer does the same with what it has read and not answered.
    let stalled = false;
    let most = 0;
    let unanswered = "";
    const path = await peer(t, afterPrompt((socket, chunk) => {
      if (stalled) return;
      unanswered += chunk;
      most = Math.max(most, unanswered.length);
      if (unanswered.length >= 16_384) {
        stalled = true;
        return;
      }
      const lines = unanswered.split("\n");
      unanswered = lines.pop()!;
      for (const line of lines) socket.write(line.endsWith(" state ready") ? PROMPT : `?\n${PROMPT}`);
    }));
    const client = await connected(t, { address: path, commandTimeoutMs: 2_000 });
    const commands = Array.from({ length: 4000 }, (_, i) => setServerState(BACKEND, `s${i + 1}`, "ready"));
    const results = await client.executeAll(commands);
    assert.equal(stalled, false, `the peer received ${most} bytes at once`);
    assert.deepEqual(results.filter((result) => !result.ok), []);
    assert.ok(most <= 8_192, `at most half of tune.bufsize in flight, saw ${most}`);
  });
});

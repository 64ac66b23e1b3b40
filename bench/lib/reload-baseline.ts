// The "reload per change" baseline: what configuration-file controllers (and the original
// kube-haproxy) do for every endpoint change. Render the whole configuration with the new
// endpoints written into their slots, write it, `reload` on the master CLI, and wait until the
// reload is complete:
//
//   render ─► write (tmp + rename) ─► master: reload ─► poll `show proc` until the master's
//   reload counter grew and a worker with reloads=0 exists ─► poll the runtime socket until
//   `show info` is answered by that new worker (its Pid)          = one latency sample
//
// The master socket refuses connections (ECONNREFUSED, or ENOENT while it is re-created) for a
// moment while the master re-executes itself: every master call retries on those.

import { rename, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { parseSocketAddress } from "../../src/haproxy/address.ts";
import { masterCommand, parseShowProc } from "../../src/haproxy/master.ts";
import { renderConfig, type RenderOptions, type RenderedBackend } from "../../src/haproxy/render.ts";
import type { Backend, Endpoint } from "../../src/model.ts";

/** Where the running HAProxy reads its configuration and listens (a HaproxyProcess fits). */
export interface ReloadTarget {
  readonly configPath: string;
  readonly masterSocket: string;
  readonly runtimeSocket: string;
}

export interface ReloadBaselineOptions {
  readonly haproxy: ReloadTarget;
  /** As the configuration was first rendered (same runtime socket). */
  readonly render: RenderOptions;
  /** One reload that is not complete after this long is an error. @default 30000 */
  readonly timeoutMs?: number;
  /** Pause between two polls of the master or runtime socket. @default 2 */
  readonly pollMs?: number;
}

/** A backend rendered with `endpoints` written into slots 1, 2, … in order. */
export function filledBackend(backend: Backend, slots: number, endpoints: readonly Endpoint[]): RenderedBackend {
  if (endpoints.length > slots) throw new RangeError(`${backend.name}: ${endpoints.length} endpoints do not fit in ${slots} slots`);
  return { backend, slots, filled: new Map(endpoints.map((endpoint, i) => [i + 1, endpoint])) };
}

/**
 * Applies each change (the complete desired configuration after that change) by a reload and
 * returns one latency sample in ms per change: from rendering to the new worker answering.
 */
export async function reloadPerChange(changes: Iterable<readonly RenderedBackend[]>, options: ReloadBaselineOptions): Promise<number[]> {
  const samples: number[] = [];
  for (const backends of changes) samples.push(await reloadOnce(backends, options));
  return samples;
}

/** One change applied by a reload; resolves with its latency in ms. */
export async function reloadOnce(backends: readonly RenderedBackend[], options: ReloadBaselineOptions): Promise<number> {
  const { haproxy } = options;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const pollMs = options.pollMs ?? 2;
  const before = masterOf(await retryMaster(() => masterCommand(haproxy.masterSocket, "show proc"), timeoutMs));

  const started = performance.now();
  const deadline = started + timeoutMs;
  const text = renderConfig(backends, options.render);
  const tmp = `${haproxy.configPath}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, haproxy.configPath);
  try {
    await retryMaster(() => masterCommand(haproxy.masterSocket, "reload"), timeoutMs);
  } catch (error) {
    // The master may re-execute before closing our connection: the reload was still received.
    if (!isCode(error, "ECONNRESET", "EPIPE")) throw error;
  }

  let worker: number | undefined;
  while (worker === undefined) {
    if (performance.now() > deadline) throw new Error(`reload not complete after ${timeoutMs} ms (the master's reload count stayed at ${before.reloads})`);
    const procs = await tryMaster(() => masterCommand(haproxy.masterSocket, "show proc"));
    if (procs !== undefined) {
      const list = parseShowProc(procs);
      const master = list.find((p) => p.role === "master");
      if (master && master.reloads > before.reloads) worker = list.find((p) => p.role === "worker" && p.reloads === 0)?.pid;
    }
    if (worker === undefined) await sleep(pollMs);
  }
  for (;;) {
    if ((await runtimePid(haproxy.runtimeSocket)) === worker) return performance.now() - started;
    if (performance.now() > deadline) throw new Error(`new worker ${worker} did not answer on ${haproxy.runtimeSocket} within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

function masterOf(showProc: string): { pid: number; reloads: number } {
  const master = parseShowProc(showProc).find((p) => p.role === "master");
  if (!master) throw new Error(`master CLI \`show proc\` lists no master:\n${showProc}`);
  return master;
}

const REFUSED = ["ECONNREFUSED", "ENOENT"] as const;

/** Retries `call` while the master socket refuses connections, up to `timeoutMs`. */
async function retryMaster<T>(call: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!isCode(error, ...REFUSED) || performance.now() > deadline) throw error;
      await sleep(2);
    }
  }
}

/** `call`'s answer, or undefined while the master is unreachable or drops the connection. */
async function tryMaster(call: () => Promise<string>): Promise<string | undefined> {
  try {
    return await call();
  } catch (error) {
    if (isCode(error, ...REFUSED, "ECONNRESET", "EPIPE")) return undefined;
    throw error;
  }
}

/** The Pid of the process answering `show info` on the runtime socket, or undefined. */
function runtimePid(address: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect(parseSocketAddress(address));
    let out = "";
    socket.setEncoding("utf8");
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on("connect", () => socket.write("show info\n"));
    socket.on("data", (chunk: string) => (out += chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      const pid = /^Pid: (\d+)$/m.exec(out);
      resolve(pid ? Number(pid[1]) : undefined);
    });
  });
}

function isCode(error: unknown, ...codes: string[]): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && codes.includes(code);
}

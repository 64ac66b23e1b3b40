// The reload path's I/O. The data plane decides when (a reload is one more kind of flush in its
// queue) and renders the text from its own slot assignment; this file does the rest:
//
//   text ─► temp file ─► haproxy -c ─► refused: E_CONFIG_INVALID, the file on disk unchanged
//                                  └─► rename into place ─► master CLI `reload`
//                                      ─► `show proc`: a new worker (its pid), or `[failed: N]` grew
//   switchToWorker: reconnect the runtime client until `show info` answers from that worker
//
// Why it is safe: the new worker takes the listening sockets over (expose-fd listeners), the
// old one finishes its connections (soft stop), and every endpoint is written into the new file.

import { KubeHaproxyError } from "../errors.ts";
import { parseInfoPid, showInfo } from "../haproxy/commands.ts";
import { checkConfigFile } from "../haproxy/config-check.ts";
import { writeConfigAtomically } from "../haproxy/config-file.ts";
import { masterCommand, parseShowProc, type ProcessInfo } from "../haproxy/master.ts";
import type { Transport } from "./executor.ts";
import { systemClock, type Clock } from "./runner.ts";

/** Loads a configuration into HAProxy; resolves with the new worker's pid. Fakes stand in for it in tests. */
export interface Reloader {
  /** Throws E_CONFIG_INVALID (not loaded, file unchanged) or E_RELOAD_FAILED. */
  reload(config: string): Promise<number>;
}

export interface MasterReloaderOptions {
  readonly configPath: string;
  readonly masterSocket: string;
  /** @default "haproxy" */
  readonly haproxyBinary?: string;
  /** How long a new worker may take to appear. @default 30000 */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

export class MasterReloader implements Reloader {
  readonly #options: MasterReloaderOptions;

  constructor(options: MasterReloaderOptions) {
    this.#options = options;
  }

  async reload(config: string): Promise<number> {
    const { configPath, haproxyBinary = "haproxy" } = this.#options;
    await writeConfigAtomically(configPath, config, async (candidate) => {
      const check = await checkConfigFile(candidate, haproxyBinary);
      if (check.ok) return;
      // An unchecked configuration is never loaded: without the binary we cannot know.
      const why = check.ran ? `haproxy -c refused it:\n${check.output}` : `${haproxyBinary} -c could not run (${check.output})`;
      throw new KubeHaproxyError("E_CONFIG_INVALID", `configuration not loaded: ${why}`, { reply: check.output });
    });
    return await this.#reloadMaster();
  }

  /** Master CLI `reload`, then `show proc` until a worker that was not there before runs. */
  async #reloadMaster(): Promise<number> {
    const { masterSocket, timeoutMs = 30_000 } = this.#options;
    const clock = this.#options.clock ?? systemClock;
    const before = await processes(masterSocket);
    const old = new Set(before.filter((p) => p.role === "worker").map((p) => p.pid));
    const failedBefore = before.find((p) => p.role === "master")?.failed ?? 0;
    const reply = await masterCommand(masterSocket, "reload");
    // 2.8+ answer "Success=0" when the new configuration failed to load; 2.6 answers nothing.
    if (/Success=0/.test(reply)) throw new KubeHaproxyError("E_RELOAD_FAILED", `the master refused the reload: ${firstLines(reply)}`, { reply });
    const deadline = clock.now() + timeoutMs;
    while (clock.now() < deadline) {
      await sleep(clock, 20);
      const now = await processes(masterSocket).catch(() => undefined); // refused while the master re-executes
      const worker = now?.find((p) => p.role === "worker" && p.reloads === 0 && !old.has(p.pid));
      if (worker) return worker.pid;
      if ((now?.find((p) => p.role === "master")?.failed ?? 0) > failedBefore) {
        throw new KubeHaproxyError("E_RELOAD_FAILED", "the new HAProxy worker failed to start (master: show proc [failed]); the old one keeps running");
      }
    }
    throw new KubeHaproxyError("E_RELOAD_FAILED", `no new HAProxy worker ${timeoutMs} ms after the reload`);
  }
}

/**
 * Points the runtime connection at `worker`: reconnects until `show info` answers with its pid.
 * Right after a reload a new connection may still be accepted by the old worker (both hold the
 * listening socket for a moment); commands sent there would meet "Proxy is disabled".
 */
export async function switchToWorker(transport: Transport, worker: number, clock: Clock, timeoutMs = 5_000): Promise<void> {
  const deadline = clock.now() + timeoutMs;
  while (clock.now() < deadline) {
    transport.reconnect();
    if (await connected(transport, clock, deadline - clock.now())) {
      const info = await transport.execute(showInfo()).catch(() => "");
      if (parseInfoPid(info) === worker) return;
    }
    await sleep(clock, 20);
  }
  throw new KubeHaproxyError("E_RELOAD_FAILED", `the runtime socket did not answer from the new worker ${worker} within ${timeoutMs} ms`);
}

/** Resolves true once the transport is connected, false after `ms`. */
function connected(transport: Transport, clock: Clock, ms: number): Promise<boolean> {
  if (transport.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (value: boolean): void => {
      cancel();
      transport.off("connect", onConnect);
      resolve(value);
    };
    const onConnect = (): void => done(true);
    const cancel = clock.schedule(() => done(false), Math.max(0, ms));
    transport.on("connect", onConnect);
  });
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.schedule(resolve, ms));
}

async function processes(masterSocket: string): Promise<ProcessInfo[]> {
  return parseShowProc(await masterCommand(masterSocket, "show proc"));
}

function firstLines(text: string): string {
  return text.trim().split("\n").slice(0, 5).join(" | ");
}

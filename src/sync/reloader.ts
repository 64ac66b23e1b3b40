// Structural changes (a Service port added or removed, a new bind, algorithm, mode or affinity)
// are the only thing that reloads HAProxy. One reload at a time, at most one per
// --min-reload-period, and requests that arrive meanwhile are merged into the next one.
//
//   request() ─► wait for the period ─► render ─► same structure as the file? done
//                                         └─► haproxy -c on a temp file ─► refused: keep the old
//                                             one running, log HAProxy's words, wait for a new state
//                                         └─► rename into place ─► master CLI `reload`
//                                             ─► wait for the new worker in `show proc`
//                                             ─► reconnect the runtime client ─► full sync repairs
//                                                whatever changed while we reloaded
//
// Why it is safe: the new worker takes the listening sockets over (expose-fd listeners), the old
// one finishes its connections (soft stop), and every endpoint is written into the new file.

import { EventEmitter } from "node:events";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { checkConfigFile } from "../haproxy/config-check.ts";
import { masterCommand, parseShowProc, type ProcessInfo } from "../haproxy/master.ts";
import { readStructureHash } from "../haproxy/render.ts";
import type { Logger } from "../log.ts";

export interface ReloaderOptions {
  readonly configPath: string;
  readonly masterSocket: string;
  /** The configuration for the desired state right now, with every endpoint written in. */
  readonly render: () => string;
  /** Called once the new worker runs: reconnect the runtime client and repair. */
  readonly afterReload: () => void;
  readonly log: Logger;
  /** @default 2000 */
  readonly minReloadPeriodMs?: number;
  /** @default "haproxy" */
  readonly haproxyBinary?: string;
  /** @default 30000 */
  readonly reloadTimeoutMs?: number;
}

type Events = {
  /** `forced`: for slots (the structure was the same), else for a structural change. */
  reloaded: [reason: string, durationMs: number, forced: boolean];
  /** `haproxy -c` refused the configuration; the running one stays. */
  rejected: [output: string];
  /** The reload itself did not produce a new worker. */
  failed: [message: string];
};

export class Reloader extends EventEmitter<Events> {
  readonly #options: ReloaderOptions;
  readonly #minPeriodMs: number;
  // Reasons waiting for the next reload; a forced one reloads even with the same structure.
  #reasons: string[] = [];
  #force = false;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastReload = -Infinity;
  // The last configuration HAProxy refused: not tried again until the desired state changes.
  #rejected: string | undefined;
  #stopped = false;

  constructor(options: ReloaderOptions) {
    super();
    this.#options = options;
    this.#minPeriodMs = options.minReloadPeriodMs ?? 2_000;
  }

  /**
   * Asks for a reload. Without `force`, it happens only when the desired structure differs
   * from the configuration file's (so asking is cheap and always safe).
   */
  request(reason: string, force = false): void {
    if (this.#stopped) return;
    this.#reasons.push(reason);
    this.#force ||= force;
    if (this.#timer || this.#running) return; // the next round picks it up
    const wait = Math.max(0, this.#lastReload + this.#minPeriodMs - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#round()
        .catch((error: unknown) => {
          // A file that cannot be written, a master that is gone: log, count, wait for the next request.
          this.#options.log.error(`reload round failed: ${(error as Error).message}`);
          this.#force = true;
          this.emit("failed", (error as Error).message);
        })
        .finally(() => {
          this.#running = undefined;
          if (this.#reasons.length > 0) this.request(this.#reasons.pop()!);
        });
    }, wait);
  }

  /** Resolves when no reload is waiting or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#timer || this.#running) {
      if (this.#running) await this.#running;
      else await sleep(10);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async #round(): Promise<void> {
    const reasons = this.#reasons.splice(0);
    const force = this.#force;
    this.#force = false;
    const { configPath, log } = this.#options;
    const text = this.#options.render();
    const current = await readFile(configPath, "utf8").catch(() => "");
    if (!force && readStructureHash(text) === readStructureHash(current)) return;
    if (text === this.#rejected) {
      log.debug("the desired configuration was refused before and has not changed; not reloading");
      return;
    }
    const started = performance.now();
    const candidate = `${configPath}.next`;
    await writeFile(candidate, text, { mode: 0o640 });
    const check = await checkConfigFile(candidate, this.#options.haproxyBinary);
    if (!check.ok && !/ENOENT/.test(check.output)) {
      await rm(candidate, { force: true });
      this.#rejected = text;
      log.error(`HAProxy refused the new configuration; keeping the running one. haproxy -c said:\n${check.output}`);
      this.emit("rejected", check.output);
      return;
    }
    if (!check.ok) log.warn(`cannot validate the configuration (no ${this.#options.haproxyBinary ?? "haproxy"} binary here); reloading unchecked`);
    this.#rejected = undefined;
    await rename(candidate, configPath);
    const reason = reasons.join("; ");
    try {
      await this.#reload();
      this.#lastReload = performance.now();
      const durationMs = performance.now() - started;
      log.info(`reloaded HAProxy in ${Math.round(durationMs)} ms: ${reason}`);
      this.emit("reloaded", reason, durationMs, force);
      this.#options.afterReload();
    } catch (error) {
      this.#lastReload = performance.now();
      // The file now differs from what runs: the next request must not be skipped as "same".
      this.#force = true;
      log.error(`HAProxy reload failed: ${(error as Error).message}`);
      this.emit("failed", (error as Error).message);
    }
  }

  /** Master CLI `reload`, then wait until `show proc` lists a worker that was not there before. */
  async #reload(): Promise<void> {
    const { masterSocket } = this.#options;
    const before = await this.#processes();
    const old = new Set(before.filter((p) => p.role === "worker").map((p) => p.pid));
    const reply = await masterCommand(masterSocket, "reload");
    // 2.8+ answer "Success=0" when the new configuration failed to load; 2.6 answers nothing.
    if (/Success=0/.test(reply)) throw new Error(`master refused the reload: ${reply.trim().split("\n").slice(0, 5).join(" | ")}`);
    const deadline = performance.now() + (this.#options.reloadTimeoutMs ?? 30_000);
    while (performance.now() < deadline) {
      await sleep(20);
      const now = await this.#processes().catch(() => undefined); // refused while the master re-executes
      if (now?.some((p) => p.role === "worker" && p.reloads === 0 && !old.has(p.pid))) return;
    }
    throw new Error("no new worker after the reload");
  }

  async #processes(): Promise<ProcessInfo[]> {
    return parseShowProc(await masterCommand(this.#options.masterSocket, "show proc"));
  }
}

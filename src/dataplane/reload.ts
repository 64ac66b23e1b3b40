// The reload path: a reload is one more kind of flush in the data plane's queue. It is decided
// against what the running worker has (its structure hash, read with `show env`), never tried
// twice for the same refused configuration, and rendered from the data plane's own layout:
//
//   ReloadPath.wanted   structure differs, a backend is missing, or one must grow ─► why, and a key
//   ReloadPath.reload   render ─► Reloader ─► switchToWorker
//   MasterReloader      text ─► temp file ─► haproxy -c ─► refused: E_CONFIG_INVALID, file unchanged
//                                        └─► rename into place ─► master CLI `reload`
//                                            ─► `show proc`: a new worker (its pid), or `[failed: N]`
//                                               grew: E_RELOAD_FAILED, the file that runs put back
//   switchToWorker      reconnect the runtime client until `show info` answers from that worker
//
// Why it is safe: the new worker takes the listening sockets over (expose-fd listeners), the
// old one finishes its connections (soft stop), and every endpoint is written into the new file.

import { readFile } from "node:fs/promises";
import { KubeHaproxyError, isKubeHaproxyError } from "../errors.ts";
import { parseInfoPid, showInfo } from "../haproxy/commands.ts";
import { checkConfigFile } from "../haproxy/config-check.ts";
import { writeConfigAtomically } from "../haproxy/config-file.ts";
import { masterCommand, parseShowProc, type ProcessInfo } from "../haproxy/master.ts";
import { renderConfig, structureHash, type RenderedBackend, type RenderOptions } from "../haproxy/render.ts";
import type { Backend } from "../model.ts";
import type { Transport } from "./executor.ts";
import { systemClock, type Clock } from "./runner.ts";

export interface ReloadWanted {
  readonly reason: string;
  /** "slots": only a template must grow; "structural": the configuration differs. */
  readonly kind: "structural" | "slots";
  /** Identifies the configuration asked for: one refused or failed is not tried again. */
  readonly key: string;
}

export interface ReloadInput {
  /** The desired structure's hash (structureOf every backend, the global settings). */
  readonly structure: string;
  /** The running worker's (show env); undefined when it has none. */
  readonly running: string | undefined;
  /** Why it changed, as the desired state recorded it. */
  readonly reasons: readonly string[];
  /** Desired backends HAProxy has no backend for, sorted. */
  readonly missing: readonly string[];
  /** Backends that cannot grow at runtime and overflow, with their endpoint counts, sorted. */
  readonly growth: readonly (readonly [string, number])[];
}

/** Renders a configuration from a layout: renderConfig (onlyfetch) or renderPoolConfig (local). */
export type Renderer = (layout: readonly RenderedBackend[], options: RenderOptions) => string;

export type ReloadOutcome = { readonly ok: true } | { readonly ok: false; readonly refused: boolean; readonly error: KubeHaproxyError };

/** What HAProxy's configuration is, and what was tried: the reload path's memory. */
export class ReloadPath {
  readonly #reloader: Reloader;
  readonly #render: RenderOptions;
  readonly #renderer: Renderer;
  readonly #minPeriodMs: number;
  readonly #clock: Clock;
  #lastReload = -Infinity;
  // HAProxy refused this configuration (haproxy -c): not tried again until the desired state changes.
  #refusedKey: string | undefined;
  // This reload failed (no new worker): not tried again until then, or until a new connection.
  #failedKey: string | undefined;

  constructor(options: { reloader: Reloader; render: RenderOptions; renderer?: Renderer; minReloadPeriodMs?: number; clock: Clock }) {
    this.#reloader = options.reloader;
    this.#render = options.render;
    this.#renderer = options.renderer ?? renderConfig;
    this.#minPeriodMs = options.minReloadPeriodMs ?? 2_000;
    this.#clock = options.clock;
  }

  /** The structure hash of these backends with this path's global settings. */
  hash(backends: readonly Backend[]): string {
    return structureHash(backends, this.#render);
  }

  /** A new connection may be a new HAProxy: a reload that failed is tried again. */
  newConnection(): void {
    this.#failedKey = undefined;
  }

  /** undefined: nothing to reload; "tried": wanted, but refused or failed before. */
  wanted({ structure, running, reasons, missing, growth }: ReloadInput): ReloadWanted | "tried" | undefined {
    const why: string[] = [];
    if (structure !== running) why.push(...(reasons.length > 0 ? reasons : ["the running configuration is not the cluster's"]));
    else if (missing.length > 0) why.push(`${missing.join(", ")} not in HAProxy's configuration`);
    if (growth.length > 0) why.push(`${growth.map(([name]) => name).join(", ")} need more slots than their templates have`);
    if (why.length === 0) return undefined;
    const key = JSON.stringify([structure, missing, growth]);
    if (key === this.#refusedKey || key === this.#failedKey) return "tried";
    return { reason: why.join("; "), kind: structure === running && missing.length === 0 ? "slots" : "structural", key };
  }

  /** How long until --min-reload-period allows the next reload. */
  waitMs(): number {
    return Math.max(0, this.#lastReload + this.#minPeriodMs - this.#clock.now());
  }

  /** Loads the configuration of `layout` and points `transport` at the new worker. */
  async reload(want: ReloadWanted, layout: readonly RenderedBackend[], transport: Transport): Promise<ReloadOutcome> {
    try {
      const worker = await this.#reloader.reload(this.#renderer(layout, this.#render));
      this.#lastReload = this.#clock.now();
      await switchToWorker(transport, worker, this.#clock);
    } catch (error) {
      this.#lastReload = this.#clock.now();
      // A name or address the renderer refuses is as final as haproxy -c refusing the file.
      const refused = isKubeHaproxyError(error, "E_CONFIG_INVALID") || isKubeHaproxyError(error, "E_INVALID_IDENTIFIER");
      if (refused) this.#refusedKey = want.key;
      else this.#failedKey = want.key;
      const wrapped = isKubeHaproxyError(error) ? error : new KubeHaproxyError("E_RELOAD_FAILED", String((error as Error).message ?? error), { cause: error });
      return { ok: false, refused, error: wrapped };
    }
    this.#refusedKey = this.#failedKey = undefined;
    return { ok: true };
  }
}

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
    // The file HAProxy would start from after a restart: it must stay one that loaded.
    const loaded = await readFile(configPath, "utf8").catch(() => undefined);
    await writeConfigAtomically(configPath, config, async (candidate) => {
      const check = await checkConfigFile(candidate, haproxyBinary);
      if (check.ok) return;
      // An unchecked configuration is never loaded: without the binary we cannot know.
      const why = check.ran ? `haproxy -c refused it:\n${check.output}` : `${haproxyBinary} -c could not run (${check.output})`;
      throw new KubeHaproxyError("E_CONFIG_INVALID", `configuration not loaded: ${why}`, { reply: check.output });
    });
    try {
      return await this.#reloadMaster();
    } catch (error) {
      // The new worker did not start (a port taken on the node, …): put back the one that runs.
      if (loaded !== undefined) await writeConfigAtomically(configPath, loaded);
      throw error;
    }
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
    // Its startup log follows: HAProxy's own reason (a port it cannot bind, …) is in the ALERT lines.
    if (/Success=0/.test(reply)) {
      throw new KubeHaproxyError("E_RELOAD_FAILED", `the new HAProxy worker failed to start; the old one keeps running. HAProxy said: ${alertsOf(reply)}`, { reply });
    }
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
async function switchToWorker(transport: Transport, worker: number, clock: Clock, timeoutMs = 5_000): Promise<void> {
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

/** The ALERT lines of HAProxy's startup log (its reasons), else its first lines. */
function alertsOf(log: string): string {
  const alerts = log.split("\n").filter((line) => /ALERT/.test(line));
  return alerts.length > 0 ? alerts.slice(0, 5).join(" | ") : firstLines(log);
}

function firstLines(text: string): string {
  return text.trim().split("\n").slice(0, 5).join(" | ");
}

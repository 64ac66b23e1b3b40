// The data plane's options, events and reports: its public vocabulary (dataplane.ts is the owner).

import type { RenderOptions } from "../haproxy/render.ts";
import type { Logger } from "../log.ts";
import type { Endpoint } from "../model.ts";
import type { Transport } from "./executor.ts";
import type { LocalOptions } from "./local.ts";
import type { BindProbe } from "./bind-check.ts";
import type { Reloader, Renderer } from "./reload.ts";
import type { Clock } from "./runner.ts";

export interface DataplaneOptions {
  readonly transport: Transport;
  readonly log: Logger;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Least time between two syncs (--min-sync-period). @default 0 */
  readonly minSyncPeriodMs?: number;
  /** Re-read HAProxy's state and repair drift this often (--config-sync-period); 0 never. @default 60000 */
  readonly configSyncPeriodMs?: number;
  /** Backoff after a failed sync. @default 100 … 10000 */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** The reaper: how often `del server` is tried again while the server has connections. @default 2000 */
  readonly deleteRetryMs?: number;
  /** Structural changes; without it HAProxy's configuration is left as it is. */
  readonly reload?: {
    readonly reloader: Reloader;
    /** Global settings of the rendered configuration (part of the structure). */
    readonly render: RenderOptions;
    /** --min-reload-period. @default 2000 */
    readonly minReloadPeriodMs?: number;
    /** The configuration's text from its layout. @default renderConfig (onlyfetch) */
    readonly renderer?: Renderer;
    /** The pre-flight: tries a bind HAProxy does not hold yet. Without it no port is left out before a reload. */
    readonly probe?: BindProbe;
  };
  /** Local mode: Service ports claim backends of a prewarmed pool, the kernel's capture map routes to them. */
  readonly local?: LocalOptions;
}

export interface FlushReport {
  /** This sync began with a full read of HAProxy's state. */
  readonly full: boolean;
  readonly backends: number;
  /** Commands HAProxy answered, and how many of those it refused. */
  readonly commands: number;
  readonly failed: number;
  readonly durationMs: number;
}

export interface BackendStatus {
  readonly name: string;
  /** Template slots plus dynamic servers. */
  readonly slots: number;
  readonly dynamic: number;
  readonly used: number;
  readonly overflow: number;
}

export type DataplaneEvents = {
  flushed: [report: FlushReport];
  /** A pending change of `backend` is in HAProxy; `triggerTime` only when it is one to observe. */
  applied: [backend: string, triggerTime: number | undefined, at: number];
  /** Endpoints that found no slot and cannot get a dynamic server (each key once): a reload grows the template. */
  overflow: [backend: string, keys: readonly string[]];
  /** A desired backend HAProxy does not have: it comes with the next reload. */
  missing: [backend: string];
  failed: [command: string, message: string];
  /** An endpoint refused at the door (bad address or port): never given a slot. */
  invalid: [backend: string, endpoint: Endpoint, message: string];
  /** `kind`: "slots" when only a template had to grow. */
  reloaded: [reason: string, durationMs: number, kind: "structural" | "slots"];
  /** haproxy -c refused the configuration; the running one stays. Tried again once the structure changes. */
  reloadRefused: [output: string];
  reloadFailed: [message: string];
  /** A Service port left out of the configuration: one of its binds cannot be bound on the node. Once per occurrence. */
  unbindable: [backend: string, servicePort: string, why: string];
  /** At every full read of HAProxy's state: per backend, servers in service that its health check marked DOWN. */
  serversDown: [down: ReadonlyMap<string, number>];
  /** Local mode: nft refused or failed a change; the kernel is read again after a backoff. */
  captureFailed: [message: string];
};

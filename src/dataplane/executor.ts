// The executor: planned slot changes → runtime commands → the transport, and the replies
// classified. Only a change HAProxy confirmed reaches the applied picture (`applied` hook).
//
//   plans (lazy, per backend) ─► chunk of ≥ WRITE_CHUNK commands ─► transport.executeAll ─┐
//        └─ pulled while < MAX_OUTSTANDING commands wait, and again as replies come back   │
//   replies, in order ◄──────────────────────────────────────────────────────────────────┘
//     ok ─► applied()        del + "still has connections" ─► busyDeletes (not a failure)
//     no answer (connection lost) ─► interrupted (not a failure: the reconnect resynchronises)
//     anything else ─► failed (refused(); the caller asks for a full sync after backoff)

import type { KubeHaproxyError } from "../errors.ts";
import type { HealthCheck } from "../model.ts";
import {
  addServerRefusal,
  delServerRefusal,
  parseShowEnv,
  serverCommands,
  showEnv,
  showServersState,
  type RuntimeCommand,
  type ServerCommands,
} from "../haproxy/commands.ts";
import { slotName } from "../haproxy/names.ts";
import { STRUCTURE_ENV } from "../haproxy/render.ts";
import type { CommandResult } from "../haproxy/runtime-client.ts";
import { ServersStateReader } from "../haproxy/servers-state.ts";
import { AppliedState } from "./applied.ts";
import type { SlotChange } from "./planner.ts";

/** The runtime API as the data plane uses it (haproxy/runtime-client.ts; a fake in tests). */
export interface Transport {
  readonly connected: boolean;
  /** Starts connecting; keeps reconnecting until close(). */
  start(): void;
  close(): Promise<void>;
  /** Drops the connection and connects again at once (a new worker after a reload). */
  reconnect(): void;
  executeAll(commands: readonly RuntimeCommand[]): Promise<CommandResult[]>;
  execute(command: RuntimeCommand): Promise<string>;
  on(event: "connect", listener: () => void): unknown;
  on(event: "disconnect", listener: (error: Error) => void): unknown;
  off(event: "connect", listener: () => void): unknown;
  off(event: "disconnect", listener: (error: Error) => void): unknown;
}

export interface PlannedChange {
  readonly backend: string;
  readonly change: SlotChange;
  /** The slot is a dynamic server (d<N>), not a template slot (s<N>). */
  readonly dynamic: boolean;
  /** The backend's health check: `add server` must repeat it (default-server does not apply). */
  readonly healthCheck?: HealthCheck;
}

export interface ExecuteOutcome {
  /** Commands HAProxy answered. */
  answered: number;
  failed: number;
  firstError: string | undefined;
  /** The connection broke: some commands got no answer; what they did is unknown. */
  interrupted: boolean;
  /** Backends with a command refused or unanswered: their change is not known to be in HAProxy. */
  readonly unconfirmed: Set<string>;
  /** Backends where `del server` found connections still attached. */
  readonly busyDeletes: Set<string>;
  /** Backends where `add server` was refused because the running algorithm takes no dynamic servers. */
  readonly notDynamic: Set<string>;
}

export interface ExecuteHooks {
  applied(planned: PlannedChange): void;
  refused(planned: PlannedChange, command: string, error: KubeHaproxyError): void;
}

/** Commands gathered into one executeAll: HAProxy starts on the first ones while more are planned. */
const WRITE_CHUNK = 1024;
/**
 * Most commands sent and not answered yet. Plans are pulled as replies come back, so a flush
 * of every endpoint (a first sync against an empty HAProxy: 200,000 commands at 100,000
 * endpoints) never holds all its commands, results and replies at once; the runtime client's
 * own window (runtime-client.ts) is far smaller, so HAProxy never waits for planning.
 */
const MAX_OUTSTANDING = 4 * WRITE_CHUNK;

/**
 * Sends every planned change. `plans` is pulled lazily, one backend's changes at a time, while
 * fewer than MAX_OUTSTANDING commands wait for their replies; a backend is never split across
 * chunks, so nothing planned depends on a reply not yet in.
 */
export function execute(transport: Transport, plans: Iterable<readonly PlannedChange[]>, hooks: ExecuteHooks): Promise<ExecuteOutcome> {
  const outcome: ExecuteOutcome = {
    answered: 0,
    failed: 0,
    firstError: undefined,
    interrupted: false,
    unconfirmed: new Set(),
    busyDeletes: new Set(),
    notDynamic: new Set(),
  };
  const pending = plans[Symbol.iterator]();
  let exhausted = false;
  let outstanding = 0;
  // The backend name is validated once per run of changes to the same backend, not per command.
  let builder: { readonly backend: string; readonly commands: ServerCommands } | undefined;
  return new Promise((resolve, reject) => {
    const send = (planned: PlannedChange[], commands: RuntimeCommand[]): void => {
      outstanding += commands.length;
      transport
        .executeAll(commands)
        .then((results) => {
          collect(planned, commands, results, outcome, hooks);
          outstanding -= commands.length;
          fill();
        })
        .catch(fail);
    };
    // A plan or a command builder that threw: the flush fails, as before, and nothing more is planned.
    const fail = (error: unknown): void => {
      exhausted = true;
      reject(error);
    };
    const fill = (): void => {
      let planned: PlannedChange[] = [];
      let commands: RuntimeCommand[] = [];
      while (!exhausted && outstanding + commands.length < MAX_OUTSTANDING) {
        const next = pending.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        for (const change of next.value) {
          if (builder?.backend !== change.backend) builder = { backend: change.backend, commands: serverCommands(change.backend) };
          planned.push(change);
          commands.push(commandFor(builder.commands, change));
        }
        if (commands.length >= WRITE_CHUNK) {
          send(planned, commands);
          [planned, commands] = [[], []];
        }
      }
      if (commands.length > 0) send(planned, commands);
      else if (exhausted && outstanding === 0) resolve(outcome);
    };
    try {
      fill();
    } catch (error) {
      fail(error);
    }
  });
}

function collect(
  planned: readonly PlannedChange[],
  commands: readonly RuntimeCommand[],
  results: readonly CommandResult[],
  outcome: ExecuteOutcome,
  hooks: ExecuteHooks,
): void {
  results.forEach((result, i) => {
    const change = planned[i]!;
    if (result.ok) {
      outcome.answered++;
      hooks.applied(change);
      return;
    }
    const { error } = result;
    if (isInterruption(error)) {
      outcome.interrupted = true;
      outcome.unconfirmed.add(change.backend);
      return;
    }
    outcome.answered++;
    const reply = error.reply ?? "";
    if (change.change.kind === "del" && delServerRefusal(reply) === "has-connections") {
      outcome.busyDeletes.add(change.backend);
      return;
    }
    if (change.change.kind === "add" && addServerRefusal(reply) === "not-dynamic") outcome.notDynamic.add(change.backend);
    outcome.failed++;
    outcome.firstError ??= error.message;
    outcome.unconfirmed.add(change.backend);
    hooks.refused(change, commands[i]!.line, error);
  });
}

function commandFor(commands: ServerCommands, { change, dynamic, healthCheck }: PlannedChange): RuntimeCommand {
  const server = slotName(change.slot, dynamic);
  switch (change.kind) {
    case "addr":
      return commands.setAddr(server, change.ip, change.port);
    case "state":
      return commands.setState(server, change.state);
    case "add":
      return commands.add(server, change.ip, change.port, healthCheck);
    case "del":
      return commands.del(server);
    case "health":
      return commands.enableHealth(server);
  }
}

export type HaproxyState =
  | {
      readonly ok: true;
      readonly applied: AppliedState;
      /** Per backend, how many of its servers HAProxy's health check holds DOWN (every backend listed). */
      readonly down: ReadonlyMap<string, number>;
      readonly structure: string | undefined;
    }
  | { readonly ok: false; readonly interrupted: boolean; readonly error: KubeHaproxyError };

/**
 * HAProxy's own account: every server (`show servers state`, read into the applied picture as
 * it arrives, never held whole) and the running structure (`show env`).
 */
export async function readHaproxyState(transport: Transport): Promise<HaproxyState> {
  const applied = AppliedState.builder();
  const reader = new ServersStateReader(applied.add);
  const [state, env] = await transport.executeAll([showServersState(undefined, (chunk) => reader.push(chunk)), showEnv(STRUCTURE_ENV)]);
  if (!state!.ok) return { ok: false, interrupted: isInterruption(state!.error), error: state!.error };
  if (!env!.ok) return { ok: false, interrupted: isInterruption(env!.error), error: env!.error };
  try {
    reader.end();
  } catch (error) {
    return { ok: false, interrupted: false, error: error as KubeHaproxyError };
  }
  return { ok: true, applied: applied.done(), down: applied.down, structure: parseShowEnv(STRUCTURE_ENV, env!.reply) };
}

/** The connection broke before HAProxy answered: what the command did is unknown, and no failure of it. */
function isInterruption(error: KubeHaproxyError): boolean {
  return error.code === "E_CONNECTION_CLOSED" || error.code === "E_NOT_CONNECTED";
}

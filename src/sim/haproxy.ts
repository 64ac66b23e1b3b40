// A real HAProxy process in master-worker mode, started from a configuration file in a folder
// of its own. Used by the tests, the bench and the demo; the sidecar never starts HAProxy.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { parseSocketAddress } from "../haproxy/address.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const OUTPUT_KEPT = 1 << 20;

export interface HaproxyProcess {
  readonly configPath: string;
  readonly runtimeSocket: string;
  readonly masterSocket: string;
  readonly pid: number;
  /** What HAProxy wrote on stderr/stdout so far (the last MB of it). */
  output(): string;
  /** Kills the whole process group at once (SIGKILL): a crash, as far as clients can tell. */
  kill(): Promise<void>;
  /** Graceful stop. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** A folder for the sockets and the configuration. */
  readonly dir: string;
  /** Configuration text; it must use `${dir}/runtime.sock` as its stats socket (see runtimeSocketIn). */
  readonly config?: string;
  /** Use an existing configuration file instead of `config`. */
  readonly configPath?: string;
  /** The runtime address the configuration uses, when not `${dir}/runtime.sock`. */
  readonly runtimeSocket?: string;
  /** @default haproxyBinary() */
  readonly binary?: string;
}

/**
 * The HAProxy binary the tests, the bench and the demo run: $KUBE_HAPROXY_TEST_HAPROXY, else
 * `haproxy` from the PATH. The one place to choose it (CI runs the suite once per version).
 */
export function haproxyBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.KUBE_HAPROXY_TEST_HAPROXY || "haproxy";
}

/** `haproxy -v`'s version ("2.6.12-1+deb12u4", "3.4.0-64a335366") of the binary under test. */
export async function haproxyVersion(binary = haproxyBinary()): Promise<string> {
  const { stdout } = await promisify(execFile)(binary, ["-v"]);
  const version = /version (\S+)/.exec(stdout)?.[1];
  if (!version) throw new Error(`${binary} -v printed no version: ${stdout.slice(0, 200)}`);
  return version;
}

export function runtimeSocketIn(dir: string): string {
  return join(dir, "runtime.sock");
}

export async function startHaproxy(options: StartOptions): Promise<HaproxyProcess> {
  const configPath = options.configPath ?? join(options.dir, "haproxy.cfg");
  if (options.config !== undefined) await writeFile(configPath, options.config);
  const runtimeSocket = options.runtimeSocket ?? runtimeSocketIn(options.dir);
  const masterSocket = join(options.dir, "master.sock");
  const child: ChildProcess = spawn(options.binary ?? haproxyBinary(), ["-W", "-S", masterSocket, "-f", configPath], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: kill() takes the workers too
  });
  // HAProxy logs every server state change (render.ts: `log stdout`): a bench's million
  // changes would grow this without end, so only the latest text is kept.
  let output = "";
  const keep = (chunk: Buffer): void => {
    output += chunk;
    if (output.length > OUTPUT_KEPT) output = output.slice(-OUTPUT_KEPT / 2);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  let exited = false;
  child.on("exit", () => (exited = true));

  const deadline = Date.now() + 15_000;
  while (!(await accepts(runtimeSocket))) {
    if (exited) throw new Error(`haproxy exited at start:\n${output}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`haproxy did not open ${runtimeSocket}:\n${output}`);
    }
    await sleep(20);
  }
  const waitExit = async (): Promise<void> => {
    if (!exited) await once(child, "exit");
  };
  return {
    configPath,
    runtimeSocket,
    masterSocket,
    pid: child.pid!,
    output: () => output,
    async kill() {
      if (!exited) process.kill(-child.pid!, "SIGKILL");
      await waitExit();
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => !exited && process.kill(-child.pid!, "SIGKILL"), 5_000);
        await waitExit();
        clearTimeout(timer);
      }
    },
  };
}

function accepts(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(parseSocketAddress(address));
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

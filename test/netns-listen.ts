// Listening sockets inside a network namespace for a server living in the test process: a small
// child started with `ip netns exec` binds the port there and hands the listening socket back over
// Node's IPC channel (SCM_RIGHTS). The test's own server then accepts connections made inside the
// namespace, e.g. the sidecar's health check node ports on the node's addresses.

import { fork, type ChildProcess } from "node:child_process";
import type { Server } from "node:net";
import type { Namespace } from "./netns.ts";

const CHILD = new URL("./netns-listen-child.ts", import.meta.url).pathname;

/** Listens on every address of the namespace (a host is not asked for). */
export type ListenInside = (server: Server, port: number) => Promise<void>;

/** A listen function for `ns`; its child is killed by `t`'s teardown. */
export function listenInside(ns: Namespace, t: { after(fn: () => void): void }): ListenInside {
  let child: ChildProcess | undefined;
  const start = (): ChildProcess => {
    // fork() runs execPath; `ip netns exec` keeps the IPC descriptor open across its exec.
    const started = fork(CHILD, [], { execPath: "ip", execArgv: ["netns", "exec", ns.name, process.execPath], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    t.after(() => void started.kill("SIGKILL"));
    return started;
  };
  return (server, port) =>
    new Promise((resolve, reject) => {
      child ??= start();
      const onMessage = (message: { port?: number; error?: string }, handle?: unknown): void => {
        if (message.port !== port) return;
        child!.off("message", onMessage);
        if (message.error !== undefined || handle === undefined) return reject(new Error(`cannot listen on ${port} in ${ns.name}: ${message.error}`));
        server.once("error", reject).listen(handle as Server, () => {
          server.off("error", reject);
          resolve();
        });
      };
      child.on("message", onMessage);
      child.send({ port });
    });
}

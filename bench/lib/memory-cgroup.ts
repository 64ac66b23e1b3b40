// A memory cgroup for one benchmark child, as the DaemonSet's `resources.limits.memory` gives
// the sidecar's container. Node reads that limit at start (libuv's constrained memory) and V8
// sizes its heap from it, the young generation included; without a limit V8 sizes it from the
// host's RAM (24 GiB here: a 4 GB heap limit and ~128 MB of young generation committed), so a
// bench run without one measures the host, not what the Pod would hold. No V8 flag is involved.
//
// Needs root and a writable memory controller (cgroup v1 `memory/` or v2 with `+memory` in the
// root's subtree_control); otherwise `create` says why and the caller reports the run as
// unconstrained.

import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface MemoryCgroup {
  readonly path: string;
  readonly limitBytes: number;
  /** Spawns `command args…` inside the cgroup (the shell enters it, then execs: Node starts limited). */
  spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess;
  /** Removes the cgroup once its processes are gone (retried briefly: the kernel frees it asynchronously). */
  remove(): Promise<void>;
}

let count = 0;

export function createMemoryCgroup(limitBytes: number): MemoryCgroup | { readonly unavailable: string } {
  const layout = memoryController();
  if ("unavailable" in layout) return layout;
  const path = join(layout.root, `kube-haproxy-bench-${process.pid}-${count++}`);
  try {
    mkdirSync(path);
    writeFileSync(join(path, layout.limitFile), String(limitBytes));
  } catch (error) {
    try {
      rmdirSync(path);
    } catch {
      // never made
    }
    return { unavailable: `cannot create a memory cgroup under ${layout.root}: ${(error as Error).message}` };
  }
  const procs = join(path, "cgroup.procs");
  return {
    path,
    limitBytes,
    spawn: (command, args, options) => spawn("/bin/sh", ["-c", `echo $$ > '${procs}' && exec "$@"`, "sh", command, ...args], options),
    async remove() {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          rmdirSync(path);
          return;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
  };
}

/** The memory controller's folder of this process's own cgroup: the bench's cgroup nests under it, never beside it. */
function memoryController(): { readonly root: string; readonly limitFile: string } | { readonly unavailable: string } {
  if (process.getuid?.() !== 0) return { unavailable: "not root" };
  const own = readFileSync("/proc/self/cgroup", "utf8").split("\n");
  const v1 = own.map((line) => /^\d+:memory:(.*)$/.exec(line)?.[1]).find((path) => path !== undefined);
  if (v1 !== undefined && existsSync("/sys/fs/cgroup/memory/memory.limit_in_bytes")) return { root: join("/sys/fs/cgroup/memory", v1), limitFile: "memory.limit_in_bytes" };
  const v2 = own.map((line) => /^0::(.*)$/.exec(line)?.[1]).find((path) => path !== undefined);
  const controllers = v2 === undefined ? "" : join("/sys/fs/cgroup", v2, "cgroup.subtree_control");
  if (v2 !== undefined && existsSync(controllers)) {
    if (!readFileSync(controllers, "utf8").split(/\s+/).includes("memory")) return { unavailable: `cgroup v2: memory is not enabled for the children of ${v2}` };
    return { root: join("/sys/fs/cgroup", v2), limitFile: "memory.max" };
  }
  return { unavailable: "no memory cgroup controller for this process" };
}

// A pod on a host that can vanish: an HTTP server inside a network namespace this test made,
// reached over a veth pair from the root namespace, at an address of 198.18.0.0/15 (a /30 picked
// at random, so that runs side by side do not collide). `vanish()` takes the pod's end of the
// link down: packets to it are dropped, as when a node is lost. Everything is removed by the
// teardown registered before it is made, whatever failed; namespaces left by a killed run
// (their pid gone) are swept first.
//
// Needs root and `ip`; elsewhere the tests skip and say why, except under CI=true, where a skip
// would hide a missing capability: there they run and fail with the reason.

import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { netnsTestOptions, netnsUnavailable, run, sweepStale, uniqueNamespaceName } from "./netns.ts";

/** Only `ip` is needed here (no nftables). */
const TOOLS = ["ip"];

/** `test` options: skip with the reason off-root, except under CI=true (then the test fails with it). */
export function netnsPodTestOptions(): { skip?: string } {
  return netnsTestOptions(TOOLS);
}

export interface NetnsPod {
  readonly ip: string;
  readonly port: number;
  /** Drops every packet to the pod from now on (its link goes down inside its namespace). */
  vanish(): Promise<void>;
}

let made = 0;

export async function startNetnsPod(t: { after(fn: () => Promise<void>): void }, port: number): Promise<NetnsPod> {
  const reason = netnsUnavailable(TOOLS);
  if (reason !== undefined) throw new Error(`cannot run: ${reason}${process.env.CI === "true" ? " (CI=true: a skip would be a failure)" : ""}`);
  await sweepStale();
  const ns = uniqueNamespaceName("pod");
  made++;
  const [hostEnd, podEnd] = [`kh${process.pid % 1e6}h${made}`, `kh${process.pid % 1e6}p${made}`];
  const net = `198.${18 + randomInt(2)}.${randomInt(256)}.${4 * randomInt(64)}`.split(".").map(Number);
  const address = (last: number): string => `${net[0]}.${net[1]}.${net[2]}.${net[3]! + last}`;
  const ip = address(2);
  let server: ReturnType<typeof spawn> | undefined;
  t.after(async () => {
    server?.kill("SIGKILL");
    // Deleting the namespace deletes its veth end, and with it the end in the root namespace.
    await run(["ip", "netns", "del", ns]).catch(() => {});
    await run(["ip", "link", "del", hostEnd]).catch(() => {});
  });
  await run(["ip", "netns", "add", ns]);
  await run(["ip", "link", "add", hostEnd, "type", "veth", "peer", "name", podEnd, "netns", ns]);
  await run(["ip", "addr", "add", `${address(1)}/30`, "dev", hostEnd]);
  await run(["ip", "link", "set", hostEnd, "up"]);
  await run(["ip", "-n", ns, "addr", "add", `${ip}/30`, "dev", podEnd]);
  await run(["ip", "-n", ns, "link", "set", podEnd, "up"]);
  const code = `require("node:http").createServer((q, s) => s.end(${JSON.stringify(`${ip}\n`)})).listen(${port}, ${JSON.stringify(ip)}, () => console.log("listening"))`;
  server = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await Promise.race([once(createInterface({ input: server.stdout! }), "line"), once(server, "exit").then(() => ["exited"])])) as [string];
  if (line !== "listening") throw new Error(`the pod in ${ns} did not start`);
  return { ip, port, vanish: async () => void (await run(["ip", "-n", ns, "link", "set", podEnd, "down"])) };
}

// The machine's share of the single-change path, with no product code: a bare Node process
// that, for each line a TCP peer writes, sends one runtime command to HAProxy on a prompt-mode
// connection and marks when the reply arrived (process.hrtime, as tail-marks.ts). The same hops
// as the sidecar's (another process woken by loopback bytes, a unix socket write, HAProxy's
// reply), none of the work (TLS, parsing, translation, planning).
//
//   node bench/lib/raw-relay.ts TCP_PORT RUNTIME_SOCKET COMMAND MARKS_FILE
// Prints "ready" once both connections are open; writes [arrived, replied] pairs at exit.

import { writeFileSync } from "node:fs";
import { connect } from "node:net";

const [port, runtime, command, file] = process.argv.slice(2) as [string, string, string, string];
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const marks: [number, number][] = [];
let arrived = 0;
let replies = "";
const haproxy = connect({ path: runtime });
haproxy.setEncoding("latin1");
haproxy.write("prompt\n");
haproxy.on("data", (chunk: string) => {
  replies += chunk;
  if (!replies.endsWith("\n> ")) return;
  replies = "";
  if (arrived) marks.push([arrived, now()]);
  arrived = 0;
});
const peer = connect({ host: "127.0.0.1", port: Number(port) }, () => process.stdout.write("ready\n"));
peer.setNoDelay(true);
peer.on("data", () => {
  arrived = now();
  haproxy.write(`${command}\n`);
});
peer.on("close", () => process.exit(0));
process.on("exit", () => writeFileSync(file, JSON.stringify(marks)));

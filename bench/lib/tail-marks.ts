// A preload for the sidecar process in bench/latency.ts's tail diagnosis (`node --import
// ./bench/lib/tail-marks.ts src/cli.ts run …`, only when KUBE_HAPROXY_BENCH_MARKS names a file):
// per-event timestamps (ms of the monotonic clock, process.hrtime, which every process on the
// machine shares: comparable with the bench's own),
// written to that file at exit. What it marks, without touching the product's code:
//   tls    bytes of the watch arrived (a TLS socket's 'data')
//   parse  a watch event parsed (JSON.parse of a line starting {"type":"ADDED|MODIFIED|DELETED")
//   write  bytes written to the runtime socket (a unix socket's write)
//   reply  bytes read from the runtime socket (a unix socket's 'data')
//   gc     a GC pause: start and duration (PerformanceObserver 'gc'), with its kind
// and, with KUBE_HAPROXY_BENCH_LOOP_DELAY set, the event loop's delay histogram (1 ms resolution).

import { writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { monitorEventLoopDelay, PerformanceObserver, performance, type PerformanceEntry } from "node:perf_hooks";

const file = process.env.KUBE_HAPROXY_BENCH_MARKS;
// A watch event's line; not a BOOKMARK (the fake API server sends one every 10 s).
const EVENT = /^\{"type":"(ADDED|MODIFIED|DELETED)"/;

if (file) {
  const marks: [string, number, number][] = [];
  const now = (): number => Number(process.hrtime.bigint()) / 1e6;
  // performance.now()'s origin on the monotonic clock every process shares (timeOrigin is not).
  const origin = now() - performance.now();
  const emit = Socket.prototype.emit;
  Socket.prototype.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "data") marks.push([this.remotePort === undefined ? "reply" : "tls", now(), (args[0] as Buffer).length]);
    return emit.apply(this, [event, ...args] as Parameters<typeof emit>);
  } as typeof emit;
  const write = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, ...args: unknown[]): boolean {
    if (this.remotePort === undefined) marks.push(["write", now(), typeof args[0] === "string" ? args[0].length : (args[0] as Buffer).length]);
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof write;
  const parse = JSON.parse;
  JSON.parse = function (text: string, reviver?: Parameters<typeof parse>[1]): unknown {
    const out = parse(text, reviver) as unknown;
    if (typeof text === "string" && EVENT.test(text)) marks.push(["parse", now(), text.length]);
    return out;
  };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) marks.push([`gc${((entry as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind ?? ""}`, origin + entry.startTime, entry.duration]);
  }).observe({ entryTypes: ["gc"] });
  // Off unless asked: its 1 ms timer wakes the loop, which changes what is measured.
  const delay = process.env.KUBE_HAPROXY_BENCH_LOOP_DELAY ? monitorEventLoopDelay({ resolution: 1 }) : undefined;
  delay?.enable();
  process.on("exit", () => {
    delay?.disable();
    const ms = (ns: number): number => ns / 1e6;
    const loopDelay = delay && { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max), count: delay.count };
    writeFileSync(file, JSON.stringify({ marks, loopDelay }));
  });
}

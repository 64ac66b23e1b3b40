// Single-change latency through the whole path: API write → watch → informer → proxier →
// engine → HAProxy runtime API → traffic. Two measurements, one after the other, never together:
//
//   one Service (tcp) whose only endpoint alternates between pod A and pod B
//   (a) ack: per sample the slice is replaced (A → B or B → A) and NOTHING else runs in the
//       process — no probe, no load — until the engine reports "applied" for the backend with
//       the new pod's slot ready and the old one out (HAProxy acknowledged every command).
//       The path is split where the proxier receives the slice:
//         t0 = just before the API server's upsert (which writes the watch line synchronously)
//         t1 = the watch's "endpointslice" event, before the proxier's listener (prepended)
//         t2 = after the proxier's listener returned (translation done, engine.setBackend called)
//         t3 = engine "applied"
//       Samples are spaced by a few ms; the first few are a dropped warm-up.
//   (b) first request served by the new pod: the same replacement, then a probe loop opens a new
//       TCP connection per request (one at a time, as fast as it can; a raw `GET / HTTP/1.0`,
//       no node:http) until the new pod answers. Latency = t0 → that answer arrived. Every answer
//       from the old pod after t0 is counted, and separately those whose connection was opened
//       after the engine's "applied" (must be 0: after the ack, no new connection may reach it).
//   (c) as in production, the sidecar in a process of its own (`node src/cli.ts run …`), at
//       1 Service and at 2,000 Services × 10 endpoints: the same replacement; latency = t0 → the
//       sidecar read HAProxy's last reply, from the sidecar's own timestamps, split where the
//       watch bytes arrive and where the commands are written; nothing polls meanwhile
//       (latency-process.ts says why). Interleaved with it, the same hops with no product code
//       (a raw relay process): the machine's own share at the same moments.
//   (c, poll) the issue's method: `show servers state <backend>` polled back to back on a
//       connection of its own until the new pod's slot is ready and the old one's is not.

import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Scenario, ScenarioContext, ScenarioResult } from "./lib/report.ts";
import { formatMs, summarize, type Summary } from "./lib/stats.ts";
import { cdfSvg } from "./lib/svg.ts";
import { appliedIps, startWorld, type World } from "../src/sim/world.ts";
import { measureProcessAck, startSidecarProcess, type ProcessAckSamples } from "./latency-process.ts";

const WARMUP = 10;
/** (c)'s large size: issue 14's 100,000 endpoints (its table also measured 500 × 8 and 2,000 × 10). */
const LARGE = { services: 10_000, perService: 10 };
const SPACING_MS = 5;

interface Answer {
  readonly who: string;
  readonly sentAt: number;
  readonly at: number;
  readonly error?: string;
}

/** One HTTP/1.0 GET on a new connection to 127.0.0.1:port; resolves with the body's first line. */
function probe(port: number, timeoutMs = 2_000): Promise<Answer> {
  return new Promise((resolve) => {
    const sentAt = performance.now();
    const socket = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const body = text.slice(text.indexOf("\r\n\r\n") + 4).trim();
      const ok = text.startsWith("HTTP/1.1 200") || text.startsWith("HTTP/1.0 200");
      resolve({ who: ok ? body : "", sentAt, at: performance.now(), error: ok ? undefined : (error ?? (text ? `answer: ${text.split("\r\n")[0]}` : "connection closed without an answer")) });
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    socket.setNoDelay(true);
    socket.on("connect", () => socket.write("GET / HTTP/1.0\r\nHost: bench\r\n\r\n"));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => finish());
    socket.on("error", (error) => finish(error.message));
  });
}

/** Resolves with performance.now() at the engine's next "applied" that leaves exactly `ip` ready. */
function appliedWith(world: World, ip: string, timeoutMs = 10_000): Promise<number> {
  const { sidecar, backend } = world;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sidecar.dataplane.off("applied", on);
      reject(new Error(`${backend}: ${ip} not applied within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (name: string): void => {
      if (name !== backend) return;
      const at = performance.now();
      const ready = appliedIps(sidecar, backend, "ready");
      if (ready.length !== 1 || ready[0] !== ip) return;
      clearTimeout(timer);
      sidecar.dataplane.off("applied", on);
      resolve(at);
    };
    sidecar.dataplane.on("applied", on);
  });
}

interface AckSamples {
  total: number[];
  watch: number[];
  proxier: number[];
  engine: number[];
}

/** (a): nothing but the change itself runs in the process while a sample is taken. */
async function measureAck(world: World, samples: number, log: (line: string) => void): Promise<AckSamples> {
  const [a, b] = world.pods as [typeof world.pods[0], typeof world.pods[0]];
  const out: AckSamples = { total: [], watch: [], proxier: [], engine: [] };
  let t1 = 0;
  let t2 = 0;
  const before = (): void => void (t1 = performance.now());
  const after = (): void => void (t2 = performance.now());
  world.sidecar.watch.prependListener("endpointslice", before);
  world.sidecar.watch.on("endpointslice", after);
  try {
    for (let i = 0; i < WARMUP + samples; i++) {
      const target = i % 2 === 0 ? b : a;
      t1 = t2 = 0;
      const acked = appliedWith(world, target.ip);
      const t0 = performance.now();
      world.setEndpoints([{ ip: target.ip }]);
      const t3 = await acked;
      if (i >= WARMUP) {
        if (!(t1 >= t0 && t2 >= t1 && t3 >= t2)) throw new Error(`latency (a): events out of order (t1 ${t1 - t0}, t2 ${t2 - t0}, t3 ${t3 - t0})`);
        out.total.push(t3 - t0);
        out.watch.push(t1 - t0);
        out.proxier.push(t2 - t1);
        out.engine.push(t3 - t2);
      }
      await sleep(SPACING_MS);
      if ((i + 1) % 250 === 0) log(`latency (a): ${i + 1}/${WARMUP + samples}`);
    }
  } finally {
    world.sidecar.watch.off("endpointslice", before);
    world.sidecar.watch.off("endpointslice", after);
  }
  return out;
}

interface FirstRequestSamples {
  latency: number[];
  /** t0 → the connection of the request the new pod answered was opened. */
  sent: number[];
  /** t0 → engine applied, in the same samples (with the probe loop running). */
  ack: number[];
  requests: number[];
  oldAfterWrite: number;
  oldAfterAck: number;
  errors: number;
  errorsAfterAck: number;
  errorTexts: string[];
  /** Every probe of the first 20 samples after the warm-up: [sent, answered] ms after t0, who. */
  trace: [number, number, string][][];
}

/** (b): the probe loop runs from the write until the new pod's first answer. */
interface ProbeTarget {
  /** The Service's frontend port on 127.0.0.1. */
  readonly port: number;
  readonly a: { readonly ip: string };
  readonly b: { readonly ip: string };
  /** Makes `ip` the Service's only endpoint (the API write). */
  setEndpoint(ip: string): void;
  /** performance.now() when the engine applied `ip` alone; undefined when not observable here. */
  acked?(ip: string): Promise<number>;
  /** Resolves once `ip` alone is in HAProxy (before the next sample). */
  settled(ip: string): Promise<unknown>;
}

async function measureFirstRequest(target: ProbeTarget, samples: number, log: (line: string) => void, label: string): Promise<FirstRequestSamples> {
  const { a, b } = target;
  const out: FirstRequestSamples = { latency: [], sent: [], ack: [], requests: [], oldAfterWrite: 0, oldAfterAck: 0, errors: 0, errorsAfterAck: 0, errorTexts: [], trace: [] };
  for (let i = 0; i < WARMUP + samples; i++) {
    const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
    const trace: [number, number, string][] = [];
    let ackAt = Infinity;
    const acked = target.acked?.(to.ip).then((at) => (ackAt = at));
    const t0 = performance.now();
    target.setEndpoint(to.ip);
    let n = 0;
    let oldAfterWrite = 0;
    let oldAfterAck = 0;
    let errors = 0;
    let errorsAfterAck = 0;
    let answer: Answer;
    for (;;) {
      answer = await probe(target.port);
      n++;
      trace.push([answer.sentAt - t0, answer.at - t0, answer.who === to.ip ? "new" : answer.who === from.ip ? "old" : "error"]);
      if (answer.who === to.ip) break;
      if (answer.who === from.ip) {
        oldAfterWrite++;
        if (answer.sentAt > ackAt) oldAfterAck++;
      } else {
        errors++;
        if (answer.sentAt > ackAt) errorsAfterAck++;
        if (out.errorTexts.length < 5) out.errorTexts.push(answer.error ?? `answered by ${answer.who}`);
      }
      if (performance.now() - t0 > 10_000) throw new Error(`latency ${label}: ${to.ip} never answered`);
    }
    await acked;
    await target.settled(to.ip);
    if (i >= WARMUP) {
      out.latency.push(answer.at - t0);
      out.sent.push(answer.sentAt - t0);
      if (out.trace.length < 20) out.trace.push(trace);
      out.ack.push(ackAt - t0);
      out.requests.push(n);
      out.oldAfterWrite += oldAfterWrite;
      out.oldAfterAck += oldAfterAck;
      out.errors += errors;
      out.errorsAfterAck += errorsAfterAck;
    }
    await sleep(SPACING_MS);
    if ((i + 1) % 250 === 0) log(`latency ${label}: ${i + 1}/${WARMUP + samples}`);
  }
  return out;
}

interface SeparateSamples {
  latency: number[];
  polls: number[];
  pollMs: number[];
  firstRequest: FirstRequestSamples;
}

/** (c, poll): the issue's method, the slot state read from HAProxy by polling back to back; then (c, first request). */
async function measureSeparateProcess(samples: number, log: (line: string) => void): Promise<SeparateSamples> {
  const p = await startSidecarProcess();
  try {
    const { a, b, port, setEndpoint, shows } = p;
    const out: Omit<SeparateSamples, "firstRequest"> = { latency: [], polls: [], pollMs: [] };
    for (let i = 0; i < WARMUP + samples; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      const t0 = performance.now();
      setEndpoint(to.ip);
      let polls = 0;
      let pollTime = 0;
      let at: number;
      for (;;) {
        const p0 = performance.now();
        const done = await shows(to.ip, from.ip);
        at = performance.now();
        polls++;
        pollTime += at - p0;
        if (done) break;
        if (at - t0 > 10_000) throw new Error(`latency (c): ${to.ip} never became ready`);
      }
      if (i >= WARMUP) {
        out.latency.push(at - t0);
        out.polls.push(polls);
        out.pollMs.push(pollTime / polls);
      }
      await sleep(SPACING_MS);
      if ((i + 1) % 250 === 0) log(`latency (c, poll): ${i + 1}/${WARMUP + samples}`);
    }
    // (b) again, with the sidecar in its own process: the probe shares this process only with
    // the API server and the pods. The end of each sample is read from HAProxy (no engine here).
    const settled = async (ip: string): Promise<void> => {
      const other = ip === a.ip ? b.ip : a.ip;
      const until = performance.now() + 10_000;
      while (!(await shows(ip, other))) if (performance.now() > until) throw new Error(`latency (c): ${ip} never became ready`);
    };
    const firstRequest = await measureFirstRequest({ port, a, b, setEndpoint, settled }, samples, log, "(c, first request)");
    return { ...out, firstRequest };
  } finally {
    await p.stop();
  }
}

export const latencyScenario: Scenario = {
  name: "latency",
  async run(context: ScenarioContext): Promise<ScenarioResult> {
    const samples = context.quick ? 100 : 1_000;
    const world = await startWorld({ mode: "tcp", pods: 2, base: 61 });
    let ack: AckSamples;
    let first: FirstRequestSamples;
    try {
      // The Service starts with both pods: make A its only endpoint first.
      const start = appliedWith(world, world.pods[0]!.ip);
      world.setEndpoints([{ ip: world.pods[0]!.ip }]);
      await start;
      ack = await measureAck(world, samples, context.log);
      context.log(`latency (a): p50 ${formatMs(summarize(ack.total).p50)}`);
      first = await measureFirstRequest(
        {
          port: world.port, a: world.pods[0]!, b: world.pods[1]!,
          setEndpoint: (ip) => world.setEndpoints([{ ip }]),
          acked: (ip) => appliedWith(world, ip),
          settled: async () => {},
        },
        samples, context.log, "(b)",
      );
      context.log(`latency (b): p50 ${formatMs(summarize(first.latency).p50)}`);
    } finally {
      await world.stop();
    }
    // (c) as the issue measures it: the sidecar as `kube-haproxy run`, at 1 Service and at a
    // realistic size, each change read from the sidecar's own marks (latency-process.ts).
    const sizes = [{ services: 1, perService: 1 }, context.quick ? { services: 200, perService: 10 } : LARGE];
    const processAck: ProcessAckSamples[] = [];
    for (const size of sizes) {
      const label = `(c, ${size.services} × ${size.perService})`;
      processAck.push(await measureProcessAck({ ...size, samples, warmup: WARMUP, log: context.log, label }));
      context.log(`latency ${label}: p50 ${formatMs(summarize(processAck.at(-1)!.total).p50)} p99 ${formatMs(summarize(processAck.at(-1)!.total).p99)}`);
    }
    const separate = await measureSeparateProcess(samples, context.log);
    context.log(`latency (c): p50 ${formatMs(summarize(separate.latency).p50)}`);
    const s = {
      ack: summarize(ack.total),
      watch: summarize(ack.watch),
      proxier: summarize(ack.proxier),
      engine: summarize(ack.engine),
      firstRequest: summarize(first.latency),
      ackDuringProbe: summarize(first.ack),
      requests: summarize(first.requests),
      firstRequestSent: summarize(first.sent),
      separateProcess: summarize(separate.latency),
      separatePolls: summarize(separate.polls),
      separatePollMs: summarize(separate.pollMs),
      separateFirstRequest: summarize(separate.firstRequest.latency),
    };
    const row = (name: string, x: Summary, targetMs?: number): string[] => [
      name, String(x.count), formatMs(x.p50), formatMs(x.p90), formatMs(x.p99), formatMs(x.max),
      targetMs === undefined ? "–" : `≤ ${targetMs} ms`, targetMs === undefined ? "–" : x.p99 <= targetMs ? "met" : "missed",
    ];
    return {
      title: "Single-change latency, API write → HAProxy (1 Service, tcp, its only endpoint replaced: pod A ↔ pod B)",
      columns: ["measure", "samples", "p50", "p90", "p99", "max", "target p99", "p99 vs target"],
      rows: [
        row("(a) API write → engine applied (HAProxy ack), nothing else running", s.ack, 1),
        row("  (a1) API write → watch event reaches the proxier", s.watch),
        row("  (a2) proxier: translate + engine.setBackend", s.proxier),
        row("  (a3) setBackend → applied (schedule, plan, runtime API round trip)", s.engine),
        row("(b) API write → first request served by the new pod (new connection per request)", s.firstRequest, 2),
        row("  (b, same samples) API write → engine applied, probe loop running", s.ackDuringProbe),
        ...processAck.flatMap((c, i) => {
          const size = `${sizes[i]!.services.toLocaleString("en-US")} Service${sizes[i]!.services === 1 ? "" : "s"} × ${sizes[i]!.perService}`;
          return [
            row(`(c) sidecar as its own process (\`kube-haproxy run\`), ${size}: API write → HAProxy's last reply read by the sidecar`, summarize(c.total), 2),
            row("  (c1) API write → the watch bytes arrive in the sidecar", summarize(c.arrive)),
            row("  (c2) those bytes → commands written to HAProxy (TLS, parse, translate, plan)", summarize(c.work)),
            row("  (c3) commands written → HAProxy's last reply read", summarize(c.haproxy)),
            row("  (c, raw) same moments, no product code: a write → a bare process → one HAProxy command → its reply", summarize(c.raw)),
          ];
        }),
        row("(c, poll) the issue's method, 1 Service: API write → slot ready in `show servers state` polled back to back", s.separateProcess),
        row("  (c, poll) the same setup: API write → first request served by the new pod, as (b)", s.separateFirstRequest),
      ],
      notes: [
        `(a) and (b) are measured one after the other, never together; ${WARMUP} warm-up samples of each are dropped; ${SPACING_MS} ms pause between samples. One process holds the fake API server (HTTPS watch), the informers, the sidecar and the loopback pods; HAProxy is its own process.`,
        `(a1)+(a2)+(a3) = (a) per sample: (a1) is the API server writing the watch line, TLS, undici and client-node's line parsing up to the informer's event; (a2) is the proxier's synchronous work; (a3) is the data plane's flush (run by its runner at the next turn of the event loop, so one watch chunk's events join it), planning, the pipelined write and HAProxy's replies.`,
        `(b): the probe sends requests one at a time, each on a new connection, p50 ${s.requests.p50} / max ${s.requests.max} requests per sample; the request the new pod answered was sent p50 ${formatMs(s.firstRequestSent.p50)} / p99 ${formatMs(s.firstRequestSent.p99)} after the write, so (b) is late by up to one request's round trip (p50 ${formatMs(summarize(first.latency.map((x, i) => x - first.sent[i]!)).p50)} here); answers from the old pod after the write: ${first.oldAfterWrite} in all, of which ${first.oldAfterAck} on connections opened after the engine's "applied" (must be 0); failed requests (no answer): ${first.errors}, of which ${first.errorsAfterAck} after "applied".`,
        ...processAck.map((c, i) => `(c) ${sizes[i]!.services} × ${sizes[i]!.perService}: ${c.total.length} samples (${c.incomplete} with incomplete marks left out); the fake API server's upsert (in (c1)) p50 ${formatMs(summarize(c.api).p50)} / p99 ${formatMs(summarize(c.api).p99)}; the raw relay's wake-up alone p50 ${formatMs(summarize(c.rawWake).p50)} / p99 ${formatMs(summarize(c.rawWake).p99)}; ${c.gcOverlapped} samples overlapped a GC pause of the sidecar (p99 of the others ${formatMs(summarize(c.totalWithoutGc).p99)}, max ${formatMs(summarize(c.totalWithoutGc).max)}); GC pauses during the samples: ${c.gcPauses.length}${c.gcPauses.length ? `, longest ${formatMs(Math.max(...c.gcPauses))}` : ""}.`),
        `(c): per sample the API write, then ${"15 ms"} with nothing running in the bench, then one \`show servers state\` checks the change is in HAProxy; the time is the sidecar's own mark of HAProxy's last reply (a preload, bench/lib/tail-marks.ts, records timestamps on the monotonic clock both processes share). (c, raw) alternates with (c), sample by sample: what the machine alone costs the same hops at the same moments (bench/lib/raw-relay.ts).`,
        `(c, poll): \`show servers state <backend>\` polled back to back on one prompt-mode connection of the bench's own, p50 ${s.separatePolls.p50} polls per sample at ${formatMs(s.separatePollMs.p50)} a poll (median): (c) is late by up to one poll; it includes HAProxy applying the commands but not the sidecar reading HAProxy's replies.`,
        `(c), first request: ${separate.firstRequest.oldAfterWrite} answers from the old pod after the write, ${separate.firstRequest.errors} failed requests; the request the new pod answered was sent p50 ${formatMs(summarize(separate.firstRequest.sent).p50)} after the write.`,
        ...(first.errorTexts.length ? [`(b) errors: ${[...new Set(first.errorTexts)].join("; ")}`] : []),
      ],
      json: {
        samples,
        warmup: WARMUP,
        spacingMs: SPACING_MS,
        summaries: s,
        firstRequest: { oldAfterWrite: first.oldAfterWrite, oldAfterAck: first.oldAfterAck, errors: first.errors, errorsAfterAck: first.errorsAfterAck, errorTexts: first.errorTexts },
        firstRequestTrace: first.trace,
        separateFirstRequest: { trace: separate.firstRequest.trace, oldAfterWrite: separate.firstRequest.oldAfterWrite, errors: separate.firstRequest.errors, errorTexts: separate.firstRequest.errorTexts },
        processAck: processAck.map((c, i) => ({ ...sizes[i], ...c })),
        raw: { separateProcess: separate.latency, separatePolls: separate.polls, separateFirstRequest: separate.firstRequest.latency, separateFirstRequestSent: separate.firstRequest.sent, ack: ack.total, watch: ack.watch, proxier: ack.proxier, engine: ack.engine, firstRequest: first.latency, firstRequestSent: first.sent, ackDuringProbe: first.ack, requests: first.requests },
      },
      files: {
        "latency-cdf.svg": cdfSvg(
          [
            { name: "(a) API write → applied (HAProxy ack), nothing else running", samples: ack.total },
            { name: "(b) API write → first request served by the new pod", samples: first.latency },
            ...processAck.map((c, i) => ({ name: `(c) sidecar in its own process, ${sizes[i]!.services} × ${sizes[i]!.perService}: API write → HAProxy's reply`, samples: c.total })),
            { name: "(c, raw) the same hops, no product code", samples: processAck[0]!.raw },
          ],
          { title: "API write → HAProxy, single endpoint replaced", xLabel: "latency (ms)" },
        ),
      },
    };
  },
};

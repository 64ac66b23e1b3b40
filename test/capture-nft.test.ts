// The capture's nft shell against the real kernel, inside a network namespace of its own:
// install is idempotent and keeps entries, sync applies differences, cleanup leaves nothing
// (and touches nothing else), nft's refusals come back as E_CAPTURE_FAILED. Also measures what
// one Service port costs in the kernel.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  cleanupCapture,
  installCapture,
  readCapture,
  readCaptureState,
  syncCapture,
  updateCapture,
  type CaptureConfig,
  type CaptureEntry,
  type NftOptions,
} from "../src/capture/index.ts";
import { isKubeHaproxyError } from "../src/errors.ts";
import { createLab, netnsTestOptions, run, type Namespace } from "./netns.ts";

const config: CaptureConfig = { listenPorts: { first: 15100, last: 15199 }, serviceCidrs: ["198.18.128.0/17", "fd00:198:18:128::/64"] };

function entry(ip: string, port: number, listenPort: number): CaptureEntry {
  return { ip, port, listenPort };
}

/** `count` distinct IPv4 entries in the Service CIDR, listeners cycling through the range. */
function manyEntries(count: number, port = 80): CaptureEntry[] {
  return Array.from({ length: count }, (_, i) => entry(`198.18.${128 + Math.floor(i / 250)}.${(i % 250) + 1}`, port, 15100 + (i % 100)));
}

async function node(t: { after(fn: () => Promise<void>): void }): Promise<{ ns: Namespace; nft: NftOptions; ruleset: () => Promise<string> }> {
  const lab = await createLab(t);
  const ns = await lab.namespace("nft");
  return { ns, nft: { command: ns.wrap(["nft"]) }, ruleset: () => ns.exec(["nft", "list", "ruleset"]) };
}

/** nft lists a map in its own order. */
function sorted(entries: readonly CaptureEntry[] | undefined): CaptureEntry[] | undefined {
  return entries && [...entries].sort((a, b) => (a.ip === b.ip ? a.port - b.port : (a.ip ?? "") < (b.ip ?? "") ? -1 : 1));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

describe("capture in the kernel (nft)", netnsTestOptions(), () => {
  test("capture twice leaves one set of rules, and keeps the entries already captured", async (t) => {
    const { nft, ruleset } = await node(t);
    assert.deepEqual(await installCapture(config, nft), { kept: 0, dropped: 0 });
    await syncCapture(config, [entry("198.18.128.10", 80, 15100), entry("fd00:198:18:128::a", 443, 15101)], nft);
    const once = await ruleset();
    assert.deepEqual(await installCapture(config, nft), { kept: 2, dropped: 0 });
    assert.equal(await ruleset(), once);
    assert.equal(once.match(/^table /gm)?.length, 1);
    assert.equal(once.match(/redirect to/g)?.length, 4, "prerouting and output, one rule per family");
    assert.match(once, /198\.18\.128\.10 \. 80 : 15100/);
    assert.match(once, /fd00:198:18:128::a \. 443 : 15101/);
  });

  test("capture with a new configuration drops the entries that no longer fit it", async (t) => {
    const { nft } = await node(t);
    await syncCapture(config, [entry("198.18.128.10", 80, 15100), entry("198.18.128.11", 80, 15150), entry("fd00:198:18:128::a", 80, 15101)], nft);
    const narrower: CaptureConfig = { listenPorts: { first: 15100, last: 15120 }, serviceCidrs: ["198.18.128.0/17"] };
    assert.deepEqual(await installCapture(narrower, nft), { kept: 1, dropped: 2 });
    assert.deepEqual(await readCapture(nft), [entry("198.18.128.10", 80, 15100)]);
  });

  test("mesh: NodePorts and addresses outside the Service CIDR go in, come back from the kernel, and change like the rest", async (t) => {
    const { nft, ruleset } = await node(t);
    const mesh: CaptureConfig = { ...config, mesh: { nodePortAddresses: [] } };
    const nodePort = (port: number, listenPort: number): CaptureEntry => ({ port, listenPort });
    await syncCapture(mesh, [entry("198.19.0.1", 80, 15100), nodePort(30080, 15101)], nft);
    assert.match(await ruleset(), /fib daddr type local ip daddr != 127\.0\.0\.0\/8 meta l4proto tcp redirect to :tcp dport map @nodeports/);
    assert.deepEqual(sorted(await readCapture(nft)), [nodePort(30080, 15101), entry("198.19.0.1", 80, 15100)]);
    const changes = await syncCapture(mesh, [entry("198.19.0.1", 80, 15100), nodePort(30080, 15102), nodePort(30081, 15103)], nft);
    assert.deepEqual(changes, { remove: [nodePort(30080, 15101)], add: [nodePort(30080, 15102), nodePort(30081, 15103)] });
    assert.deepEqual(sorted(await readCapture(nft)), [nodePort(30080, 15102), nodePort(30081, 15103), entry("198.19.0.1", 80, 15100)]);
    // Back to local mode: capture keeps only what local mode may hold.
    assert.deepEqual(await installCapture(config, nft), { kept: 0, dropped: 3 });
    assert.doesNotMatch(await ruleset(), /nodeports/);
  });

  test("no-endpoint elements: nft takes the verdict maps, capture keeps what still fits, a verdict changes in one transaction", async (t) => {
    const { nft, ruleset } = await node(t);
    const mesh: CaptureConfig = { ...config, mesh: { nodePortAddresses: [] } };
    await installCapture(mesh, nft);
    const reject = { ip: "198.18.128.10", port: 80, verdict: "reject" } as const;
    await updateCapture(mesh, { remove: [], add: [], noEndpoints: { remove: [], add: [reject, { ip: "198.19.0.1", port: 80, verdict: "drop" }, { port: 30080, verdict: "reject" }] } }, nft);
    assert.match(await ruleset(), /198\.18\.128\.10 \. 80 : goto no-endpoint-reject/);
    await updateCapture(mesh, { remove: [], add: [], noEndpoints: { remove: [{ port: 30080 }], add: [{ port: 30080, verdict: "drop" }] } }, nft);
    const state = async () => ((await readCaptureState(nft))?.noEndpoints ?? []).map((e) => `${e.ip ?? "*"} ${e.port} ${e.verdict}`).sort();
    assert.deepEqual(await state(), ["* 30080 drop", "198.18.128.10 80 reject", "198.19.0.1 80 drop"]);
    assert.deepEqual(await installCapture(mesh, nft), { kept: 0, dropped: 0 });
    assert.deepEqual(await state(), ["* 30080 drop", "198.18.128.10 80 reject", "198.19.0.1 80 drop"], "capture again keeps them");
    await installCapture(config, nft);
    assert.deepEqual(await state(), ["198.18.128.10 80 reject"], "local mode keeps only what it may hold");
  });

  test("sync installs a missing table, then applies only differences", async (t) => {
    const { nft } = await node(t);
    assert.equal(await readCapture(nft), undefined);
    const first = await syncCapture(config, [entry("198.18.128.10", 80, 15100), entry("198.18.128.11", 80, 15101)], nft);
    assert.equal(first.add.length, 2);
    const second = await syncCapture(config, [entry("198.18.128.11", 80, 15102), entry("FD00:198:18:128::B", 80, 15103)], nft);
    assert.deepEqual(second, {
      remove: [entry("198.18.128.10", 80, 15100), entry("198.18.128.11", 80, 15101)],
      add: [entry("198.18.128.11", 80, 15102), entry("fd00:198:18:128::b", 80, 15103)],
    });
    assert.deepEqual(sorted(await readCapture(nft)), [entry("198.18.128.11", 80, 15102), entry("fd00:198:18:128::b", 80, 15103)]);
    assert.deepEqual(await syncCapture(config, [entry("198.18.128.11", 80, 15102), entry("fd00:198:18:128::b", 80, 15103)], nft), { remove: [], add: [] });
  });

  test("cleanup leaves nothing of ours and nothing else touched; twice is fine", async (t) => {
    const { ns, nft, ruleset } = await node(t);
    await ns.exec(["nft", "-f", "-"], "table ip someone-else {\n\tchain c {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n}\n");
    const before = await ruleset();
    await syncCapture(config, manyEntries(3), nft);
    assert.notEqual(await ruleset(), before);
    await cleanupCapture(nft);
    assert.equal(await ruleset(), before);
    assert.equal(await readCapture(nft), undefined);
    await cleanupCapture(nft);
    assert.equal(await ruleset(), before);
  });

  test("nft's refusal is an E_CAPTURE_FAILED carrying nft's words; nothing is half-applied", async (t) => {
    const { nft } = await node(t);
    await syncCapture(config, [entry("198.18.128.10", 80, 15100)], nft);
    // Stale picture of what is applied: removing an element that is not there fails the whole transaction.
    const stale = updateCapture(config, { remove: [entry("198.18.128.99", 80, 15100)], add: [entry("198.18.128.12", 80, 15101)] }, nft);
    await assert.rejects(stale, (error: unknown) => isKubeHaproxyError(error, "E_CAPTURE_FAILED") && /No such file or directory/.test(error.message));
    assert.deepEqual(await readCapture(nft), [entry("198.18.128.10", 80, 15100)]);
    const missing = readCapture({ command: ["/nonexistent/nft"] });
    await assert.rejects(missing, (error: unknown) => isKubeHaproxyError(error, "E_CAPTURE_FAILED") && /not found \(the nftables package provides nft\)/.test(error.message));
  });

  test("mesh: source ranges go in, read back as written, change in place, close, and go; a /32 and a /128 too", async (t) => {
    const { nft, ruleset } = await node(t);
    const mesh: CaptureConfig = { ...config, mesh: { nodePortAddresses: [] } };
    const lb = (sourceRanges?: string[]): CaptureEntry => ({ ...entry("198.18.201.1", 80, 15100), ...(sourceRanges ? { sourceRanges } : {}) });
    const lb6 = { ...entry("fd00:198:18:201::1", 80, 15101), sourceRanges: ["fd00:198:18:50::/64", "fd00:198:18:9::7/128"] };
    const read = async () => sorted(await readCapture(nft));
    await syncCapture(mesh, [lb(["198.18.50.0/24", "198.18.9.7/32"]), lb6, entry("198.18.128.10", 80, 15102)], nft);
    assert.deepEqual(await read(), sorted([lb(["198.18.50.0/24", "198.18.9.7/32"]), lb6, entry("198.18.128.10", 80, 15102)]));
    assert.match(await ruleset(), /ip daddr \. tcp dport @restricted-ipv4 ip daddr \. tcp dport \. ip saddr != @allowed-ipv4 drop/);
    for (const ranges of [["198.18.9.0/24"], [], undefined]) {
      const changes = await syncCapture(mesh, [lb(ranges), lb6, entry("198.18.128.10", 80, 15102)], nft);
      assert.equal(changes.add.length, 1, "only the changed entry");
      assert.deepEqual((await read())?.find((e) => e.ip === "198.18.201.1"), lb(ranges));
    }
    assert.doesNotMatch(await ruleset(), /198\.18\.201\.1 \. 80 \. /, "no range left behind");
    assert.deepEqual(await installCapture(mesh, nft), { kept: 3, dropped: 0 });
    assert.deepEqual(await read(), sorted([lb(), lb6, entry("198.18.128.10", 80, 15102)]));
  });

  test("cost of a Service port in the kernel: one entry, 1,000 entries in one transaction", async (t) => {
    const { ns, nft } = await node(t);
    await installCapture(config, nft);
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const start = performance.now();
      await fn();
      return performance.now() - start;
    };
    const spawnOnly: number[] = [];
    const oneEntry: number[] = [];
    const single = manyEntries(20, 8080);
    for (let i = 0; i < single.length; i++) {
      spawnOnly.push(await time(() => run(ns.wrap(["true"]))));
      oneEntry.push(await time(() => updateCapture(config, { remove: [], add: [single[i]!] }, nft)));
    }
    const thousand = manyEntries(1_000);
    const addThousand = await time(() => updateCapture(config, { remove: [], add: thousand }, nft));
    let read: CaptureEntry[] | undefined;
    const readBack = await time(async () => (read = await readCapture(nft)));
    assert.equal(read?.length, 1_020);
    const removeThousand = await time(() => updateCapture(config, { remove: thousand, add: [] }, nft));
    assert.deepEqual(sorted(await readCapture(nft)), sorted(single));
    t.diagnostic(
      `median of 20: spawn "ip netns exec <ns> true" ${median(spawnOnly).toFixed(1)} ms, add one entry ${median(oneEntry).toFixed(1)} ms; ` +
        `add 1,000 in one transaction ${addThousand.toFixed(1)} ms, read 1,020 back ${readBack.toFixed(1)} ms, remove 1,000 ${removeThousand.toFixed(1)} ms`,
    );
  });
});

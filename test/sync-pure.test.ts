// Slot assignment, planning, the growth policy and the render layout: pure functions, tables of cases.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AppliedState } from "../src/dataplane/applied.ts";
import { applyChange, layoutBackend, planBackend, planBackendSync, type AppliedSlot } from "../src/dataplane/planner.ts";
import { parseServersState } from "../src/haproxy/servers-state.ts";
import { assignSlots, slotCapacity, slotRange } from "../src/dataplane/slots.ts";
import { sameStructureFields, structureOf, type Backend, type Endpoint } from "../src/model.ts";
import { draining, makeBackend, ready } from "./helpers.ts";

describe("assignSlots", () => {
  test("fills from the lowest slot", () => {
    const { assignment, overflow } = assignSlots(new Map(), ["a", "b", "c"], slotRange(4));
    assert.deepEqual([...assignment], [["a", 1], ["b", 2], ["c", 3]]);
    assert.deepEqual(overflow, []);
  });

  test("keeps existing endpoints in place and reuses freed slots", () => {
    const previous = new Map([["a", 1], ["b", 2], ["c", 3]]);
    const { assignment } = assignSlots(previous, ["c", "d", "a"], slotRange(4));
    assert.equal(assignment.get("a"), 1);
    assert.equal(assignment.get("c"), 3);
    assert.equal(assignment.get("d"), 2, "d takes b's freed slot");
  });

  test("reports overflow and keeps what fits", () => {
    const { assignment, overflow } = assignSlots(new Map([["x", 2]]), ["a", "x", "b", "c"], slotRange(2));
    assert.deepEqual([...assignment].sort(), [["a", 1], ["x", 2]]);
    assert.deepEqual(overflow, ["b", "c"]);
  });

  test("duplicates are assigned once", () => {
    const { assignment, overflow } = assignSlots(new Map(), ["a", "a", "b"], slotRange(1));
    assert.deepEqual([...assignment], [["a", 1]]);
    assert.deepEqual(overflow, ["b"]);
  });

  test("a slot beyond a shrunken capacity is reassigned", () => {
    const { assignment } = assignSlots(new Map([["a", 8]]), ["a"], slotRange(4));
    assert.equal(assignment.get("a"), 1);
  });

  test("unchanged input gives the same assignment", () => {
    const first = assignSlots(new Map(), ["a", "b", "c"], slotRange(8)).assignment;
    assert.deepEqual([...assignSlots(first, ["a", "b", "c"], slotRange(8)).assignment], [...first]);
  });
});

test("slotCapacity: at least minSlots, a quarter of headroom, multiples of 8", () => {
  assert.equal(slotCapacity(0, 16), 16);
  assert.equal(slotCapacity(12, 16), 16);
  assert.equal(slotCapacity(13, 16), 24);
  assert.equal(slotCapacity(100, 16), 128);
  assert.equal(slotCapacity(101, 16), 128);
  assert.equal(slotCapacity(1_000, 8), 1_256);
  assert.equal(slotCapacity(3, 1), 8);
  assert.equal(slotCapacity(0, 8), 8);
  assert.equal(slotCapacity(3, 4), 4, "the least asked for, when it holds the headroom");
  assert.equal(slotCapacity(4, 4), 8);
});

describe("planBackend", () => {
  const maint: AppliedSlot = { ip: "0.0.0.0", port: 0, state: "maint" };
  const slots = [1, 2, 3];
  const applied = (...entries: [number, AppliedSlot][]): Map<number, AppliedSlot> => {
    const map = new Map<number, AppliedSlot>(slots.map((s) => [s, maint]));
    for (const [slot, value] of entries) map.set(slot, value);
    return map;
  };
  const desired = (...entries: [number, Endpoint][]): Map<number, Endpoint> => new Map(entries);

  test("new endpoint: address, then ready", () => {
    assert.deepEqual(planBackend(slots, applied(), desired([2, ready("10.0.0.1", 80)])), [
      { kind: "addr", slot: 2, ip: "10.0.0.1", port: 80 },
      { kind: "state", slot: 2, state: "ready" },
    ]);
  });

  test("unchanged: nothing", () => {
    const have = applied([1, { ip: "10.0.0.1", port: 80, state: "ready" }]);
    assert.deepEqual(planBackend(slots, have, desired([1, ready("10.0.0.1", 80)])), []);
  });

  test("terminating but serving: drain only", () => {
    const have = applied([1, { ip: "10.0.0.1", port: 80, state: "ready" }]);
    assert.deepEqual(planBackend(slots, have, desired([1, draining("10.0.0.1", 80)])), [{ kind: "state", slot: 1, state: "drain" }]);
  });

  test("gone: maint, address kept", () => {
    const have = applied([3, { ip: "10.0.0.1", port: 80, state: "drain" }]);
    assert.deepEqual(planBackend(slots, have, desired()), [{ kind: "state", slot: 3, state: "maint" }]);
  });

  test("reused maint slot with the same address: state only", () => {
    const have = applied([1, { ip: "10.0.0.1", port: 80, state: "maint" }]);
    assert.deepEqual(planBackend(slots, have, desired([1, ready("10.0.0.1", 80)])), [{ kind: "state", slot: 1, state: "ready" }]);
  });

  test("port change alone is an addr command", () => {
    const have = applied([1, { ip: "10.0.0.1", port: 80, state: "ready" }]);
    assert.deepEqual(planBackend(slots, have, desired([1, ready("10.0.0.1", 81)])), [{ kind: "addr", slot: 1, ip: "10.0.0.1", port: 81 }]);
  });

  test("health-checked: a serving slot that gets another address goes through maint (a clean check state)", () => {
    const have = applied([1, { ip: "10.0.0.1", port: 80, state: "ready" }], [2, { ip: "10.0.0.2", port: 80, state: "maint" }]);
    const want = desired([1, ready("10.0.0.9", 80)], [2, draining("10.0.0.8", 80)]);
    assert.deepEqual(planBackend(slots, have, want, new Set(), true), [
      { kind: "state", slot: 1, state: "maint" },
      { kind: "addr", slot: 1, ip: "10.0.0.9", port: 80 },
      { kind: "state", slot: 1, state: "ready" },
      { kind: "addr", slot: 2, ip: "10.0.0.8", port: 80 },
      { kind: "state", slot: 2, state: "drain" },
    ]);
    assert.deepEqual(planBackend(slots, have, want), [
      { kind: "addr", slot: 1, ip: "10.0.0.9", port: 80 },
      { kind: "addr", slot: 2, ip: "10.0.0.8", port: 80 },
      { kind: "state", slot: 2, state: "drain" },
    ], "without checks: the address alone");
  });

  test("health-checked: a new dynamic server gets its checks on before it serves", () => {
    assert.deepEqual(planBackend([1, 2], new Map(), desired([2, ready("10.0.0.1", 80)]), new Set([2]), true).filter((c) => c.slot === 2), [
      { kind: "add", slot: 2, ip: "10.0.0.1", port: 80 },
      { kind: "health", slot: 2 },
      { kind: "state", slot: 2, state: "ready" },
    ]);
  });

  test("dynamic slots: created with add, then state; maint first, deleted at the next flush", () => {
    const dynamic = new Set([4]);
    assert.deepEqual(planBackend([1, 2, 3, 4], applied(), desired([4, ready("10.0.0.4", 80)]), dynamic), [
      { kind: "add", slot: 4, ip: "10.0.0.4", port: 80 },
      { kind: "state", slot: 4, state: "ready" },
    ]);
    const serving = applied([4, { ip: "10.0.0.4", port: 80, state: "ready" }]);
    assert.deepEqual(planBackend([1, 2, 3, 4], serving, desired(), dynamic), [{ kind: "state", slot: 4, state: "maint" }]);
    const parked = applied([4, { ip: "10.0.0.4", port: 80, state: "maint" }]);
    assert.deepEqual(planBackend([1, 2, 3, 4], parked, desired(), dynamic), [{ kind: "del", slot: 4 }]);
    assert.equal(applyChange(parked.get(4), { kind: "del", slot: 4 }), undefined);
  });

  test("the new endpoint is ready before the old one goes to maint, whatever their slots", () => {
    const have = applied([1, { ip: "10.0.0.1", port: 80, state: "ready" }]);
    assert.deepEqual(planBackend(slots, have, desired([3, ready("10.0.0.3", 80)])), [
      { kind: "addr", slot: 3, ip: "10.0.0.3", port: 80 },
      { kind: "state", slot: 3, state: "ready" },
      { kind: "state", slot: 1, state: "maint" },
    ]);
  });

  test("applyChange follows the plan to the desired picture", () => {
    const have = applied([1, { ip: "10.0.0.9", port: 80, state: "ready" }]);
    const want = desired([1, ready("10.0.0.1", 80)], [3, draining("10.0.0.3", 81)]);
    for (const change of planBackend(slots, have, want)) have.set(change.slot, applyChange(have.get(change.slot), change)!);
    assert.deepEqual(planBackend(slots, have, want), []);
  });
});

describe("AppliedState", () => {
  const header =
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";
  const row = (server: string, ip: string, admin: number, port: number): string => `3 b 1 ${server} ${ip} 2 ${admin} 1 1 0 1 0 0 8 0 0 0 - ${port} - 0 0 - - 0\n`;
  const state = AppliedState.fromRecords(
    parseServersState(header + row("s2", "10.0.0.2", 4, 80) + row("s1", "10.0.0.1", 5, 80) + row("d5", "10.0.0.5", 4, 80) + row("s3", "10.0.0.2", 5, 80) + row("web", "10.0.0.9", 0, 80)),
  );

  test("reads our slots only, sorted, dynamic ones marked", () => {
    assert.deepEqual(state.slots("b"), [1, 2, 3, 5]);
    assert.deepEqual([...state.dynamic("b")], [5]);
    assert.deepEqual(state.bySlot("b").get(1), { ip: "10.0.0.1", port: 80, state: "maint" });
    assert.equal(state.has("other"), false);
  });

  test("the assignment HAProxy already expresses: serving slots win over maint copies", () => {
    assert.deepEqual([...state.assignment("b")].sort(), [["10.0.0.1:80", 1], ["10.0.0.2:80", 2], ["10.0.0.5:80", 5]]);
  });

  test("records add and del of dynamic servers", () => {
    const copy = AppliedState.fromRecords(parseServersState(header + row("s1", "0.0.0.0", 5, 0)));
    copy.record("b", { kind: "add", slot: 2, ip: "10.0.0.7", port: 81 });
    assert.deepEqual(copy.slots("b"), [1, 2]);
    assert.deepEqual(copy.bySlot("b").get(2), { ip: "10.0.0.7", port: 81, state: "maint" });
    copy.record("b", { kind: "del", slot: 2 });
    assert.deepEqual(copy.slots("b"), [1]);
    assert.equal(copy.dynamic("b").size, 0);
  });
});

describe("planBackendSync: the growth policy", () => {
  const empty: AppliedSlot = { ip: "0.0.0.0", port: 0, state: "maint" };
  const applied = new Map<number, AppliedSlot>([[1, empty], [2, empty]]);
  const endpoints = [ready("10.0.0.1", 80), ready("10.0.0.2", 80), ready("10.0.0.3", 80)];
  const input = { endpoints, previous: new Map<string, number>(), slots: [1, 2], applied, dynamic: new Set<number>() };

  test("slots run out on a growable backend: a dynamic server above the highest slot", () => {
    const plan = planBackendSync({ ...input, growable: true });
    assert.deepEqual(plan.overflow, []);
    assert.deepEqual([...plan.dynamic], [3]);
    assert.deepEqual(plan.changes.filter((c) => c.slot === 3), [
      { kind: "add", slot: 3, ip: "10.0.0.3", port: 80 },
      { kind: "state", slot: 3, state: "ready" },
    ]);
  });

  test("not growable: the overflow is reported and what fits is served", () => {
    const plan = planBackendSync({ ...input, growable: false });
    assert.deepEqual(plan.overflow, ["10.0.0.3:80"]);
    assert.deepEqual(plan.dynamic.size, 0);
    assert.equal(plan.changes.filter((c) => c.kind === "state" && c.state === "ready").length, 2);
  });
});

describe("layoutBackend: what a reload renders", () => {
  const backend = makeBackend("b", [ready("10.0.0.1", 80), ready("10.0.0.2", 80), draining("10.0.0.3", 80)], { minSlots: 4 });

  test("keeps the data plane's slots where they still exist", () => {
    const layout = layoutBackend(backend, new Map([["10.0.0.2:80", 3], ["10.0.0.1:80", 1]]));
    assert.equal(layout.slots, 4);
    assert.deepEqual([...layout.filled].map(([slot, e]) => [slot, e.ip]).sort(), [[1, "10.0.0.1"], [2, "10.0.0.3"], [3, "10.0.0.2"]]);
  });

  test("dynamic servers and far slots fold back into a template sized by slotCapacity", () => {
    const layout = layoutBackend(backend, new Map([["10.0.0.1:80", 1], ["10.0.0.2:80", 40]]));
    assert.equal(layout.slots, 4);
    assert.deepEqual([...layout.filled.keys()].sort(), [1, 2, 3]);
  });
});

describe("sameStructureFields: the fast path of the desired state's structure check (issue 14)", () => {
  const base = makeBackend("default:web:80", [], { binds: [{ address: "10.96.0.1", port: 80 }], healthCheck: { intervalMs: 500 }, affinityTimeoutSeconds: 60 });
  test("an endpoint change with the same binds array: same structure, not built again", () => {
    const next = { ...base, endpoints: [ready("10.0.0.1", 80)] };
    assert.equal(sameStructureFields(base, next), true);
    assert.equal(structureOf(base), structureOf(next));
  });
  test("any field structureOf reads, changed: not the same (structureOf decides then)", () => {
    const changed: Backend[] = [
      { ...base, mode: "http" },
      { ...base, algorithm: "leastconn" },
      { ...base, binds: [{ address: "10.96.0.1", port: 81 }] },
      { ...base, affinityTimeoutSeconds: 61 },
      { ...base, healthCheck: { intervalMs: 600 } },
    ];
    for (const backend of changed) {
      assert.notEqual(structureOf(backend), structureOf(base));
      assert.equal(sameStructureFields(base, backend), false, JSON.stringify(backend));
    }
  });
});

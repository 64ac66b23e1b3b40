// The no-endpoint part of the capture, pure: Service ports without endpoints in verdict maps
// (reject: a TCP reset; drop), matched in the filter hooks after every NAT chain; their element
// changes; and reading them back from nft's JSON.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { renderChanges, renderRuleset, type CaptureConfig } from "../src/capture/index.ts";
import { parseCaptureState } from "../src/capture/nft-json.ts";
import { isKubeHaproxyError, type ErrorCode } from "../src/errors.ts";

const dualStack: CaptureConfig = { listenPorts: { first: 15100, last: 15163 }, serviceCidrs: ["198.18.128.0/20", "fd00:198:18:128::/112"] };
const mesh: CaptureConfig = { ...dualStack, mesh: { nodePortAddresses: ["198.18.9.0/24"] } };

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => isKubeHaproxyError(error, code) && (message === undefined || message.test(error.message)));
}

function chain(text: string, name: string): string[] {
  return new RegExp(`\\tchain ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(text)![1]!.trim().split("\n").map((line) => line.trim());
}

describe("no-endpoint maps in the ruleset", () => {
  test("elements sorted and canonical, reject as a goto to the reject chain, drop as drop", () => {
    const text = renderRuleset(dualStack, [], [
      { ip: "FD00:198:18:128:0::A", port: 80, verdict: "drop" },
      { ip: "198.18.128.11", port: 443, verdict: "reject" },
      { ip: "198.18.128.10", port: 80, verdict: "reject" },
    ]);
    assert.match(text, /\tmap no-endpoint-ipv4 \{\n\t\ttype ipv4_addr \. inet_service : verdict\n\t\telements = \{\n\t\t\t198\.18\.128\.10 \. 80 : goto no-endpoint-reject,\n\t\t\t198\.18\.128\.11 \. 443 : goto no-endpoint-reject\n\t\t\}\n\t\}\n/);
    assert.match(text, /\tmap no-endpoint-ipv6 \{\n\t\ttype ipv6_addr \. inet_service : verdict\n\t\telements = \{\n\t\t\tfd00:198:18:128::a \. 80 : drop\n\t\t\}\n\t\}\n/);
    assert.deepEqual(chain(text, "no-endpoint-reject"), ["reject with tcp reset"]);
    for (const hook of ["input", "forward", "output"]) {
      assert.deepEqual(chain(text, `no-endpoint-${hook}`), [
        `type filter hook ${hook} priority -10; policy accept;`,
        "ct state new meta l4proto tcp ip daddr . tcp dport vmap @no-endpoint-ipv4",
        "ct state new meta l4proto tcp ip6 daddr . tcp dport vmap @no-endpoint-ipv6",
      ], hook);
    }
  });

  test("mesh: NodePorts without endpoints in input only, where NodePorts are captured (--nodeport-addresses)", () => {
    const text = renderRuleset(mesh, [], [{ port: 30080, verdict: "drop" }, { ip: "198.18.200.1", port: 80, verdict: "reject" }]);
    assert.match(text, /\tmap no-endpoint-nodeports \{\n\t\ttype inet_service : verdict\n\t\telements = \{\n\t\t\t30080 : drop\n\t\t\}\n\t\}\n/);
    assert.ok(chain(text, "no-endpoint-input").includes("ct state new meta l4proto tcp fib daddr type local ip daddr { 198.18.9.0/24 } tcp dport vmap @no-endpoint-nodeports"));
    assert.ok(!chain(text, "no-endpoint-input").some((rule) => rule.includes("ip6 daddr {")), "no IPv6 NodePort rule when --nodeport-addresses names IPv4 only");
    for (const hook of ["forward", "output"]) assert.ok(!chain(text, `no-endpoint-${hook}`).some((rule) => rule.includes("nodeports")), hook);
    assert.match(text, /198\.18\.200\.1 \. 80 : goto no-endpoint-reject/);
  });

  test("refused: a key with two verdicts, a bad verdict, addresses the capture would refuse, NodePorts outside mesh", () => {
    throwsCode(() => renderRuleset(dualStack, [], [{ ip: "198.18.128.10", port: 80, verdict: "reject" }, { ip: "198.18.128.10", port: 80, verdict: "drop" }]), "E_INVALID_IDENTIFIER", /two verdicts/);
    throwsCode(() => renderRuleset(dualStack, [], [{ ip: "198.18.128.10", port: 80, verdict: "accept" as never }]), "E_INVALID_IDENTIFIER", /verdict/);
    throwsCode(() => renderRuleset(dualStack, [], [{ ip: "198.19.0.1", port: 80, verdict: "reject" }]), "E_INVALID_IDENTIFIER", /outside the ipv4 service CIDR/);
    throwsCode(() => renderRuleset(dualStack, [], [{ port: 30080, verdict: "reject" }]), "E_INVALID_IDENTIFIER", /mesh mode/);
    throwsCode(() => renderRuleset(mesh, [], [{ ip: "127.0.0.1", port: 80, verdict: "reject" }]), "E_INVALID_IDENTIFIER", /loopback/);
  });
});

describe("no-endpoint element changes", () => {
  test("one transaction with the capture's: removals before additions, a changed verdict removed and added again", () => {
    const text = renderChanges(mesh, {
      remove: [{ ip: "198.18.128.12", port: 80, listenPort: 15101 }],
      add: [],
      noEndpoints: {
        remove: [{ ip: "198.18.128.10", port: 80 }, { port: 30080 }],
        add: [{ ip: "198.18.128.10", port: 80, verdict: "drop" }, { ip: "198.18.128.12", port: 80, verdict: "reject" }],
      },
    });
    assert.equal(text, [
      "delete element inet kube-haproxy captured-ipv4 { 198.18.128.12 . 80 }",
      "delete element inet kube-haproxy no-endpoint-ipv4 { 198.18.128.10 . 80 }",
      "delete element inet kube-haproxy no-endpoint-nodeports { 30080 }",
      "add element inet kube-haproxy no-endpoint-ipv4 { 198.18.128.10 . 80 : drop, 198.18.128.12 . 80 : goto no-endpoint-reject }",
      "",
    ].join("\n"));
    assert.equal(renderChanges(dualStack, { remove: [], add: [], noEndpoints: { remove: [], add: [] } }), "");
    throwsCode(() => renderChanges(dualStack, { remove: [], add: [], noEndpoints: { remove: [{ port: 30080 }], add: [] } }), "E_INVALID_IDENTIFIER", /no such map/);
  });
});

describe("reading no-endpoint elements back", () => {
  test("from nft's JSON, beside the capture's entries", () => {
    const json = JSON.stringify({
      nftables: [
        { map: { name: "captured-ipv4", elem: [[{ concat: ["198.18.128.10", 80] }, 15100]] } },
        { map: { name: "no-endpoint-ipv6", elem: [[{ concat: ["fd00:198:18:128::a", 80] }, { goto: { target: "no-endpoint-reject" } }]] } },
        { map: { name: "no-endpoint-nodeports", elem: [[30080, { drop: null }]] } },
        { map: { name: "no-endpoint-ipv4" } },
      ],
    });
    assert.deepEqual(parseCaptureState(json), {
      entries: [{ ip: "198.18.128.10", port: 80, listenPort: 15100 }],
      noEndpoints: [{ ip: "fd00:198:18:128::a", port: 80, verdict: "reject" }, { port: 30080, verdict: "drop" }],
    });
  });

  for (const [name, elem] of [
    ["an unknown verdict", [[30080, { accept: null }]]],
    ["a goto elsewhere", [[30080, { goto: { target: "somewhere" } }]]],
    ["a bad key", [[{ concat: ["not an ip", 80] }, { drop: null }]]],
    ["not a pair", [[30080]]],
  ] as const) {
    test(`unreadable: ${name}`, () => {
      const json = JSON.stringify({ nftables: [{ map: { name: "no-endpoint-nodeports", elem } }] });
      assert.throws(() => parseCaptureState(json), (error: unknown) => isKubeHaproxyError(error, "E_CAPTURE_FAILED") || isKubeHaproxyError(error, "E_INVALID_IDENTIFIER"));
    });
  }
});

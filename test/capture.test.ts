// The capture's pure parts: the ruleset text (golden), element changes, the checks that keep
// anything but canonical addresses and integers out of nft's input, and reading nft's JSON.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { diffEntries, renderChanges, renderCleanup, renderRuleset, type CaptureConfig, type CaptureEntry } from "../src/capture/index.ts";
import { parseListTable } from "../src/capture/nft-json.ts";
import { isKubeHaproxyError, type ErrorCode } from "../src/errors.ts";

const dualStack: CaptureConfig = { listenPorts: { first: 15100, last: 15163 }, serviceCidrs: ["198.18.128.0/20", "fd00:198:18:128::/112"] };

function entry(ip: string, port: number, listenPort: number): CaptureEntry {
  return { ip, port, listenPort };
}

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => isKubeHaproxyError(error, code) && (message === undefined || message.test(error.message)));
}

describe("renderRuleset", () => {
  test("dual stack, REDIRECT: sorted canonical elements, both hooks, the guard", () => {
    const text = renderRuleset(dualStack, [
      entry("198.18.128.11", 443, 15101),
      entry("FD00:198:18:128:0::A", 80, 15102),
      entry("198.18.128.10", 80, 15100),
      entry("198.18.128.10", 80, 15100), // the same entry twice is one element
    ]);
    assert.equal(
      text,
      `add table inet kube-haproxy
delete table inet kube-haproxy
table inet kube-haproxy {
	map captured-ipv4 {
		type ipv4_addr . inet_service : inet_service
		elements = {
			198.18.128.10 . 80 : 15100,
			198.18.128.11 . 443 : 15101
		}
	}
	map captured-ipv6 {
		type ipv6_addr . inet_service : inet_service
		elements = {
			fd00:198:18:128::a . 80 : 15102
		}
	}
	chain prerouting {
		type nat hook prerouting priority -110; policy accept;
		meta l4proto tcp redirect to : ip daddr . tcp dport map @captured-ipv4
		meta l4proto tcp redirect to : ip6 daddr . tcp dport map @captured-ipv6
	}
	chain output {
		type nat hook output priority -110; policy accept;
		meta l4proto tcp redirect to : ip daddr . tcp dport map @captured-ipv4
		meta l4proto tcp redirect to : ip6 daddr . tcp dport map @captured-ipv6
	}
	chain input {
		type filter hook input priority -10; policy accept;
		tcp dport 15100-15163 ct status & dnat == 0 reject with tcp reset
	}
	map no-endpoint-ipv4 {
		type ipv4_addr . inet_service : verdict
	}
	map no-endpoint-ipv6 {
		type ipv6_addr . inet_service : verdict
	}
	chain no-endpoint-reject {
		reject with tcp reset
	}
	chain no-endpoint-input {
		type filter hook input priority -10; policy accept;
		ct state new meta l4proto tcp ip daddr . tcp dport vmap @no-endpoint-ipv4
		ct state new meta l4proto tcp ip6 daddr . tcp dport vmap @no-endpoint-ipv6
	}
	chain no-endpoint-forward {
		type filter hook forward priority -10; policy accept;
		ct state new meta l4proto tcp ip daddr . tcp dport vmap @no-endpoint-ipv4
		ct state new meta l4proto tcp ip6 daddr . tcp dport vmap @no-endpoint-ipv6
	}
	chain no-endpoint-output {
		type filter hook output priority -10; policy accept;
		ct state new meta l4proto tcp ip daddr . tcp dport vmap @no-endpoint-ipv4
		ct state new meta l4proto tcp ip6 daddr . tcp dport vmap @no-endpoint-ipv6
	}
}
`,
    );
  });

  test("IPv4 only, one listener, DNAT to the interface address, no elements yet", () => {
    const text = renderRuleset({ listenPorts: { first: 15001, last: 15001 }, serviceCidrs: ["198.18.128.0/20"], listenAddresses: { ipv4: "198.18.9.1" } });
    assert.equal(
      text.replace(/\tmap no-endpoint-ipv4 [\s\S]*(?=\}\n$)/, ""), // the no-endpoint part: test/capture-no-endpoints.test.ts
      `add table inet kube-haproxy
delete table inet kube-haproxy
table inet kube-haproxy {
	map captured-ipv4 {
		type ipv4_addr . inet_service : inet_service
	}
	chain prerouting {
		type nat hook prerouting priority -110; policy accept;
		meta l4proto tcp dnat ip to 198.18.9.1 : ip daddr . tcp dport map @captured-ipv4
	}
	chain output {
		type nat hook output priority -110; policy accept;
		meta l4proto tcp dnat ip to 198.18.9.1 : ip daddr . tcp dport map @captured-ipv4
	}
	chain input {
		type filter hook input priority -10; policy accept;
		tcp dport 15001 ct status & dnat == 0 reject with tcp reset
	}
}
`,
    );
  });

  test("an IPv6 listen address is written in brackets, canonical", () => {
    const text = renderRuleset({ ...dualStack, listenAddresses: { ipv6: "FD00:198:18:9:0:0:0:1" } });
    assert.match(text, /\t\tmeta l4proto tcp dnat ip6 to \[fd00:198:18:9::1\] : ip6 daddr \. tcp dport map @captured-ipv6\n/);
    assert.match(text, /\t\tmeta l4proto tcp redirect to : ip daddr \. tcp dport map @captured-ipv4\n/);
  });

  test("cleanup removes the table, and does not fail when it is missing", () => {
    assert.equal(renderCleanup(), "add table inet kube-haproxy\ndelete table inet kube-haproxy\n");
  });
});

describe("diffEntries and renderChanges", () => {
  const applied = [entry("198.18.128.10", 80, 15100), entry("198.18.128.11", 443, 15101), entry("fd00:198:18:128::a", 80, 15102)];
  const cases: { name: string; desired: CaptureEntry[]; remove: CaptureEntry[]; add: CaptureEntry[]; text: string }[] = [
    { name: "nothing changed (non-canonical spelling included)", desired: [...applied.slice(0, 2), entry("FD00:198:18:128::0:A", 80, 15102)], remove: [], add: [], text: "" },
    {
      name: "a Service port added",
      desired: [...applied, entry("198.18.128.12", 8080, 15103)],
      remove: [],
      add: [entry("198.18.128.12", 8080, 15103)],
      text: "add element inet kube-haproxy captured-ipv4 { 198.18.128.12 . 8080 : 15103 }\n",
    },
    {
      name: "Service ports deleted in both families",
      desired: [applied[1]!],
      remove: [entry("198.18.128.10", 80, 15100), entry("fd00:198:18:128::a", 80, 15102)],
      add: [],
      text:
        "delete element inet kube-haproxy captured-ipv4 { 198.18.128.10 . 80 }\n" +
        "delete element inet kube-haproxy captured-ipv6 { fd00:198:18:128::a . 80 }\n",
    },
    {
      name: "a listener changed: removed, then added again, in one transaction",
      desired: [applied[0]!, entry("198.18.128.11", 443, 15110), applied[2]!],
      remove: [entry("198.18.128.11", 443, 15101)],
      add: [entry("198.18.128.11", 443, 15110)],
      text:
        "delete element inet kube-haproxy captured-ipv4 { 198.18.128.11 . 443 }\n" +
        "add element inet kube-haproxy captured-ipv4 { 198.18.128.11 . 443 : 15110 }\n",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const changes = diffEntries(dualStack, applied, c.desired);
      assert.deepEqual(changes, { remove: c.remove, add: c.add });
      assert.equal(renderChanges(dualStack, changes), c.text);
    });
  }

  test("what the kernel holds outside today's CIDR can still be removed, never added", () => {
    const changes = diffEntries(dualStack, [entry("198.19.0.1", 80, 15100)], []);
    assert.equal(renderChanges(dualStack, changes), "delete element inet kube-haproxy captured-ipv4 { 198.19.0.1 . 80 }\n");
    throwsCode(() => renderChanges(dualStack, { remove: [], add: [entry("198.19.0.1", 80, 15100)] }), "E_INVALID_IDENTIFIER", /outside the ipv4 service CIDR/);
  });

  test("a removal in a family that is not captured is refused, not skipped", () => {
    const v4only = { ...dualStack, serviceCidrs: ["198.18.128.0/20"] };
    throwsCode(() => renderChanges(v4only, { remove: [entry("fd00:198:18:128::a", 80, 15100)], add: [] }), "E_INVALID_IDENTIFIER", /no ipv6 service CIDR/);
  });
});

describe("checks before nft", () => {
  const badEntries: [string, CaptureEntry][] = [
    ["a second command after the address", entry("198.18.128.10 } ; flush ruleset", 80, 15100)],
    ["a line break", entry("198.18.128.10\n", 80, 15100)],
    ["a name, not an address", entry("kubernetes.default", 443, 15100)],
    ["an IPv6 zone", entry("fd00:198:18:128::a%eth0", 80, 15100)],
    ["an address outside the service CIDR", entry("198.18.144.1", 80, 15100)],
    ["an IPv4-mapped IPv6 address", entry("::ffff:198.18.128.10", 80, 15100)],
    ["port 0", entry("198.18.128.10", 0, 15100)],
    ["port 65536", entry("198.18.128.10", 65536, 15100)],
    ["a fractional port", entry("198.18.128.10", 80.5, 15100)],
    ["a port as text", entry("198.18.128.10", "80; flush ruleset" as unknown as number, 15100)],
    ["a listener below the range", entry("198.18.128.10", 80, 15099)],
    ["a listener above the range", entry("198.18.128.10", 80, 15164)],
  ];
  for (const [name, bad] of badEntries) {
    test(`entry refused: ${name}`, () => {
      throwsCode(() => renderRuleset(dualStack, [bad]), "E_INVALID_IDENTIFIER");
      throwsCode(() => diffEntries(dualStack, [], [bad]), "E_INVALID_IDENTIFIER");
    });
  }

  test("one address and port with two listeners is refused", () => {
    throwsCode(() => renderRuleset(dualStack, [entry("198.18.128.10", 80, 15100), entry("198.18.128.10", 80, 15101)]), "E_INVALID_IDENTIFIER", /two listeners/);
  });

  const badConfigs: [string, CaptureConfig][] = [
    ["no service CIDR", { ...dualStack, serviceCidrs: [] }],
    ["a prefix too long", { ...dualStack, serviceCidrs: ["198.18.128.0/33"] }],
    ["a prefix that is not a number", { ...dualStack, serviceCidrs: ["198.18.128.0/x"] }],
    ["no prefix", { ...dualStack, serviceCidrs: ["198.18.128.0"] }],
    ["a name for an address", { ...dualStack, serviceCidrs: ["cluster/16"] }],
    ["two IPv4 CIDRs", { ...dualStack, serviceCidrs: ["198.18.128.0/20", "198.18.160.0/20"] }],
    ["a reversed listener range", { ...dualStack, listenPorts: { first: 15163, last: 15100 } }],
    ["listener port 0", { ...dualStack, listenPorts: { first: 0, last: 10 } }],
    ["an IPv6 address as the IPv4 listen address", { ...dualStack, listenAddresses: { ipv4: "fd00:198:18:9::1" } }],
    ["a listen address with a command", { ...dualStack, listenAddresses: { ipv4: "198.18.9.1; flush ruleset" } }],
  ];
  for (const [name, config] of badConfigs) {
    test(`configuration refused: ${name}`, () => throwsCode(() => renderRuleset(config), "E_BAD_OPTION"));
  }
});

describe("parseListTable", () => {
  test("reads the entries of our maps from nft 1.0.6's JSON, canonical", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6", json_schema_version: 1 } },
        { table: { family: "inet", name: "kube-haproxy", handle: 3 } },
        { map: { family: "inet", name: "captured-ipv4", table: "kube-haproxy", type: ["ipv4_addr", "inet_service"], map: "inet_service", elem: [[{ concat: ["198.18.128.10", 80] }, 15100]] } },
        { map: { family: "inet", name: "captured-ipv6", table: "kube-haproxy", type: ["ipv6_addr", "inet_service"], map: "inet_service", elem: [[{ concat: ["FD00:198:18:128:0::a", "80"] }, 15101]] } },
        { map: { family: "inet", name: "someone-elses", elem: [[{ concat: ["198.18.128.99", 1] }, 2]] } },
        { chain: { family: "inet", table: "kube-haproxy", name: "prerouting", type: "nat", hook: "prerouting", prio: -110 } },
      ],
    });
    assert.deepEqual(parseListTable(json), [entry("198.18.128.10", 80, 15100), entry("fd00:198:18:128::a", 80, 15101)]);
  });

  test("an empty map has no elem key", () => {
    assert.deepEqual(parseListTable(JSON.stringify({ nftables: [{ map: { name: "captured-ipv4" } }] })), []);
  });

  const unreadable: [string, string][] = [
    ["not JSON", "Error: something"],
    ["no nftables array", "{}"],
    ["an element without a listener", JSON.stringify({ nftables: [{ map: { name: "captured-ipv4", elem: [{ concat: ["198.18.128.10", 80] }] } }] })],
    ["an interval element", JSON.stringify({ nftables: [{ map: { name: "captured-ipv4", elem: [[{ prefix: { addr: "198.18.128.0", len: 24 } }, 15100]] } }] })],
    ["a port that is not a number", JSON.stringify({ nftables: [{ map: { name: "captured-ipv4", elem: [[{ concat: ["198.18.128.10", "http"] }, 15100]] } }] })],
  ];
  for (const [name, text] of unreadable) {
    test(`unreadable: ${name}`, () => throwsCode(() => parseListTable(text), "E_CAPTURE_FAILED"));
  }
});

describe("mesh: external addresses and NodePorts", () => {
  const mesh: CaptureConfig = { ...dualStack, mesh: { nodePortAddresses: [] } };
  const nodePort = (port: number, listenPort: number): CaptureEntry => ({ port, listenPort });

  test("the NodePort map and its rules: every local address but loopback, after the address maps", () => {
    const text = renderRuleset({ ...mesh, serviceCidrs: ["198.18.128.0/20"] }, [entry("198.18.200.1", 80, 15100), nodePort(30080, 15101)]);
    assert.match(text, /\tmap nodeports \{\n\t\ttype inet_service : inet_service\n\t\telements = \{\n\t\t\t30080 : 15101\n\t\t\}\n\t\}\n/);
    const general = [
      "meta l4proto tcp redirect to : ip daddr . tcp dport map @captured-ipv4",
      "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to : tcp dport map @nodeports",
    ];
    // The node's own connections: its own maps first (eTP Local's short circuit), then the general ones.
    const fromNode = general.map((rule) => rule.replace("@", "@node-"));
    for (const [hook, rules] of [["prerouting", general], ["output", [...fromNode, ...general]]] as const) {
      const chain = new RegExp(`chain ${hook} \\{\\n[^\\n]+\\n([^}]*)\\}`).exec(text)![1]!;
      assert.deepEqual(chain.trim().split("\n").map((line) => line.trim()), rules);
    }
    assert.match(text, /\tmap node-captured-ipv4 \{\n\t\ttype ipv4_addr \. inet_service : inet_service\n\t\}\n\tmap node-nodeports \{/);
  });

  test("--nodeport-addresses: only those CIDRs, per family; DNAT to the --interface address", () => {
    const text = renderRuleset({ ...mesh, mesh: { nodePortAddresses: ["198.18.9.0/24"] }, listenAddresses: { ipv4: "198.18.1.1" } });
    assert.match(text, /\t\tfib daddr type local ip daddr \{ 198\.18\.9\.0\/24 \} meta l4proto tcp dnat ip to 198\.18\.1\.1 : tcp dport map @nodeports\n/);
    assert.doesNotMatch(text, /ip6 daddr [!{]/, "no IPv6 NodePort rule when only IPv4 addresses are named");
    throwsCode(() => renderRuleset({ ...mesh, mesh: { nodePortAddresses: ["198.18.9.0/33"] } }), "E_BAD_OPTION", /nodeport address/);
  });

  test("addresses outside the Service CIDR only in mesh mode, never special ones; NodePorts only in mesh mode", () => {
    assert.equal(
      renderChanges(mesh, { remove: [], add: [entry("198.18.200.1", 80, 15100), nodePort(30080, 15101)] }),
      "add element inet kube-haproxy captured-ipv4 { 198.18.200.1 . 80 : 15100 }\nadd element inet kube-haproxy nodeports { 30080 : 15101 }\n",
    );
    throwsCode(() => renderChanges(dualStack, { remove: [], add: [entry("198.18.200.1", 80, 15100)] }), "E_INVALID_IDENTIFIER", /outside the ipv4 service CIDR/);
    throwsCode(() => renderChanges(dualStack, { remove: [], add: [nodePort(30080, 15101)] }), "E_INVALID_IDENTIFIER", /mesh mode/);
    throwsCode(() => renderChanges(dualStack, { remove: [nodePort(30080, 15101)], add: [] }), "E_INVALID_IDENTIFIER", /mesh mode only/);
    for (const ip of ["127.0.0.1", "0.0.0.0", "169.254.1.1", "224.0.0.1", "::1", "fe80::1", "ff02::1"]) {
      throwsCode(() => renderChanges(mesh, { remove: [], add: [entry(ip, 80, 15100)] }), "E_INVALID_IDENTIFIER", /loopback, link-local/);
    }
  });

  test("loadBalancerSourceRanges: firewall sets and a drop rule before the NAT; changes replace an entry's ranges in one transaction", () => {
    const lb = { ...entry("198.18.201.1", 80, 15100), sourceRanges: ["198.18.50.0/24", "198.18.9.7/32"] };
    const text = renderRuleset(mesh, [lb, { ...entry("fd00::201:1", 80, 15101), sourceRanges: [] }]);
    assert.match(text, /\tset restricted-ipv4 \{\n\t\ttype ipv4_addr \. inet_service\n\t\telements = \{\n\t\t\t198\.18\.201\.1 \. 80\n\t\t\}\n\t\}\n/);
    assert.match(text, /\tset allowed-ipv4 \{\n\t\ttype ipv4_addr \. inet_service \. ipv4_addr\n\t\tflags interval\n\t\telements = \{\n\t\t\t198\.18\.201\.1 \. 80 \. 198\.18\.50\.0\/24,\n\t\t\t198\.18\.201\.1 \. 80 \. 198\.18\.9\.7\/32\n/);
    assert.match(text, /\tset restricted-ipv6 \{[^}]*fd00::201:1 \. 80/, "no range at all: restricted, nothing allowed");
    for (const hook of ["prerouting", "output"]) {
      assert.match(text, new RegExp(`chain firewall-${hook} \\{\\n\\t\\ttype filter hook ${hook} priority -120; policy accept;\\n\\t\\tip daddr \\. tcp dport @restricted-ipv4 ip daddr \\. tcp dport \\. ip saddr != @allowed-ipv4 drop\\n\\t\\tip6 daddr`));
    }
    assert.doesNotMatch(renderRuleset(dualStack), /firewall|restricted/, "local mode has none");
    assert.deepEqual(diffEntries(mesh, [lb], [{ ...lb, sourceRanges: ["198.18.9.0/24"] }]), { remove: [lb], add: [{ ...lb, sourceRanges: ["198.18.9.0/24"] }] });
    assert.equal(
      renderChanges(mesh, { remove: [lb], add: [{ ...lb, sourceRanges: ["198.18.9.0/24"] }] }),
      [
        "delete element inet kube-haproxy captured-ipv4 { 198.18.201.1 . 80 }",
        "delete element inet kube-haproxy restricted-ipv4 { 198.18.201.1 . 80 }",
        "delete element inet kube-haproxy allowed-ipv4 { 198.18.201.1 . 80 . 198.18.50.0/24, 198.18.201.1 . 80 . 198.18.9.7/32 }",
        "add element inet kube-haproxy captured-ipv4 { 198.18.201.1 . 80 : 15100 }",
        "add element inet kube-haproxy restricted-ipv4 { 198.18.201.1 . 80 }",
        "add element inet kube-haproxy allowed-ipv4 { 198.18.201.1 . 80 . 198.18.9.0/24 }",
        "",
      ].join("\n"),
    );
    const bad = (sourceRanges: string[], ip = "198.18.201.1") => () => renderChanges(mesh, { remove: [], add: [{ ...entry(ip, 80, 15100), sourceRanges }] });
    throwsCode(bad(["198.18.50.0/24; flush ruleset"]), "E_INVALID_IDENTIFIER", /ipv4 source range/);
    throwsCode(bad(["fd00::/64"]), "E_INVALID_IDENTIFIER", /ipv4 source range/);
    throwsCode(bad(["198.18.0.0/16", "198.18.50.0/24"]), "E_INVALID_IDENTIFIER", /one inside another/);
    throwsCode(() => renderChanges(mesh, { remove: [], add: [{ ...nodePort(30080, 15101), sourceRanges: [] }] }), "E_INVALID_IDENTIFIER", /NodePort has none/);
  });

  test("the node's own entries (eTP Local's short circuit): maps of their own, mesh only, read back as such", () => {
    const own = (entry: CaptureEntry): CaptureEntry => ({ ...entry, fromNode: true });
    assert.equal(
      renderChanges(mesh, { remove: [], add: [own(entry("198.18.201.2", 80, 15100)), own(nodePort(30082, 15100)), entry("198.18.201.2", 80, 15101)] }),
      [
        "add element inet kube-haproxy captured-ipv4 { 198.18.201.2 . 80 : 15101 }",
        "add element inet kube-haproxy node-captured-ipv4 { 198.18.201.2 . 80 : 15100 }",
        "add element inet kube-haproxy node-nodeports { 30082 : 15100 }",
        "",
      ].join("\n"),
    );
    throwsCode(() => renderChanges(dualStack, { remove: [], add: [own(entry("198.18.128.10", 80, 15100))] }), "E_INVALID_IDENTIFIER", /needs mesh mode/);
    throwsCode(() => renderChanges(dualStack, { remove: [own(entry("198.18.128.10", 80, 15100))], add: [] }), "E_INVALID_IDENTIFIER", /mesh mode only/);
    const json = JSON.stringify({ nftables: [{ map: { name: "node-nodeports", elem: [[30082, 15100]] } }, { map: { name: "captured-ipv4", elem: [[{ concat: ["198.18.201.2", 80] }, 15101]] } }] });
    assert.deepEqual(parseListTable(json), [own(nodePort(30082, 15100)), entry("198.18.201.2", 80, 15101)]);
    assert.deepEqual(diffEntries(mesh, [entry("198.18.201.2", 80, 15101)], [entry("198.18.201.2", 80, 15101), own(entry("198.18.201.2", 80, 15100))]), {
      remove: [],
      add: [own(entry("198.18.201.2", 80, 15100))],
    });
  });

  test("--cluster-cidr: connections from the pod CIDRs take the node's own maps first in prerouting, per family", () => {
    const text = renderRuleset({ ...mesh, mesh: { nodePortAddresses: [], podCidrs: ["198.18.1.0/24", "10.244.0.0/16"] } });
    const prerouting = text.split("chain prerouting {\n")[1]!.split("\n\t}")[0]!.split("\n").slice(1).map((line) => line.trim());
    assert.deepEqual(prerouting.slice(0, 3), [
      "ip saddr { 198.18.1.0/24, 10.244.0.0/16 } meta l4proto tcp redirect to : ip daddr . tcp dport map @node-captured-ipv4",
      "ip saddr { 198.18.1.0/24, 10.244.0.0/16 } fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to : tcp dport map @node-nodeports",
      "meta l4proto tcp redirect to : ip daddr . tcp dport map @captured-ipv4",
    ]);
    assert.doesNotMatch(text, /ip6 saddr \{/, "no IPv6 pod CIDR: no IPv6 rule");
    throwsCode(() => renderRuleset({ ...mesh, mesh: { nodePortAddresses: [], podCidrs: ["10.244.0.0/33"] } }), "E_BAD_OPTION", /cluster \(pod\) CIDR/);
  });

  test("element changes and the kernel's JSON carry NodePorts as port-only elements", () => {
    const changes = diffEntries(mesh, [nodePort(30080, 15101), nodePort(30081, 15102)], [nodePort(30080, 15103), nodePort(30082, 15104)]);
    assert.deepEqual(changes, { remove: [nodePort(30080, 15101), nodePort(30081, 15102)], add: [nodePort(30080, 15103), nodePort(30082, 15104)] });
    const json = JSON.stringify({ nftables: [{ map: { name: "nodeports", elem: [[30080, 15101]] } }, { map: { name: "captured-ipv4", elem: [[{ concat: ["198.18.200.1", 80] }, 15100]] } }] });
    assert.deepEqual(parseListTable(json), [nodePort(30080, 15101), entry("198.18.200.1", 80, 15100)]);
  });
});

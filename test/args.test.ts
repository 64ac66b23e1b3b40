// The command line read strictly (src/args.ts), pure: tables of argv in, values or one error out.

import assert from "node:assert/strict";
import { test } from "node:test";
import { closest, commandUsage, mainUsage, parseArgs, type CommandSpec } from "../src/args.ts";
import { isKubeHaproxyError } from "../src/errors.ts";

const RUN: CommandSpec = {
  name: "run",
  description: "Run it",
  flags: [
    { name: "socket", alias: "backend-addr", description: "The socket", default: "/run/x.sock", env: "KUBE_HAPROXY_SOCKET" },
    { name: "slots", description: "Slots", default: "16" },
    { name: "take-over", description: "Take over", boolean: true },
  ],
};

test("values: --flag value, --flag=value, the alias, booleans, an empty value, the last one wins", () => {
  const cases: [string[], Record<string, string>][] = [
    [[], {}],
    [["--socket", "/a"], { socket: "/a" }],
    [["--socket=/a", "--slots=4"], { socket: "/a", slots: "4" }],
    [["--backend-addr", "127.0.0.1:9"], { socket: "127.0.0.1:9" }],
    [["--take-over"], { "take-over": "true" }],
    [["--take-over=false"], { "take-over": "false" }],
    [["--socket="], { socket: "" }],
    [["--slots", "4", "--slots", "8"], { slots: "8" }],
    [["--socket=-weird"], { socket: "-weird" }],
  ];
  for (const [args, values] of cases) assert.deepEqual(parseArgs(RUN, args), { help: false, values }, args.join(" "));
  for (const args of [["--help"], ["-h"], ["--slot", "--help"]]) assert.deepEqual(parseArgs(RUN, args), { help: true });
  assert.throws(() => parseArgs(RUN, ["--", "--help"]), /unexpected argument "--help"/, "after -- nothing is a flag");
});

test("errors: one E_USAGE line each", () => {
  const cases: [string[], string][] = [
    [["--slot", "4"], "run: unknown flag --slot (did you mean --slots?)"],
    [["--sokcet=/a"], "run: unknown flag --sokcet (did you mean --socket?)"],
    [["--backend"], "run: unknown flag --backend (did you mean --backend-addr?)"],
    [["-socket", "/a"], "run: unknown flag -socket (did you mean --socket?)"],
    [["--zzz"], "run: unknown flag --zzz (see kube-haproxy run --help)"],
    [["--json"], "run: --json is a flag of status, not run (see kube-haproxy run --help)"],
    [["extra"], 'run: unexpected argument "extra" (run takes only flags; see kube-haproxy run --help)'],
    [["-"], 'run: unexpected argument "-" (run takes only flags; see kube-haproxy run --help)'],
    [["--socket"], "run: --socket needs a value (--socket=<value>)"],
    [["--socket", "--slots=3"], "run: --socket needs a value (--socket=<value>)"],
    [["--take-over=yes"], 'run: --take-over takes no value, or =true or =false, not "yes"'],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseArgs(RUN, args, new Map([["json", ["status"]]])), (error) => isKubeHaproxyError(error, "E_USAGE") && error.message === message, args.join(" "));
  }
});

test("closest: typos and cut-short names, nothing far", () => {
  const names = ["slots", "socket", "master-socket", "config", "config-sync-period", "log-level"];
  const cases: [string, string | undefined][] = [
    ["slot", "slots"], ["sltos", "slots"], ["sockte", "socket"], ["confg", "config"], ["config-sync", "config-sync-period"],
    ["log-levle", "log-level"], ["json", undefined], ["x", undefined], ["verbose", undefined],
  ];
  for (const [word, expected] of cases) assert.equal(closest(word, names), expected, word);
});

test("usage: the alias with two dashes, defaults and variables; colour only when asked", () => {
  const text = commandUsage("kube-haproxy", RUN, { color: false });
  assert.equal(text, [
    "Run it",
    "",
    "USAGE",
    "  kube-haproxy run [flags]",
    "",
    "FLAGS",
    "  --socket, --backend-addr <value>  The socket (default: /run/x.sock) [$KUBE_HAPROXY_SOCKET]",
    "  --slots <value>                   Slots (default: 16)",
    "  --take-over                       Take over",
    "",
  ].join("\n"));
  assert.doesNotMatch(mainUsage("kube-haproxy", "about", [RUN], { color: false }), /\x1b/);
  assert.match(commandUsage("kube-haproxy", RUN, { color: true }), /\x1b\[1mUSAGE\x1b\[22m/);
});

// What an operator meets first, through the real CLI in a process of its own: strict flags,
// one-line errors with the right exit code, help, version, what each command loads, and
// commands that end.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import { FLAGS, envName } from "../src/options.ts";
import { writeKubeconfig } from "../src/sim/kubeconfig.ts";
import { HOSTILE_CREDENTIALS, runCli, tempDir } from "./helpers.ts";

const ROOT = join(import.meta.dirname, "..");
const SRC = pathToFileURL(join(ROOT, "src")).href;

function oneLine(text: string): string {
  assert.equal(text.split("\n").length, 2, `one line: ${JSON.stringify(text)}`);
  assert.ok(text.endsWith("\n"));
  return text.trimEnd();
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("unknown flags, stray arguments, flags before the command: one line naming it, the closest flag, exit 2", async () => {
  const cases: [string[], string][] = [
    [["run", "--slot", "4"], "kube-haproxy: run: unknown flag --slot (did you mean --slots?)"],
    [["run", "--sltos=4"], "kube-haproxy: run: unknown flag --sltos (did you mean --slots?)"],
    [["run", "-slots=4"], "kube-haproxy: run: unknown flag -slots (did you mean --slots?)"],
    [["run", "--json"], "kube-haproxy: run: --json is a flag of status, not run (see kube-haproxy run --help)"],
    [["run", "--frobnicate"], "kube-haproxy: run: unknown flag --frobnicate (see kube-haproxy run --help)"],
    [["render", "--master-socket", "/x"], "kube-haproxy: render: --master-socket is a flag of run, not render (see kube-haproxy render --help)"],
    [["run", "4"], 'kube-haproxy: run: unexpected argument "4" (run takes only flags; see kube-haproxy run --help)'],
    [["run", "--", "x"], 'kube-haproxy: run: unexpected argument "x" (run takes only flags; see kube-haproxy run --help)'],
    [["render", "--kubeconfig"], "kube-haproxy: render: --kubeconfig needs a value (--kubeconfig=<value>)"],
    [["render", "--kubeconfig", "--slots=4"], "kube-haproxy: render: --kubeconfig needs a value (--kubeconfig=<value>)"],
    [["status", "--json=yes"], 'kube-haproxy: status: --json takes no value, or =true or =false, not "yes"'],
    [["--slots", "4"], "kube-haproxy: flags follow the command: kube-haproxy run --slots 4 (or render, status); see kube-haproxy --help"],
    [["--kubeconfig=k", "render"], "kube-haproxy: flags follow the command: kube-haproxy render --kubeconfig=k; see kube-haproxy --help"],
    [["rnu"], 'kube-haproxy: unknown command "rnu" (did you mean run? commands: run, render, status, capture, cleanup, demo, version)'],
    [["version", "now"], 'kube-haproxy: version: unexpected argument "now" (version takes only flags; see kube-haproxy version --help)'],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await runCli(args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    assert.equal(stdout, "", args.join(" "));
    assert.equal(oneLine(stderr), message);
  }
});

test("help: each command lists only its own flags, an alias with two dashes, no colours when piped or with NO_COLOR", async () => {
  const main = await runCli(["--help"]);
  assert.equal(main.code, 0, main.stderr);
  assert.match(main.stdout, /^kube-haproxy \d+\.\d+\.\d+: /);
  for (const command of ["run", "render", "status", "demo", "version"]) assert.match(main.stdout, new RegExp(`^  ${command} `, "m"));
  assert.match(main.stdout, /Flags follow the command/);

  const render = await runCli(["render", "--help"]);
  assert.equal(render.code, 0);
  const flagsIn = (text: string): string[] => [...text.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]!);
  assert.deepEqual(flagsIn(render.stdout).filter((f) => ["master-socket", "min-sync-period", "config-sync-period", "haproxy-binary", "take-over"].includes(f)), []);
  assert.ok(flagsIn(render.stdout).includes("timeout") && flagsIn(render.stdout).includes("kubeconfig"));
  const run = await runCli(["run", "-h"]);
  assert.match(run.stdout, /^ {2}--socket, --backend-addr <value> +HAProxy runtime API/m);
  assert.ok(flagsIn(run.stdout).includes("take-over") && !flagsIn(run.stdout).includes("timeout"));
  assert.deepEqual(flagsIn((await runCli(["status", "--help"])).stdout), ["proxy-mode", "socket", "config", "json"]);
  for (const text of [main.stdout, render.stdout, run.stdout, (await runCli(["--help"], { env: { ...process.env, NO_COLOR: "1" } })).stdout]) {
    assert.doesNotMatch(text, /\x1b\[/, "no escape sequences");
  }
});

test("version: --version and the version subcommand; they load no dependency and no command module", async (t) => {
  const { version } = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
  const dir = await tempDir(t);
  for (const args of [["--version"], ["version"]]) {
    const out = join(dir, "imports.txt");
    const result = await runCli(args, { nodeArgs: ["--import", join(ROOT, "test", "record-imports.ts")], env: { ...process.env, KH_IMPORTS_OUT: out } });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `kube-haproxy ${version}\n`);
    const loaded = (await readFile(out, "utf8")).split("\n");
    assert.deepEqual(loaded.filter((url) => url.includes("/node_modules/") || url.startsWith(`${SRC}/commands/`)), [], args.join(" "));
  }
});

test("run, render and status never load the demo, the simulated cluster or client-node; --help loads no dependency", async (t) => {
  const dir = await tempDir(t);
  const garbage = join(dir, "garbage.kubeconfig");
  await writeFile(garbage, "garbage\n");
  const cases: [string, string[], RegExp][] = [
    ["help", ["run", "--help"], /^$/],
    ["status", ["status", "--socket", join(dir, "none.sock")], /no such socket/],
    ["render", ["render", "--kubeconfig", garbage, "--config", join(dir, "h.cfg")], /no current cluster/],
    ["run", ["run", "--kubeconfig", garbage, "--config", join(dir, "h.cfg")], /no current cluster/],
    ["capture", ["capture", "--service-cidr", "10.96.0.0/12", "--capture-port", "0"], /--capture-port: must be a whole number/],
  ];
  for (const [name, args, expected] of cases) {
    const out = join(dir, `${name}.txt`);
    const result = await runCli(args, { nodeArgs: ["--import", join(ROOT, "test", "record-imports.ts")], env: { ...process.env, KH_IMPORTS_OUT: out } });
    assert.match(result.stderr, expected, name);
    const loaded = (await readFile(out, "utf8")).split("\n");
    // The command's own module was loaded: the check below looked at a real module graph.
    if (name !== "help") assert.ok(loaded.includes(`${SRC}/commands/${name}.ts`), `${name} loaded its module`);
    const forbidden = loaded.filter((url) => url.startsWith(`${SRC}/sim/`) || url === `${SRC}/demo.ts` || url === `${SRC}/commands/demo.ts`);
    assert.deepEqual(forbidden, [], `${name} loads neither the demo nor src/sim/`);
    // client-node's ~85 MB stay out of the process: the kubeconfig is read by the loader process.
    assert.deepEqual(loaded.filter((url) => url.includes("/node_modules/@kubernetes/client-node/")), [], `${name} loads no client-node`);
    if (name === "help" || name === "status") assert.deepEqual(loaded.filter((url) => url.includes("/node_modules/")), [], `${name} loads no dependency`);
  }
});

test("configuration errors: one line naming the flag or variable, exit 2, nothing written", async (t) => {
  const dir = await tempDir(t);
  const cwd = join(dir, "cwd");
  await mkdir(cwd);
  const config = join(dir, "haproxy.cfg");
  const garbage = join(dir, "garbage.kubeconfig");
  await writeFile(garbage, "garbage\n");
  const noCluster = join(dir, "no-cluster.kubeconfig");
  await writeFile(noCluster, JSON.stringify({ apiVersion: "v1", kind: "Config", "current-context": "x", contexts: [{ name: "x", context: { cluster: "gone", user: "u" } }] }));
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("KUBE_HAPROXY_") && key !== "KUBECONFIG" && key !== "KUBERNETES_SERVICE_HOST"));
    return { ...clean, HOME: dir, ...extra };
  };
  const cases: [string[], Record<string, string>, string][] = [
    [["run", "--socket", "127.0.0.1:99999", "--config", config], {}, '--socket: must be host:port with an IP address and a port from 1 to 65535, not "127.0.0.1:99999"'],
    [["run", "--config", config], { KUBE_HAPROXY_SLOTS: "0" }, 'KUBE_HAPROXY_SLOTS: must be a whole number from 1 to 10000, not "0"'],
    [["run", "--master-socket=", "--config", config], {}, "--master-socket: must not be empty"],
    [["run", "--haproxy-binary", "/nonexistent", "--config", config], {}, "--haproxy-binary: no executable file /nonexistent"],
    [["run", "--config", config], { KUBE_HAPROXY_HAPROXY_BINARY: "no-such-haproxy" }, 'KUBE_HAPROXY_HAPROXY_BINARY: no executable "no-such-haproxy" on PATH'],
    [["run", "--config-sync-period", "0s", "--config", config], {}, '--config-sync-period: must be at least 1s, not "0s"'],
    [["render", "--config", ""], {}, "--config: must not be empty"],
    [["render", "--config", "/missing/dir/h.cfg"], {}, "--config: no such folder: /missing/dir"],
    [["render", "--config", dir], {}, `--config: ${dir} is a folder, not a file`],
    [["render", "--config", config], { KUBECONFIG: "/nope" }, "KUBECONFIG: no such file: /nope"],
    [["render", "--kubeconfig", "/nope", "--config", config], {}, "--kubeconfig: no such file: /nope"],
    [["render", "--kubeconfig", garbage, "--config", config], {}, `--kubeconfig ${garbage}: no current cluster (it sets no current-context)`],
    [["run", "--config", config], { KUBECONFIG: noCluster }, `KUBECONFIG=${noCluster}: no current cluster (its current-context "x" names no cluster)`],
    [["render", "--config", config], {}, "no cluster found: pass --kubeconfig, run in a Pod, or set $KUBECONFIG (or try `npm run demo` for a simulated cluster)"],
    [["run", "--proxy-mode", "mesh", "--config", config], {}, "--service-cidr: mesh mode needs the cluster's Service CIDR (e.g. --service-cidr 10.96.0.0/12)"],
    [["run", "--proxy-mode", "local", "--service-cidr", "10.96.0.0/12", "--nodeport-addresses", "10.0.0.0/8", "--config", config], {}, "--nodeport-addresses: applies to mesh mode only (--proxy-mode mesh)"],
    [["run", "--proxy-mode", "mesh", "--service-cidr", "10.96.0.0/12", "--config", config], { KUBE_HAPROXY_NODEPORT_ADDRESSES: "10.0.0.0/8,eth0" }, 'KUBE_HAPROXY_NODEPORT_ADDRESSES: must be CIDRs like 192.168.0.0/16,fd00::/64, not "eth0"'],
    [["run", "--proxy-mode", "local", "--config", config], {}, "--service-cidr: local mode needs the cluster's Service CIDR (e.g. --service-cidr 10.96.0.0/12)"],
    [["run", "--proxy-mode", "local", "--service-cidr", "10.96.0.0/33", "--config", config], {}, '--service-cidr: must be CIDRs like 10.96.0.0/12,fd00:10:96::/112, not "10.96.0.0/33"'],
    [["capture"], {}, "--service-cidr: capture needs the cluster's Service CIDR (e.g. --service-cidr 10.96.0.0/12)"],
  ];
  for (const [args, extra, message] of cases) {
    const { code, stderr } = await runCli(args, { cwd, env: env(extra) });
    assert.equal(code, 2, `${args.join(" ")} ${JSON.stringify(extra)}: ${stderr}`);
    assert.equal(oneLine(stderr), `kube-haproxy: ${message}`);
  }
  assert.deepEqual(await readdir(cwd), [], "nothing written in the working directory");
  assert.equal(existsSync(config), false);
});

// Issue 13: `run` used to accept them and then never reload. render and run share the check
// (commands/setup.ts); options.test.ts holds the same table for both commands.
test("hostile --user/--passwd: run refuses every kind at start, as render does (one line, exit 2)", async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, "haproxy.cfg");
  for (const [kind, value] of HOSTILE_CREDENTIALS) {
    for (const [flag, args] of [["passwd", ["--user", "admin", `--passwd=${value}`]], ["user", [`--user=${value}`, "--passwd", "secret"]]] as const) {
      const { code, stderr } = await runCli(["run", "--config", config, ...args]);
      assert.equal(code, 2, `run --${flag} with a ${kind}: ${stderr}`);
      assert.equal(oneLine(stderr), `kube-haproxy: --${flag}: may hold only printable characters without spaces, quotes, '#' or '\\'`);
      assert.ok(value === "" || !stderr.includes(value), "the value is not echoed");
    }
  }
});

test("an unexpected error: one line with a hint; --log-level debug adds the stack", async (t) => {
  const dir = await tempDir(t);
  const loop = join(dir, "loop.cfg");
  await symlink(loop, loop); // stat() fails with ELOOP: nothing the CLI checks for
  const plain = await runCli(["render", "--config", loop]);
  assert.equal(plain.code, 1);
  assert.match(oneLine(plain.stderr), /^kube-haproxy: unexpected error: ELOOP: .* \(--log-level debug shows the stack\)$/);
  const debug = await runCli(["render", "--config", loop, "--log-level", "debug"]);
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /^kube-haproxy: unexpected error: Error: ELOOP: [^\n]*\n\s+at /);
});

test("render ends: an unreachable API server after --timeout with exit 1 and the last error; refused credentials at once with exit 2", async (t) => {
  const dir = await tempDir(t);
  const kubeconfig = join(dir, "kubeconfig");
  await writeKubeconfig(kubeconfig, { server: `http://127.0.0.1:${await closedPort()}` });
  const unreachable = await runCli(["render", "--kubeconfig", kubeconfig, "--config", join(dir, "h.cfg"), "--timeout", "4s"], { timeoutMs: 20_000 });
  assert.equal(unreachable.code, 1, unreachable.stderr);
  const lines = unreachable.stderr.trimEnd().split("\n");
  // The watch retried several times meanwhile (0.5 s, 1 s, …): said once, then the final error.
  assert.equal(lines.length, 2, unreachable.stderr);
  assert.match(lines[0]!, /WARN {2}waiting for the API server at http:\/\/127\.0\.0\.1:\d+ to list Services and EndpointSlices: .*ECONNREFUSED/);
  assert.match(lines[1]!, /^kube-haproxy: no lists from the API server at http:\/\/127\.0\.0\.1:\d+ within --timeout 4s; last error: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  assert.equal(existsSync(join(dir, "h.cfg")), false);

  // The fake API server answers 401 to a wrong token: no retry can cure that.
  const { startSimulatedCluster } = await import("../src/sim/cluster.ts");
  const cluster = await startSimulatedCluster(dir, { tls: false });
  t.after(() => cluster.stop());
  const wrongToken = join(dir, "wrong-token");
  await writeKubeconfig(wrongToken, { server: cluster.api.url, token: "wrong" });
  const refused = await runCli(["render", "--kubeconfig", wrongToken, "--config", join(dir, "h.cfg")], { timeoutMs: 20_000 });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr.trimEnd().split("\n").at(-1)!, /^kube-haproxy: --kubeconfig: the API server at http:\/\/127\.0\.0\.1:\d+ refuses it: .*HTTP 401/);
});

test("the README's flag table is options.ts's", async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const rows = [...readme.matchAll(/^\| `--([a-z-]+)`(?: \(`--([a-z-]+)`\))? \| `([A-Z_]+)` \| (?:`([^`]*)`|—) \| (.+) \|$/gm)];
  assert.deepEqual(rows.map((r) => r[1]), Object.keys(FLAGS), "the same flags in the same order");
  for (const [, name, alias, env, value] of rows) {
    const flag = FLAGS[name as keyof typeof FLAGS] as { default?: string; alias?: string };
    assert.equal(alias, flag.alias, `${name}: alias`);
    assert.equal(env, envName(name!), `${name}: variable`);
    assert.equal(value, flag.default === undefined ? undefined : flag.default, `${name}: default`);
  }
});

test("the launcher (src/main.js, the package's bin): a Node.js too old says so in one line, exit 2; a recent one runs the CLI", async (t) => {
  const entry = join(ROOT, "src", "main.js");
  const ok = await runCli(["--version"], { entry });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^kube-haproxy \d+\.\d+\.\d+\n$/);
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string>; scripts: Record<string, string> };
  assert.equal(pkg.bin["kube-haproxy"], "src/main.js");
  assert.match(pkg.scripts.demo!, /^node src\/main\.js demo$/);

  // Debian's own Node (20 on these machines) is the old Node an operator meets in a new shell.
  const old = "/usr/bin/node";
  const version = existsSync(old) ? await runCli(["process.versions.node"], { node: old, entry: "-p" }) : undefined;
  const found = version?.code === 0 ? version.stdout.trim() : undefined;
  const [major = 0, minor = 0] = (found ?? "").split(".").map(Number);
  if (found === undefined || major > 22 || (major === 22 && minor >= 19)) {
    t.skip(`no Node.js older than 22.19 at ${old} (found ${found ?? "none"})`);
    return;
  }
  for (const args of [["--version"], ["run", "--slots", "4"]]) {
    const tooOld = await runCli(args, { node: old, entry });
    assert.equal(tooOld.code, 2, tooOld.stderr);
    assert.equal(tooOld.stderr, `kube-haproxy needs Node.js ≥ 22.19 (found ${found})\n`);
    assert.equal(tooOld.stdout, "");
  }
});

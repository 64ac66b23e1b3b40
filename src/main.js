#!/usr/bin/env node
// The entry point (package.json "bin", `npm run demo`): plain JavaScript that any Node.js can
// read, so that a Node too old for kube-haproxy says so in one line instead of failing on the
// `.ts` extension. Needs: type stripping without a flag (22.18+, 23.6+) and
// @kubernetes/client-node 2.x (22.19+).

const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 19) || (major === 23 && minor < 6)) {
  process.stderr.write(`kube-haproxy needs Node.js ≥ 22.19 (found ${process.versions.node})\n`);
  process.exit(2);
}
await import("./cli.ts");

// Which HAProxy this run tests: the suite runs against one binary ($KUBE_HAPROXY_TEST_HAPROXY,
// else `haproxy` on the PATH), and CI runs it once per supported version. The version is in
// this test's name, so every test report says which one ran.

import assert from "node:assert/strict";
import { test } from "node:test";
import { haproxyBinary, haproxyVersion } from "../src/sim/haproxy.ts";

const binary = haproxyBinary();
const version = await haproxyVersion(binary).catch((error: Error) => `none (${error.message})`);

test(`HAProxy under test: ${version} (${binary})`, () => {
  const [major = 0, minor = 0] = version.split(/[.-]/).map(Number);
  assert.ok(major > 2 || (major === 2 && minor >= 6), `kube-haproxy needs HAProxy 2.6 or newer, ${binary} is ${version}`);
});

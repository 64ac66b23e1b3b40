// The API rate limiter: a burst goes through at once, then callers are spaced by 1/qps.

import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenBucket } from "../src/kube/token-bucket.ts";

test("burst first, then one token per 1/qps", async () => {
  const bucket = new TokenBucket(50, 3);
  const started = performance.now();
  const done: number[] = [];
  await Promise.all(Array.from({ length: 6 }, () => bucket.take().then(() => done.push(performance.now() - started))));
  done.sort((a, b) => a - b);
  // Three at once (the burst); the sixth waited for three refills of 20 ms each.
  assert.ok(done[2]! < 40, `burst went through at once (${done.map(Math.round)})`);
  assert.ok(done[5]! >= 50, `the rest were spaced by 1/qps (${done.map(Math.round)})`);
});

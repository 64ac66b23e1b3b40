// The watch stream's line splitter: lines across chunks, UTF-8 characters cut between chunks,
// several lines per chunk, the last line without a newline, a line that never ends.

import assert from "node:assert/strict";
import { test } from "node:test";
import { LineSplitter, MAX_LINE_BYTES } from "../src/kube/lines.ts";

function split(chunks: readonly Buffer[]): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line));
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return lines;
}

test("lines come out whole however the bytes are cut", () => {
  const text = '{"a":"héllo ✓"}\n{"b":2}\n\n{"c":"日本"}\n{"d":4}';
  const bytes = Buffer.from(text);
  const expected = ['{"a":"héllo ✓"}', '{"b":2}', '{"c":"日本"}', '{"d":4}'];
  assert.deepEqual(split([bytes]), expected);
  // Every cut point, multi-byte characters included, and one byte at a time.
  for (let cut = 1; cut < bytes.length; cut++) assert.deepEqual(split([bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `cut at ${cut}`);
  assert.deepEqual(split([...bytes].map((byte) => Buffer.from([byte]))), expected);
});

test("a line that grows past the limit is an error, not unbounded memory", () => {
  const splitter = new LineSplitter(() => assert.fail("no line"));
  const chunk = Buffer.alloc(2 ** 20, 0x61);
  assert.throws(() => {
    for (let i = 0; i <= MAX_LINE_BYTES / chunk.length; i++) splitter.push(chunk);
  }, /longer than/);
});

// Reply framing (reply.ts): prompt-mode replies split at their prompt, bounded buffers, the
// answer to `prompt`, replies framed by the connection's end.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isKubeHaproxyError } from "../src/errors.ts";
import { ClosedReply, ReplyDecoder, afterPromptAnswer } from "../src/haproxy/reply.ts";

describe("ReplyDecoder", () => {
  test("splits prompt-mode replies, stripping trailing newlines", () => {
    const decoder = new ReplyDecoder();
    const stream = "\n> IP changed from '0.0.0.0' to '127.0.0.2' by 'stats socket command'\n\n> \n> No such server.\n\n> Server deleted.\n> ";
    assert.deepEqual(decoder.push(stream), ["", "IP changed from '0.0.0.0' to '127.0.0.2' by 'stats socket command'", "", "No such server.", "Server deleted."]);
    assert.equal(decoder.buffered, 0);
  });

  test("handles a prompt split across chunks at every position", () => {
    const stream = "first\n\n> second line\nmore\n\n> \n> ";
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new ReplyDecoder();
      const bodies = [...decoder.push(stream.slice(0, cut)), ...decoder.push(stream.slice(cut))];
      assert.deepEqual(bodies, ["first", "second line\nmore", ""], `cut at ${cut}`);
    }
  });

  test("one character at a time", () => {
    const decoder = new ReplyDecoder();
    const bodies: string[] = [];
    for (const ch of "a\n\n> b\n> \n> ") bodies.push(...decoder.push(ch));
    assert.deepEqual(bodies, ["a", "b", ""]);
  });

  test("a 12 MB reply in 700 chunks comes out whole", () => {
    const line = "3 default:web:80 1 s1 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 8080 - 0 0 - - 0\n";
    const body = line.repeat(160_000);
    const stream = `${body}\n> `;
    const size = Math.ceil(stream.length / 700);
    const decoder = new ReplyDecoder();
    const bodies: string[] = [];
    for (let i = 0; i < stream.length; i += size) {
      bodies.push(...decoder.push(stream.slice(i, i + size)));
      if (bodies.length === 0) assert.equal(decoder.buffered, Math.min(i + size, stream.length));
    }
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0], body.slice(0, -1));
    assert.equal(decoder.buffered, 0);
  });

  test("more than maxChars without a prompt is refused; complete replies never count", () => {
    const decoder = new ReplyDecoder(10);
    assert.deepEqual(decoder.push("0123456789\n> "), ["0123456789"], "a reply of exactly the limit");
    for (let i = 0; i < 100; i++) decoder.push("abc\n> ");
    assert.equal(decoder.buffered, 0);
    decoder.push("0123456789");
    assert.throws(() => decoder.push("x"), (error) => isKubeHaproxyError(error, "E_REPLY_TOO_LARGE"));
  });
});

describe("ClosedReply", () => {
  test('keeps "\n> " inside a body: the reply ends with the connection', () => {
    const reply = new ClosedReply();
    for (const chunk of ["KH=x\n", "> y\n> ", "\n\n"]) reply.push(chunk);
    assert.equal(reply.body(), "KH=x\n> y\n> ");
  });

  test("is bounded", () => {
    const reply = new ClosedReply(4);
    reply.push("abcd");
    assert.throws(() => reply.push("e"), (error) => isKubeHaproxyError(error, "E_REPLY_TOO_LARGE"));
  });
});

describe("afterPromptAnswer", () => {
  test("waits for the whole prompt, then returns what follows", () => {
    assert.equal(afterPromptAnswer("", "s"), undefined);
    assert.equal(afterPromptAnswer("\n", "s"), undefined);
    assert.equal(afterPromptAnswer("\n>", "s"), undefined);
    assert.equal(afterPromptAnswer("\n> ", "s"), "");
    assert.equal(afterPromptAnswer("\n> rest", "s"), "rest");
  });

  const refused: [string, RegExp][] = [
    ["master> ", /answered `prompt` with "master> ": this is HAProxy's master CLI/],
    ["HTTP/1.1 400 Bad Request\r\n", /answered `prompt` with "HTTP\/1\.1 400/],
    ["Unknown command", /is not HAProxy's runtime API/],
  ];
  for (const [greeting, message] of refused) {
    test(`refuses ${JSON.stringify(greeting)}`, () => {
      assert.throws(() => afterPromptAnswer(greeting, "/run/x.sock"), (error) => {
        assert.ok(isKubeHaproxyError(error, "E_PROTOCOL"));
        assert.match(error.message, /^\/run\/x\.sock is not HAProxy's runtime API/);
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

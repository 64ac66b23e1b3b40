// One runtime command on a connection of its own, without `prompt`: HAProxy answers and closes
// the connection, so the reply is everything received, whatever it contains. The runtime client
// sends open-ended commands this way (runtime-client.ts explains why).

import { createConnection } from "node:net";
import { KubeHaproxyError } from "../errors.ts";
import { parseSocketAddress } from "./address.ts";
import { ClosedReply } from "./reply.ts";

export interface SingleCommand {
  /** The reply body (trailing newlines stripped); rejects with a KubeHaproxyError. */
  readonly reply: Promise<string>;
  /** Drops the connection; `reply` then never settles. */
  cancel(): void;
}

/** `stream`: each chunk goes there as it arrives, none is held, and the reply is empty. */
export function singleCommand(address: string, line: string, maxReplyChars: number, stream?: (chunk: string) => void): SingleCommand {
  const socket = createConnection(parseSocketAddress(address));
  let cancelled = false;
  const reply = new Promise<string>((resolve, reject) => {
    const received = new ClosedReply(maxReplyChars);
    let streamed = false;
    let failure: Error | undefined;
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(`${line}\n`));
    socket.on("data", (chunk: string) => {
      if (stream) {
        streamed = true;
        stream(chunk);
        return;
      }
      try {
        received.push(chunk);
      } catch (error) {
        failure = error as Error;
        socket.destroy();
      }
    });
    socket.on("error", (error) => {
      failure = error;
    });
    socket.on("close", () => {
      if (cancelled) return;
      // No answer at all (not even the newline of an empty one) is not an empty reply: read as
      // one, an empty `show servers state` would say HAProxy has no servers.
      failure ??= received.answered || streamed ? undefined : new Error("closed without an answer");
      if (!failure) resolve(received.body());
      else if (failure instanceof KubeHaproxyError) reject(failure);
      else reject(new KubeHaproxyError("E_CONNECTION_CLOSED", `runtime connection to ${address} for "${line}" failed: ${failure.message}`, { command: line, cause: failure }));
    });
  });
  return {
    reply,
    cancel() {
      cancelled = true;
      socket.destroy();
    },
  };
}

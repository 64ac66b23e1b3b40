// The child of netns-listen.ts, inside a network namespace: binds each port it is asked for on
// every address and sends the listening socket to its parent, closing its own copy.

import { createServer } from "node:net";

process.on("message", ({ port }: { port: number }) => {
  const server = createServer();
  server.once("error", (error) => process.send!({ port, error: error.message }));
  server.listen({ port }, () => process.send!({ port }, server, () => server.close()));
});
process.on("disconnect", () => process.exit(0));

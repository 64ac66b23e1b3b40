// Loaded with `node --import ./test/record-imports.ts src/cli.ts …` by test/cli.test.ts: records
// every module the process loads (ESM and CommonJS, static and dynamic imports), and writes
// their URLs, one a line, to $KH_IMPORTS_OUT when the process exits.

import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";

const loaded: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});
process.on("exit", () => writeFileSync(process.env.KH_IMPORTS_OUT!, loaded.join("\n")));

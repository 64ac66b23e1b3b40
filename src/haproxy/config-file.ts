// Writing haproxy.cfg so that HAProxy never reads half a file, nor a file that was not checked:
// the one atomic write (temp file, optional check of the temp file, rename).

import { rename, rm, writeFile } from "node:fs/promises";

/** Writes `text` to `path` atomically; `check` (if any) may refuse the temp file by throwing. */
export async function writeConfigAtomically(path: string, text: string, check?: (tempPath: string) => Promise<void>): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(temp, text, { mode: 0o640 });
    await check?.(temp);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

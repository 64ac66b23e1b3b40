// Writing haproxy.cfg so that HAProxy never reads half a file: temp file + rename.

import { rename, writeFile, rm } from "node:fs/promises";

export async function writeConfigAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(temp, text, { mode: 0o640 });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

// A watch stream's framing: one JSON object per line. Split on the newline byte before decoding,
// so a UTF-8 character cut between two chunks is joined before it is read (0x0A never occurs
// inside a multi-byte character), and most lines are decoded straight from the chunk that
// carries them, with no stream conversion or string concatenation in between.

/** The API server refuses objects over ~1.5 MB (etcd); a longer line is a broken stream. */
export const MAX_LINE_BYTES = 16 * 2 ** 20;

export class LineSplitter {
  readonly #onLine: (line: string) => void;
  // Bytes of the line not finished yet (invariant: no newline among them), and their count.
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  /** Calls onLine for every complete, non-empty line; throws when a line grows past MAX_LINE_BYTES. */
  push(chunk: Buffer): void {
    let start = 0;
    for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end);
      start = end + 1;
      let line: string;
      if (this.#pendingBytes === 0) line = piece.toString("utf8");
      else {
        this.#pending.push(piece);
        line = Buffer.concat(this.#pending).toString("utf8");
        this.#pending = [];
        this.#pendingBytes = 0;
      }
      if (line.trim() !== "") this.#onLine(line);
    }
    if (start === chunk.length) return;
    this.#pendingBytes += chunk.length - start;
    if (this.#pendingBytes > MAX_LINE_BYTES) throw new RangeError(`a watch line longer than ${MAX_LINE_BYTES} bytes`);
    // A copy: a subarray would keep the whole chunk alive for a few bytes.
    this.#pending.push(Buffer.from(chunk.subarray(start)));
  }

  /** The last line, if the stream ended without a newline after it. */
  end(): void {
    if (this.#pendingBytes === 0) return;
    const line = Buffer.concat(this.#pending).toString("utf8");
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line.trim() !== "") this.#onLine(line);
  }
}

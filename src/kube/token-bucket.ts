// A token bucket for --kube-api-qps/--kube-api-burst: client-node has no rate limiter, so our
// lists and watch restarts wait here (kube-proxy's client-go flowcontrol does the same).

export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  // Tokens available at #updated; may go negative: that many callers are already waiting.
  #tokens: number;
  #updated = performance.now();

  constructor(perSecond: number, burst: number) {
    this.#rate = perSecond;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
  }

  /** Resolves when the caller may make one request. */
  take(): Promise<void> {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#updated) / 1000) * this.#rate);
    this.#updated = now;
    this.#tokens -= 1;
    if (this.#tokens >= 0) return Promise.resolve();
    const waitMs = (-this.#tokens / this.#rate) * 1000;
    return new Promise((resolve) => setTimeout(resolve, waitMs));
  }
}

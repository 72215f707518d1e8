import type { Clock } from '../util/clock.js';

/** `count` events per `perMs`, as a token bucket: a burst of `count`, refilled evenly. */
export interface Rate {
  count: number;
  perMs: number;
}

/** Keys kept at most; past this the fullest (least recently limited) are forgotten first. */
const MAX_KEYS = 100_000;

/**
 * Token buckets per key (a client address). `take` spends one token, or says
 * how long until one is back. Buckets that have refilled are forgotten, so
 * memory follows the clients that are being limited, not every client ever seen.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: Rate | null,
    private readonly clock: Clock,
  ) {}

  /** null when the event may happen (and is counted), or the milliseconds until it may. */
  take(key: string): number | null {
    if (this.rate === null) return null;
    const b = this.refill(key);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return null;
    }
    return Math.ceil((1 - b.tokens) * (this.rate.perMs / this.rate.count));
  }

  /** Milliseconds until `key` may act again, without spending anything; null when it may now. */
  blockedFor(key: string): number | null {
    if (this.rate === null || !this.buckets.has(key)) return null;
    const b = this.refill(key);
    return b.tokens >= 1 ? null : Math.ceil((1 - b.tokens) * (this.rate.perMs / this.rate.count));
  }

  private refill(key: string): { tokens: number; at: number } {
    const rate = this.rate as Rate;
    // A duration: measured on the monotonic clock, so that setting the system clock neither refills nor empties buckets.
    const now = this.clock.monotonic();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= MAX_KEYS) this.forgetFull(now);
      b = { tokens: rate.count, at: now };
      this.buckets.set(key, b);
      return b;
    }
    b.tokens = Math.min(rate.count, b.tokens + ((now - b.at) * rate.count) / rate.perMs);
    b.at = now;
    return b;
  }

  private forgetFull(now: number): void {
    const rate = this.rate as Rate;
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * rate.count) / rate.perMs >= rate.count) this.buckets.delete(key);
    }
    // Everyone is being limited at once: forget the oldest half rather than grow without bound.
    if (this.buckets.size >= MAX_KEYS) {
      let n = this.buckets.size / 2;
      for (const key of this.buckets.keys()) {
        if (n-- <= 0) break;
        this.buckets.delete(key);
      }
    }
  }
}

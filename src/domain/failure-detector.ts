/**
 * An adaptive failure detector, in the manner of the phi accrual detector
 * (Hayashibara et al., 2004): each agent's heartbeat inter-arrival times are
 * learned (mean and standard deviation over the last `window` gaps), and
 * suspicion grows with the silence since the last heartbeat:
 *
 *     phi(t) = -log10(1 - F(t - last))
 *
 * where F is the normal distribution of the learned gaps. An agent is suspected
 * (marked offline) when phi exceeds `threshold`, which is the same as a silence
 * longer than `mean + z * std`, z being the normal quantile of 1 - 10^-threshold.
 * That learned timeout is then held between a floor (an agent is never marked
 * offline sooner, whatever it has taught the detector) and a ceiling (a dead
 * agent is caught within this bound, however irregular it was). Until a few
 * gaps are known, the ceiling applies.
 */

export interface DetectorSettings {
  /** Gaps remembered. */
  window: number;
  /** phi above which an agent is suspected (8: one false suspicion in 10^8 gaps, if gaps were normal). */
  threshold: number;
  /** The standard deviation never counts as less than this share of the mean (perfectly regular agents). */
  minStdShare: number;
  floorMs: number;
  ceilingMs: number;
  /** Gaps needed before the learned timeout replaces the ceiling. */
  minSamples: number;
}

export function detectorSettings(heartbeatIntervalMs: number, agentTimeoutMs: number): DetectorSettings {
  return {
    window: 64,
    threshold: 8,
    minStdShare: 0.1,
    // Never before two missed beats; never later than AGENT_TIMEOUT.
    floorMs: Math.min(agentTimeoutMs, 2 * heartbeatIntervalMs),
    ceilingMs: agentTimeoutMs,
    minSamples: 3,
  };
}

/** The standard normal quantile (Acklam's approximation), for p in (0.5, 1). */
function normalQuantile(p: number): number {
  const q = Math.sqrt(-2 * Math.log(1 - p));
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  return -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
}

/** The complementary normal CDF, 1 - F(x) for the standard normal (Abramowitz–Stegun 7.1.26 via erfc). */
function normalTail(x: number): number {
  const z = x / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * Math.abs(z));
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-z * z);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

export class PhiAccrualDetector {
  private readonly gaps: Float64Array;
  private count = 0;
  private next = 0;
  private sum = 0;
  private sumSq = 0;
  private last: number | null = null;
  private readonly z: number;

  constructor(private readonly s: DetectorSettings) {
    this.gaps = new Float64Array(s.window);
    this.z = normalQuantile(1 - 10 ** -s.threshold);
  }

  /** A heartbeat (or any sign of life) arrived at `at`. */
  heartbeat(at: number): void {
    if (this.last !== null && at > this.last) {
      const gap = at - this.last;
      if (this.count === this.s.window) {
        const old = this.gaps[this.next] as number;
        this.sum -= old;
        this.sumSq -= old * old;
      } else {
        this.count++;
      }
      this.gaps[this.next] = gap;
      this.next = (this.next + 1) % this.s.window;
      this.sum += gap;
      this.sumSq += gap * gap;
    }
    if (this.last === null || at > this.last) this.last = at;
  }

  /**
   * The observer stalled for `ms` (it could not read heartbeats meanwhile): that time does not count as the
   * agent's silence. The last arrival moves forward by it, never past `now`.
   */
  discount(ms: number, now: number): void {
    if (this.last !== null && ms > 0) this.last = Math.min(this.last + ms, now);
  }

  /** Forgets the last arrival (the agent went away): the silence is not a gap to learn from; what was learned stays. */
  reset(): void {
    this.last = null;
  }

  get lastArrival(): number | null {
    return this.last;
  }

  private stats(): { mean: number; std: number } {
    const mean = this.sum / this.count;
    const variance = Math.max(0, this.sumSq / this.count - mean * mean);
    return { mean, std: Math.max(Math.sqrt(variance), this.s.minStdShare * mean) };
  }

  /** The silence after which the agent is suspected now: learned, held between the floor and the ceiling. */
  timeoutMs(): number {
    if (this.count < this.s.minSamples) return this.s.ceilingMs;
    const { mean, std } = this.stats();
    return Math.min(this.s.ceilingMs, Math.max(this.s.floorMs, mean + this.z * std));
  }

  /** Suspicion at `now` (0 just after a heartbeat, rising with the silence); Infinity past the ceiling. */
  phi(now: number): number {
    if (this.last === null) return 0;
    const silence = now - this.last;
    if (silence > this.s.ceilingMs) return Infinity;
    if (this.count < this.s.minSamples) return silence > this.s.ceilingMs ? Infinity : 0;
    const { mean, std } = this.stats();
    const tail = normalTail((silence - mean) / std);
    return tail <= 0 ? Infinity : Math.max(0, -Math.log10(tail));
  }

  /** Whether the agent should be marked offline at `now`. */
  suspect(now: number): boolean {
    return this.last !== null && now - this.last > this.timeoutMs();
  }
}

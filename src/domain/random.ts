/**
 * Randomness as a parameter: every random choice in the domain takes an `Rng`,
 * so tests can seed it and get the same run twice.
 */
export type Rng = () => number;

export const systemRng: Rng = Math.random;

/** mulberry32: small, fast, good enough for simulation and tests. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/** Integer uniform in [lo, hi], both ends included. */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** `k` distinct elements of `items`, in random order (partial Fisher-Yates). */
export function sample<T>(rng: Rng, items: readonly T[], k: number): T[] {
  const copy = items.slice();
  const n = Math.min(k, copy.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng() * (copy.length - i));
    const tmp = copy[i] as T;
    copy[i] = copy[j] as T;
    copy[j] = tmp;
  }
  return copy.slice(0, n);
}

export function randomHex(rng: Rng, chars: number): string {
  let s = '';
  for (let i = 0; i < chars; i++) s += Math.floor(rng() * 16).toString(16);
  return s;
}

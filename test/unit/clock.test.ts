import { describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, systemClock } from '../../src/util/clock.js';

describe('systemClock', () => {
  it('a timer longer than node allows waits in steps instead of firing at once', () => {
    vi.useFakeTimers();
    try {
      const fired: number[] = [];
      const thirtyDays = 30 * 86_400_000;
      systemClock.setTimeout(() => fired.push(Date.now()), thirtyDays);
      const start = Date.now();
      vi.advanceTimersByTime(1000);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(MAX_TIMER_MS);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(thirtyDays - MAX_TIMER_MS - 1000);
      expect(fired).toEqual([start + thirtyDays]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a long timer can be cancelled in any of its steps', () => {
    vi.useFakeTimers();
    try {
      let fired = false;
      const handle = systemClock.setTimeout(() => (fired = true), 2 * MAX_TIMER_MS + 10);
      vi.advanceTimersByTime(MAX_TIMER_MS + 5);
      handle.cancel();
      vi.advanceTimersByTime(2 * MAX_TIMER_MS);
      expect(fired).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});

/**
 * Time as a dependency. Every loop, timeout and timestamp in the orchestrator
 * and the simulated agents goes through a Clock, so tests drive time with
 * `FakeClock.advance()` instead of waiting.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /**
   * Wall-clock milliseconds since the epoch: for timestamps that people read or that outlive the process
   * (createdAt, a user's runAfter). It may jump when the system clock is set.
   */
  now(): number;
  /**
   * Milliseconds on a monotonic clock with an arbitrary origin: for every duration, lease, timeout and
   * deadline the process measures itself. It never goes back and a change of the system clock does not move it.
   */
  monotonic(): number;
  /** Runs `fn` once after `ms` of monotonic time. The timer never keeps the process alive on its own. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Resolves after `ms`, or rejects with the signal's reason when aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Wall-clock milliseconds that move with the monotonic clock: the wall clock as it was when this was made,
 * plus the time elapsed since. For components whose stored instants are also durations' ends (a soak's end,
 * an observation's due time): setting the system clock afterwards moves none of their timing.
 */
export function steadyWall(clock: Clock): () => number {
  const anchor = clock.now() - clock.monotonic();
  return () => anchor + clock.monotonic();
}

function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason as Error);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The longest delay node's timers take (2^31 − 1 ms, about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    // Longer delays wait in steps of the longest node allows.
    let t: ReturnType<typeof setTimeout>;
    const arm = (left: number): void => {
      t = setTimeout(left > MAX_TIMER_MS ? () => arm(left - MAX_TIMER_MS) : fn, Math.min(left, MAX_TIMER_MS));
      t.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(t) };
  },
  sleep(ms, signal) {
    return sleepWith(systemClock, ms, signal);
  },
};

interface FakeTimer {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. Timers fire in due order, ties in creation order. `advance` moves
 * both clocks; `step` moves only the wall clock, as setting the system clock does.
 */
export class FakeClock implements Clock {
  private current: number;
  private mono = 1_000_000;
  private timers: FakeTimer[] = [];
  private order = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  monotonic(): number {
    return this.mono;
  }

  /** Sets the wall clock forward (ms > 0) or back (ms < 0) without any time passing. */
  step(ms: number): void {
    this.current += ms;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { at: this.mono + Math.max(0, ms), order: this.order++, fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Pending (uncancelled) timers, for tests that check loops stopped. */
  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /**
   * Moves time forward by `ms`, firing each due timer at its own instant and
   * letting promise chains and I/O callbacks settle between timers.
   */
  async advance(ms: number): Promise<void> {
    const target = this.mono + ms;
    for (;;) {
      await settle();
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: FakeTimer | undefined;
      for (const t of this.timers) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.order < next.order))) next = t;
      }
      if (!next) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      if (next.at > this.mono) {
        this.current += next.at - this.mono;
        this.mono = next.at;
      }
      next.fn();
    }
    this.current += target - this.mono;
    this.mono = target;
    await settle();
  }
}

/** Lets queued microtasks and immediate callbacks (such as SQLite-backed promises) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

import type { Clock, TimerHandle } from '../util/clock.js';

/**
 * A periodic job as a small state machine: `start()` and `stop()` are
 * idempotent, one run never overlaps the next, and a failing run is reported
 * and retried on the next tick instead of ending the loop.
 */
export class Loop {
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private active = false;

  constructor(
    private readonly name: string,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly body: () => Promise<void>,
    private readonly onError: (name: string, err: unknown) => void,
  ) {}

  start(): void {
    if (this.active) return;
    this.active = true;
    this.schedule();
  }

  /** Stops the loop and waits for a run in progress to finish. */
  async stop(): Promise<void> {
    this.active = false;
    this.timer?.cancel();
    this.timer = null;
    await this.running;
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      this.running = this.body()
        .catch((err: unknown) => this.onError(this.name, err))
        .finally(() => {
          this.running = null;
          if (this.active) this.schedule();
        });
    }, this.intervalMs);
  }
}

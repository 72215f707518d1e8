import type { StorageStatus } from '../domain/events.js';
import type { OrchestratorError } from '../domain/errors.js';
import type { Store } from '../store/store.js';
import { storageUnavailable, WRITE_VERBS } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';

/** The first probe comes this soon after a failure; then the wait doubles up to the maximum. */
const PROBE_FIRST_MS = 250;
const PROBE_MAX_MS = 5000;

export interface StorageGuardOptions {
  clock: Clock;
  log: Logger;
  /**
   * Rebuilds every in-memory state from the store, as a start does, so that nothing that failed to commit
   * stays in memory, reading only. Called after a failure once the writes in flight have settled. Resolves
   * with the writes a start would make (ending attempts that no agent holds any more, ...), which the guard
   * runs once a probe commits, before writes resume.
   */
  reload: () => Promise<() => Promise<void>>;
  /** Told when writes start failing and when they succeed again. */
  onChange?: (status: StorageStatus) => void;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Keeps memory from running ahead of the disk when the store cannot commit.
 *
 * Every component writes through `store`, a wrapper of the adapter. When a write fails (a full disk, an I/O
 * error; the adapter rejects it with ORCH_STORAGE_UNAVAILABLE, 503) the guard fences: from then on every
 * write is refused at once with the same error and `writable` is false, which the API checks before it
 * starts any change. Once the writes that were in flight have settled, the orchestrator's memory is rebuilt
 * from what the store holds (`reload`), which undoes every change whose commit failed; then the guard probes
 * the store (a checkpoint of the WAL and one small write) with backoff, and writes resume when a probe
 * commits and nothing was refused meanwhile. Reads go through unchanged.
 */
export class StorageGuard {
  /** The store every component uses: writes are checked, failures fence. */
  readonly store: Store;
  private writableNow = true;
  /** A write was refused or failed since the last reload: memory may hold its change. */
  private dirty = false;
  private since: number | null = null;
  private lastError: string | null = null;
  private outages = 0;
  private recoveries = 0;
  private recovering: Promise<void> | null = null;
  /** The reload's own writes are running: they alone pass while fenced. */
  private repairing = false;
  private stopped = false;

  constructor(
    private readonly raw: Store,
    private readonly options: StorageGuardOptions,
  ) {
    this.store = this.wrap(raw);
  }

  get writable(): boolean {
    return this.writableNow;
  }

  status(): StorageStatus {
    return { writable: this.writableNow, since: this.since, error: this.lastError, outages: this.outages, recoveries: this.recoveries };
  }

  /** Throws ORCH_STORAGE_UNAVAILABLE while writes fail: call before changing anything that a write backs. */
  assertWritable(): void {
    if (!this.writableNow) throw this.unavailable();
  }

  /** Resolves once writes are accepted again (at once when they are). */
  async recovered(): Promise<void> {
    while (this.recovering) await this.recovering;
  }

  /** No more probing or reloading (the orchestrator is stopping). */
  stop(): void {
    this.stopped = true;
  }

  private unavailable(): OrchestratorError {
    return storageUnavailable(this.lastError ?? 'writes are failing');
  }

  private wrap(raw: Store): Store {
    raw.onWriteFailure((err) => this.failed(err));
    // Reads and the connection's own verbs go straight to the adapter; only writes are checked.
    const wrapped = Object.create(raw) as Record<string, unknown>;
    for (const name of WRITE_VERBS) {
      const fn = (raw[name] as (...args: unknown[]) => Promise<unknown>).bind(raw);
      wrapped[name] = (...args: unknown[]): Promise<unknown> => {
        if (!this.writableNow && !this.repairing) {
          // Whoever called may already have changed memory for this write: rebuild it once more.
          this.dirty = true;
          return Promise.reject(this.unavailable());
        }
        try {
          return fn(...args);
        } catch (err) {
          // Thrown before the write was even queued (its values could not be serialised): a bug, but memory may hold it.
          this.failed(err);
          return Promise.reject(err instanceof Error ? err : new Error(messageOf(err)));
        }
      };
    }
    return wrapped as unknown as Store;
  }

  /** A write failed (the adapter says so before the write's promise rejects): fence and start recovering. */
  private failed(err: unknown): void {
    this.dirty = true;
    const cause = (err as { cause?: unknown } | null)?.cause;
    this.lastError = typeof cause === 'string' ? cause : messageOf(err);
    if (this.writableNow) {
      this.writableNow = false;
      this.since = this.options.clock.now();
      this.outages++;
      this.options.log.error({ err }, 'a write failed: refusing changes until the store commits again');
      this.options.onChange?.(this.status());
    }
    this.recovering ??= this.recover().finally(() => {
      this.recovering = null;
    });
  }

  private async recover(): Promise<void> {
    let delay = PROBE_FIRST_MS;
    let repair: (() => Promise<void>) | null = null;
    for (;;) {
      if (this.stopped) return;
      // Writes made before the fence commit or fail first; what memory holds is then rebuilt from what committed.
      await this.raw.idle();
      if (this.dirty) {
        this.dirty = false;
        try {
          repair = await this.options.reload();
        } catch (err) {
          this.dirty = true;
          this.lastError = `reloading the state failed: ${messageOf(err)}`;
          this.options.log.error({ err }, 'reloading the state after a failed write failed; trying again');
        }
      }
      if (!this.dirty) {
        try {
          await this.raw.probe();
          if (repair) {
            this.repairing = true;
            try {
              await repair();
            } finally {
              this.repairing = false;
            }
            repair = null;
          }
          if (!this.dirty) break;
          continue;
        } catch (err) {
          const cause = (err as { cause?: unknown } | null)?.cause;
          this.lastError = typeof cause === 'string' ? cause : messageOf(err);
        }
      }
      await this.options.clock.sleep(delay);
      delay = Math.min(PROBE_MAX_MS, delay * 2);
    }
    if (this.stopped) return;
    const downMs = this.since === null ? 0 : this.options.clock.now() - this.since;
    this.writableNow = true;
    this.since = null;
    this.recoveries++;
    this.options.log.warn({ downMs }, 'the store commits again: changes accepted');
    this.options.onChange?.(this.status());
  }
}

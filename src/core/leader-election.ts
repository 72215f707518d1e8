import type { Leadership, LeaseHolder } from '../store/leadership.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { Loop } from './loop.js';

export type ReplicaRole = 'follower' | 'leader';

export interface LeaderElectionOptions {
  leadership: Leadership;
  /** This replica's id (unique per process). */
  holder: string;
  /** Where this replica serves its API, for followers to forward to. */
  url: string;
  /** How long a lease lasts without renewal (LEADER_LEASE). */
  leaseMs: number;
  /** How often the leader renews and a follower tries to take the lease. @default 1000 */
  renewMs?: number;
  clock: Clock;
  log: Logger;
  /** Begins leading with `epoch`: loads the state and starts serving. Its failure gives the lease up again. */
  onElected: (epoch: number) => Promise<void>;
  /** Stops leading at once: drops the in-memory state and stops serving as leader. */
  onDeposed: (reason: string) => Promise<void>;
}

/**
 * Leader election over the store's lease (see store/leadership.ts). A follower tries to take the lease every
 * `renewMs`; the leader renews it as often, and steps down (fence closed, then `onDeposed`) when a renewal
 * finds another holder, or when it cannot renew before its lease may have expired: its deadline is counted
 * from when the last successful renewal was sent, so it is never later than the expiry the database sees.
 * Safety does not rest on these times: every commit of the leader checks its epoch (the fence); they only
 * bound how long a deposed leader may still answer as one.
 */
export class LeaderElection {
  private roleNow: ReplicaRole = 'follower';
  private epochNow: number | null = null;
  private leaderNow: LeaseHolder | null = null;
  private deadline: TimerHandle | null = null;
  private readonly loop: Loop;
  private readonly renewMs: number;
  /** One change of role at a time. */
  private changing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: LeaderElectionOptions) {
    this.renewMs = options.renewMs ?? 1000;
    this.loop = new Loop('election', options.clock, this.renewMs, () => this.tick(), (_name, err) => options.log.warn({ err }, 'lease check failed'));
  }

  get role(): ReplicaRole {
    return this.roleNow;
  }

  get epoch(): number | null {
    return this.epochNow;
  }

  /** The lease's holder as last seen (this replica while it leads). */
  get leader(): LeaseHolder | null {
    return this.leaderNow;
  }

  /**
   * Tries at once, then every `renewMs`; resolves once the first try is settled (and, when it took the lease,
   * once `onElected` has run). Renewals go on meanwhile: loading a large fleet may take longer than a lease.
   */
  async start(): Promise<void> {
    this.loop.start();
    await this.tick().catch((err: unknown) => this.options.log.warn({ err }, 'lease check failed'));
    await this.changing;
  }

  /** Stops; a leader steps down and gives the lease up, so that a follower need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
    await this.changing;
    if (this.roleNow === 'leader') {
      const epoch = this.epochNow;
      await this.stepDown('stopping');
      if (epoch !== null) await this.options.leadership.release(this.options.holder, epoch).catch(() => undefined);
    }
  }

  /** A tick in progress (the first one and the loop's must not overlap). */
  private ticking = false;

  private async tick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    try {
      await this.check();
    } finally {
      this.ticking = false;
    }
  }

  private async check(): Promise<void> {
    const { leadership, holder, url, leaseMs, clock } = this.options;
    const sent = clock.monotonic();
    if (this.roleNow === 'leader' && this.epochNow !== null) {
      let held: boolean;
      try {
        held = await leadership.renew(holder, this.epochNow, leaseMs);
      } catch (err) {
        // Not renewed this time; the deadline steps down if it goes on.
        this.options.log.warn({ err }, 'lease renewal failed');
        return;
      }
      if (this.roleNow !== 'leader') return;
      if (held) this.armDeadline(sent);
      else await this.stepDown('another replica holds the lease');
      return;
    }
    const epoch = await leadership.acquire(holder, url, leaseMs);
    if (epoch === null) {
      this.leaderNow = await leadership.current();
      return;
    }
    // Not awaited: the next ticks renew while the new term loads.
    void this.become(epoch, sent);
  }

  private become(epoch: number, sent: number): Promise<void> {
    const { leadership, holder, url, leaseMs, log } = this.options;
    // Leader at once (the next tick renews), then the term begins, after any change still in progress.
    this.roleNow = 'leader';
    this.epochNow = epoch;
    this.leaderNow = { holder, url, epoch, expiresInMs: leaseMs };
    leadership.fence(epoch);
    this.armDeadline(sent);
    this.changing = this.changing.then(async () => {
      if (this.roleNow !== 'leader' || this.epochNow !== epoch) return;
      log.info({ epoch, holder }, 'leading');
      try {
        await this.options.onElected(epoch);
      } catch (err) {
        log.error({ err, epoch }, 'could not begin leading; giving the lease up');
        // Not awaited: its onDeposed runs after this link of the chain.
        void this.stepDown('could not begin leading');
        await leadership.release(holder, epoch).catch(() => undefined);
      }
    });
    return this.changing;
  }

  /**
   * The leader stops leading: at once nothing more commits and it answers as a follower; then `onDeposed`
   * tears the term down, after a term still beginning has begun. Idempotent.
   */
  private stepDown(reason: string): Promise<void> {
    if (this.roleNow !== 'leader') return this.changing;
    const { leadership, log } = this.options;
    leadership.fence('closed');
    this.deadline?.cancel();
    this.deadline = null;
    const epoch = this.epochNow;
    this.roleNow = 'follower';
    this.epochNow = null;
    this.leaderNow = null;
    log.warn({ epoch, reason }, 'stepping down: following');
    this.changing = this.changing.then(async () => {
      try {
        await this.options.onDeposed(reason);
      } catch (err) {
        log.error({ err }, 'stepping down failed');
      }
    });
    return this.changing;
  }

  /** The lease renewed by a statement sent at `sent` (monotonic) lasts at least until sent + leaseMs. */
  private armDeadline(sent: number): void {
    this.deadline?.cancel();
    const left = sent + this.options.leaseMs - this.options.clock.monotonic();
    this.deadline = this.options.clock.setTimeout(() => {
      void this.stepDown('the lease could not be renewed before it may have expired');
    }, Math.max(0, left));
  }
}

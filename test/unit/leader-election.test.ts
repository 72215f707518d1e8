import { describe, expect, it } from 'vitest';
import { LeaderElection } from '../../src/core/leader-election.js';
import type { Leadership, LeaseHolder } from '../../src/store/leadership.js';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';

/*
 * The election's timing on a fake clock, over a lease that the test controls (the lease itself, on a real
 * PostgreSQL, is tested in test/store/postgres-lease.test.ts; replicas as processes in test/e2e/replicas.test.ts).
 */

/** A lease held by whoever the test says, whose renewals answer, refuse, or hang (a partition). */
class ScriptedLease implements Leadership {
  holder: LeaseHolder | null = null;
  epoch = 0;
  renewals: 'answer' | 'hang' = 'answer';
  fences: (number | 'closed' | null)[] = [];
  released: number[] = [];

  acquire(holder: string, url: string, leaseMs: number): Promise<number | null> {
    if (this.holder !== null) return Promise.resolve(null);
    this.epoch++;
    this.holder = { holder, url, epoch: this.epoch, expiresInMs: leaseMs };
    return Promise.resolve(this.epoch);
  }

  private hanging: ((err: Error) => void)[] = [];

  /** Ends the hanging renewals as a client-side timeout would. */
  timeOut(): void {
    for (const reject of this.hanging.splice(0)) reject(new Error('Query read timeout'));
  }

  renew(holder: string, epoch: number): Promise<boolean> {
    if (this.renewals === 'hang') return new Promise((_resolve, reject) => this.hanging.push(reject));
    return Promise.resolve(this.holder?.holder === holder && this.holder.epoch === epoch);
  }

  current(): Promise<LeaseHolder | null> {
    return Promise.resolve(this.holder);
  }

  release(holder: string, epoch: number): Promise<void> {
    if (this.holder?.holder === holder && this.holder.epoch === epoch) this.holder = null;
    this.released.push(epoch);
    return Promise.resolve();
  }

  fence(epoch: number | 'closed' | null): void {
    this.fences.push(epoch);
  }

  replicaKey(): Promise<Buffer> {
    return Promise.resolve(Buffer.alloc(32, 7));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function election(lease: ScriptedLease, clock: FakeClock, events: string[]): LeaderElection {
  return new LeaderElection({
    leadership: lease,
    holder: 'me',
    url: 'http://me:1',
    leaseMs: 10_000,
    renewMs: 1000,
    clock,
    log: silentLogger,
    onElected: (epoch) => {
      events.push(`elected ${epoch} at ${clock.monotonic()}`);
      return Promise.resolve();
    },
    onDeposed: (reason) => {
      events.push(`deposed at ${clock.monotonic()}: ${reason}`);
      return Promise.resolve();
    },
  });
}

describe('LeaderElection', () => {
  it('follows while another holds the lease, and leads with the next epoch once it is free', async () => {
    const clock = new FakeClock();
    const lease = new ScriptedLease();
    lease.holder = { holder: 'other', url: 'http://other:1', epoch: 4, expiresInMs: 5000 };
    lease.epoch = 4;
    const events: string[] = [];
    const e = election(lease, clock, events);
    await e.start();
    expect(e.role).toBe('follower');
    expect(e.leader?.url).toBe('http://other:1');
    lease.holder = null;
    await clock.advance(1000);
    expect(e.role).toBe('leader');
    expect(e.epoch).toBe(5);
    expect(lease.fences).toEqual([5]);
    expect(events).toEqual([`elected 5 at ${1_000_000 + 1000}`]);
    await e.stop();
  });

  it('steps down when a renewal finds another holder: fence closed at once, then deposed', async () => {
    const clock = new FakeClock();
    const lease = new ScriptedLease();
    const events: string[] = [];
    const e = election(lease, clock, events);
    await e.start();
    expect(e.role).toBe('leader');
    lease.holder = { holder: 'other', url: 'http://other:1', epoch: 2, expiresInMs: 10_000 };
    await clock.advance(1000);
    expect(e.role).toBe('follower');
    expect(lease.fences).toEqual([1, 'closed']);
    expect(events.at(-1)).toBe(`deposed at ${1_000_000 + 1000}: another replica holds the lease`);
    await e.stop();
  });

  it('cut off from the database (renewals hang), steps down when its lease may have expired, not later', async () => {
    const clock = new FakeClock();
    const lease = new ScriptedLease();
    const events: string[] = [];
    const e = election(lease, clock, events);
    const t0 = clock.monotonic();
    await e.start();
    await clock.advance(3000);
    // Renewed at 1, 2 and 3 s; the last answered renewal was sent at 3 s.
    lease.renewals = 'hang';
    await clock.advance(12_000);
    expect(e.role).toBe('follower');
    expect(lease.fences.at(-1)).toBe('closed');
    const deposed = events.find((x) => x.startsWith('deposed'));
    // 3 s (the last renewal sent) + 10 s (the lease): at 13 s.
    expect(deposed).toBe(`deposed at ${t0 + 13_000}: the lease could not be renewed before it may have expired`);
    lease.timeOut();
    await e.stop();
  });

  it('gives the lease up when it stops, so that a follower need not wait', async () => {
    const clock = new FakeClock();
    const lease = new ScriptedLease();
    const events: string[] = [];
    const e = election(lease, clock, events);
    await e.start();
    await e.stop();
    expect(lease.released).toEqual([1]);
    expect(lease.holder).toBeNull();
    expect(events.at(-1)).toMatch(/deposed at \d+: stopping/);
    expect(clock.pendingTimers()).toBe(0);
  });
});

import type { Reading } from '../domain/metrics.js';
import type { DeviceInfo } from '../domain/types.js';
import { WRITE_BEHIND_MS } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { LiveAgent } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { HeldAttempt } from './task-types.js';

/**
 * Heartbeats of every kind of agent: new metrics, the leases of the attempts the agent lists renewed and those
 * it no longer runs ended (see TaskEngine.heartbeat), the agent online, work it should not hold cancelled, the
 * device rescored. Network agents' heartbeats (many, each superseding the last) are written behind: within
 * WRITE_BEHIND_MS, together, instead of before the answer.
 */
export class Heartbeats {
  private readonly held = new Map<string, { device: DeviceInfo; at: number }>();
  private flushTimer: TimerHandle | null = null;
  /** Heartbeats applied since the start (for the metrics). */
  applied = 0;

  constructor(
    private readonly deps: { state: CoreState; store: Store; clock: Clock; events: EventBus; log: Logger },
  ) {}

  /**
   * Applies a heartbeat. Returns the writes to wait for (the agent coming online, a ring move, and with
   * `writeBehind` false the heartbeat itself), or null when there are none: the usual case when written behind.
   */
  apply(live: LiveAgent, metrics: Reading, held: readonly (string | HeldAttempt)[], ack: number | undefined, now: number, writeBehind: boolean): Promise<unknown> | null {
    const { state, store, clock } = this.deps;
    const base = live.agent.device;
    if (base === null) return null;
    this.applied++;
    const device: DeviceInfo = { ...base, ...metrics };
    const attempts = held.map((h) => (typeof h === 'string' ? { taskId: h } : h));
    const { ended, renewedUntil } = state.tasks.heartbeat(live.agent.id, attempts, ack);
    const writes: Promise<unknown>[] = [];
    if (writeBehind) {
      this.held.set(live.agent.id, { device, at: now });
      this.flushTimer ??= clock.setTimeout(() => void this.flush(), WRITE_BEHIND_MS);
      // Nothing the agent is told waits for these endings: an attempt it does not run needs no answer.
      ended?.catch((err: unknown) => this.deps.log.error({ err, agentId: live.agent.id }, 'ending attempts an agent does not run failed'));
    } else {
      writes.push(store.recordHeartbeat(live.agent.id, device, now));
      if (renewedUntil !== null) writes.push(store.renewLeases(live.agent.id, renewedUntil));
      if (ended !== null) writes.push(ended);
    }
    live.agent.device = device;
    live.agent.lastHeartbeatAt = now;
    live.agent.registeredAt ??= now;
    live.detector.heartbeat(clock.monotonic());
    if (live.agent.connectivity !== 'online') writes.push(this.markOnline(live));
    // Work the agent still runs but no longer holds (it ended, or went to another attempt, while the agent was
    // away) is cancelled: the agent is told to drop the stale attempt.
    for (const run of attempts) {
      if (!state.tasks.holds(live.agent.id, run.taskId, run.attempt)) {
        live.endpoint?.send('task_status', { task_id: run.taskId, attempt: run.attempt ?? Number.MAX_SAFE_INTEGER, status: 'cancel' });
      }
    }
    // New score, and the ring rules for a first placement or a health change.
    const sampled = state.fleet.sample(live.agent.id, device, now, { writeBehind });
    if (sampled !== null) writes.push(sampled);
    return writes.length === 0 ? null : writes.length === 1 ? (writes[0] as Promise<unknown>) : Promise.all(writes);
  }

  /**
   * An agent (re)registers with its device: recorded, timed from now by its failure detector, online, and
   * sampled. Resolves once that is committed.
   */
  async register(live: LiveAgent, device: DeviceInfo, now: number): Promise<void> {
    const write = this.deps.store.recordRegistration(live.agent.id, device, now);
    live.agent.device = device;
    live.agent.registeredAt ??= now;
    live.agent.lastHeartbeatAt = now;
    live.detector.heartbeat(this.deps.clock.monotonic());
    this.deps.events.emit('agent.registered', { agentId: live.agent.id });
    await Promise.all([write, this.markOnline(live), this.deps.state.fleet.sample(live.agent.id, device, now)]);
  }

  /** The agent is heard from: online, taking tasks again. Resolves once that is committed. */
  markOnline(live: LiveAgent): Promise<void> {
    if (live.agent.connectivity === 'online') return Promise.resolve();
    live.agent.connectivity = 'online';
    live.worker.online = true;
    this.deps.events.emit('agent.online', { agentId: live.agent.id });
    this.deps.state.tasks.workerChanged();
    return this.deps.state.fleet.setConnectivity(live.agent.id, 'online');
  }

  /** Writes the heartbeats held back, and the device samples with them. */
  async flush(): Promise<void> {
    this.flushTimer?.cancel();
    this.flushTimer = null;
    const held = [...this.held].map(([id, h]) => ({ id, device: h.device, at: h.at }));
    this.held.clear();
    // While the store cannot commit, held heartbeats are dropped (memory is rebuilt from the store); the next ones come soon.
    if (!this.deps.state.writable) return;
    await Promise.all([
      this.deps.store.recordHeartbeats(held).catch((err: unknown) => this.deps.log.error({ err, heartbeats: held.length }, 'writing held-back heartbeats failed')),
      this.deps.state.fleet.flushSamples(),
    ]);
  }

  /** Forgets what is held back (the state is rebuilt from the store). */
  drop(): void {
    this.flushTimer?.cancel();
    this.flushTimer = null;
    this.held.clear();
  }
}

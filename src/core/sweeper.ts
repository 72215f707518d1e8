import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { AgentDirectory } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';

/**
 * A sweep that comes this much later than its interval means the process stalled (it was paused, or too busy
 * to read its sockets): heartbeats that arrived meanwhile are read before anyone is suspected.
 */
export const STALL_THRESHOLD_MS = 250;

/**
 * The failure detector's pass over every agent and the task engine's clock work (leases, timeouts, deadlines),
 * run every `intervalMs`; it tells a stall of this process from its agents' silence.
 */
export class Sweeper {
  /** Monotonic end of the last sweep. */
  private lastSweepAt: number | null = null;

  constructor(
    private readonly o: { state: CoreState; agents: AgentDirectory; store: Store; clock: Clock; events: EventBus; log: Logger; intervalMs: number },
  ) {}

  /** The orchestrator starts: the next sweep's lateness is counted from now. */
  reset(): void {
    this.lastSweepAt = this.o.clock.monotonic();
  }

  /**
   * One pass. A pass that comes more than STALL_THRESHOLD_MS late means this process stalled (paused, or too
   * busy to read its sockets): heartbeats and results that arrived meanwhile have not been read yet. The stall
   * is discounted (no agent's silence and no lease counts it) and the pass is skipped, so that what waited is
   * read before anyone is suspected.
   */
  async sweep(): Promise<void> {
    const { state, agents, store, clock, events, log } = this.o;
    const start = clock.monotonic();
    const stalledMs = this.lastSweepAt === null ? 0 : start - this.lastSweepAt - this.o.intervalMs;
    if (stalledMs > STALL_THRESHOLD_MS) {
      for (const live of agents.values()) live.detector.discount(stalledMs, start);
      state.tasks.discount(stalledMs);
      this.lastSweepAt = start;
      log.warn({ stalledMs: Math.round(stalledMs) }, 'the orchestrator stalled: reading what waited before suspecting any agent');
      events.emit('orchestrator.stalled', { ms: stalledMs });
      return;
    }
    const writes: Promise<void>[] = [];
    for (const live of agents.values()) {
      const a = live.agent;
      if (a.connectivity === 'online' && live.detector.suspect(start)) {
        const silentMs = start - (live.detector.lastArrival ?? start);
        live.detector.reset();
        a.connectivity = 'offline';
        live.worker.online = false;
        writes.push(store.setConnectivity(a.id, 'offline'), state.fleet.setConnectivity(a.id, 'offline'));
        log.warn({ agentId: a.id, silentMs }, 'agent offline');
        events.emit('agent.offline', { agentId: a.id, silentMs });
        writes.push(state.tasks.workerLost(a.id, `agent ${a.id} went offline (no heartbeat for ${Math.round(silentMs / 1000)} s)`));
      }
    }
    try {
      await Promise.all(writes);
      await state.tasks.sweep();
    } finally {
      this.lastSweepAt = clock.monotonic();
    }
  }
}

import type { MessageType, PayloadMap } from '../protocol/envelope.js';
import type { EndpointStats } from '../protocol/reliable-endpoint.js';

/**
 * How the orchestrator talks to one agent: the in-process agents' reliable
 * endpoint, or a network agent's command queue.
 */
export interface AgentChannel {
  send<T extends MessageType>(type: T, payload: PayloadMap[T], options?: { reliable?: boolean }): string;
  close(): void;
  readonly isClosed: boolean;
  readonly stats: EndpointStats;
}

/** A command as a network agent receives it from the long-poll. */
export type Command =
  | { id: number; type: 'task_assignment'; taskId: string; attempt: number; taskType: string; params: Record<string, unknown>; timeoutMs: number }
  | { id: number; type: 'cancel'; taskId: string; attempt: number }
  | { id: number; type: 'ring_assignment'; ring: string; reason: string }
  | { id: number; type: 'shutdown'; reason: string };

type CommandBody = Command extends infer C ? (C extends { id: number } ? Omit<C, 'id'> : never) : never;

/** At most this many commands per long-poll reply. */
export const POLL_BATCH = 100;

/** Ids per start of the orchestrator: a start's ids are `boot × 2^32 + n`. */
export const IDS_PER_BOOT = 2 ** 32;

/**
 * Where command ids come from: one counter for every channel of a process, starting at the process's boot
 * number (stored, one more at each start) times IDS_PER_BOOT. So ids keep increasing across channels and
 * restarts (an agent's `ack` outlives both) without reading the wall clock.
 */
export class CommandIds {
  private next: number;

  constructor(boot: number) {
    this.next = boot * IDS_PER_BOOT + 1;
  }

  take(): number {
    return this.next++;
  }
}

/** The boot number of a start, from the last one stored (null on the first start). */
export function nextBoot(stored: number | null, wallNow: number): number {
  // Before boot numbers, ids were microseconds of the wall clock: the first boot number starts above them.
  const floor = Math.floor((wallNow * 1000) / IDS_PER_BOOT) + 1;
  return stored === null ? floor : stored + 1;
}

/**
 * A network agent's command queue. Commands stay queued until the agent
 * acknowledges them (the `ack` of its next poll names the last id it
 * handled), so a reply lost on the way is sent again. A long-poll waits until
 * a command arrives or its time is up.
 */
export class NetworkChannel implements AgentChannel {
  readonly stats: EndpointStats = { sent: 0, received: 0, dropped: 0, retransmitted: 0, duplicates: 0 };
  private readonly queue: Command[] = [];
  private closed = false;
  private waiter: { resolve: () => void; timer: ReturnType<typeof setTimeout> } | null = null;
  /** The highest id handed out in a reply, to count re-sends. */
  private handedOut = 0;
  /** The highest id the agent has acknowledged: every command up to it reached the agent. */
  private ackedUpTo = 0;

  constructor(private readonly ids: CommandIds) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The messages the orchestrator sends agents, as commands; the rest (simulation instructions) do not apply. */
  send<T extends MessageType>(type: T, payload: PayloadMap[T]): string {
    let body: CommandBody | null = null;
    if (type === 'task_assignment') {
      const p = payload as PayloadMap['task_assignment'];
      body = { type: 'task_assignment', taskId: p.task_id, attempt: p.attempt, taskType: p.task_type, params: p.parameters, timeoutMs: p.timeout_ms ?? 60_000 };
    } else if (type === 'task_status') {
      const p = payload as PayloadMap['task_status'];
      if (p.status === 'cancel') body = { type: 'cancel', taskId: p.task_id, attempt: p.attempt };
    } else if (type === 'ring_assignment') {
      const p = payload as PayloadMap['ring_assignment'];
      body = { type: 'ring_assignment', ring: p.ring, reason: p.reason };
    } else if (type === 'shutdown') {
      body = { type: 'shutdown', reason: (payload as PayloadMap['shutdown']).reason ?? 'shutdown' };
    }
    const id = this.ids.take();
    if (body === null || this.closed) {
      this.stats.dropped++;
      return String(id);
    }
    this.queue.push({ id, ...body });
    this.stats.sent++;
    this.wake();
    return String(id);
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    clearTimeout(w.timer);
    w.resolve();
  }

  /**
   * The agent's poll: drops what it acknowledged, then answers with what is
   * queued, waiting up to `waitMs` for something to arrive. A newer poll ends
   * an older one that is still waiting (it answers empty).
   */
  async poll(ack: number, waitMs: number): Promise<Command[]> {
    this.ackedUpTo = Math.max(this.ackedUpTo, ack);
    while (this.queue.length > 0 && (this.queue[0] as Command).id <= this.ackedUpTo) this.queue.shift();
    if (this.queue.length === 0 && waitMs > 0 && !this.closed) {
      this.wake();
      await new Promise<void>((resolve) => {
        this.waiter = { resolve, timer: setTimeout(() => {
          this.waiter = null;
          resolve();
        }, waitMs) };
      });
    }
    const out = this.queue.slice(0, POLL_BATCH);
    for (const c of out) if (c.id <= this.handedOut) this.stats.retransmitted++;
    this.handedOut = Math.max(this.handedOut, out.at(-1)?.id ?? 0);
    this.stats.received++;
    return out;
  }

  /** The highest command id the agent has acknowledged (0 before any). */
  get acked(): number {
    return this.ackedUpTo;
  }

  /** Answers a waiting poll now, with what is queued (the server is about to close its connections). */
  release(): void {
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }
}

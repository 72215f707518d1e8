import type { Clock, TimerHandle } from '../util/clock.js';
import type { AnyEnvelope, MessageType, PayloadMap } from './envelope.js';
import { makeEnvelope } from './envelope.js';

/** Puts an envelope on the wire towards the peer. May lose it; the endpoint retransmits. */
export type Wire = (envelope: AnyEnvelope) => void;

export interface EndpointStats {
  /** Envelopes sent (first transmissions, acknowledgements not counted). */
  sent: number;
  /** Envelopes received and dispatched (duplicates and acknowledgements not counted). */
  received: number;
  /** Reliable envelopes given up on: never acknowledged before the endpoint closed. */
  dropped: number;
  retransmitted: number;
  duplicates: number;
}

export interface EndpointOptions {
  id: string;
  peerId: string;
  clock: Clock;
  wire: Wire;
  onMessage: (envelope: AnyEnvelope) => void;
  /** Time between retransmissions of an unacknowledged envelope. @default 1000 */
  retryIntervalMs?: number;
  /** Retransmission interval cap; the interval doubles up to it. @default 10000 */
  maxRetryIntervalMs?: number;
  /** How many message ids to remember for duplicate suppression. @default 4096 */
  dedupeWindow?: number;
}

interface Pending {
  envelope: AnyEnvelope;
  timer: TimerHandle;
  interval: number;
}

/**
 * One side of a conversation with at-least-once delivery and exactly-once
 * processing. Every reliable envelope is retransmitted until the peer
 * acknowledges its id; the receiver acknowledges every copy it gets but hands
 * only the first to `onMessage`.
 */
export class ReliableEndpoint {
  readonly id: string;
  readonly peerId: string;
  readonly stats: EndpointStats = { sent: 0, received: 0, dropped: 0, retransmitted: 0, duplicates: 0 };
  private readonly clock: Clock;
  private wire: Wire;
  private readonly onMessage: (envelope: AnyEnvelope) => void;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly dedupeWindow: number;
  private readonly pending = new Map<string, Pending>();
  private readonly seen = new Set<string>();
  private closed = false;

  constructor(options: EndpointOptions) {
    this.id = options.id;
    this.peerId = options.peerId;
    this.clock = options.clock;
    this.wire = options.wire;
    this.onMessage = options.onMessage;
    this.retryMs = options.retryIntervalMs ?? 1000;
    this.maxRetryMs = options.maxRetryIntervalMs ?? 10_000;
    this.dedupeWindow = options.dedupeWindow ?? 4096;
  }

  /** Envelopes sent but not yet acknowledged. */
  get unacknowledged(): number {
    return this.pending.size;
  }

  /** Replaces the wire, e.g. when a peer reconnects; unacknowledged envelopes go out again on it. */
  rewire(wire: Wire): void {
    this.wire = wire;
    for (const p of this.pending.values()) this.transmit(p.envelope);
  }

  /**
   * Sends a message. Reliable messages (the default) are retransmitted until
   * acknowledged; unreliable ones (periodic heartbeats) are sent once.
   * Returns the message id.
   */
  send<T extends MessageType>(type: T, payload: PayloadMap[T], options: { reliable?: boolean } = {}): string {
    const envelope = makeEnvelope(type, this.id, this.peerId, payload, this.clock.now()) as AnyEnvelope;
    if (this.closed) {
      this.stats.dropped++;
      return envelope.message_id;
    }
    this.stats.sent++;
    if (options.reliable ?? true) {
      const entry: Pending = { envelope, timer: { cancel: () => undefined }, interval: this.retryMs };
      this.pending.set(envelope.message_id, entry);
      this.schedule(entry);
    }
    this.transmit(envelope);
    return envelope.message_id;
  }

  /** Feeds an envelope that arrived from the peer. */
  receive(envelope: AnyEnvelope): void {
    if (this.closed) return;
    if (envelope.message_type === 'acknowledgement') {
      const p = this.pending.get(envelope.payload.ack_of);
      if (p) {
        p.timer.cancel();
        this.pending.delete(envelope.payload.ack_of);
      }
      return;
    }
    this.transmit(
      makeEnvelope('acknowledgement', this.id, this.peerId, { ack_of: envelope.message_id }, this.clock.now()),
    );
    if (this.seen.has(envelope.message_id)) {
      this.stats.duplicates++;
      return;
    }
    this.remember(envelope.message_id);
    this.stats.received++;
    this.onMessage(envelope);
  }

  /** Stops retransmitting; whatever is still unacknowledged counts as dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      p.timer.cancel();
      this.stats.dropped++;
    }
    this.pending.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private schedule(entry: Pending): void {
    entry.timer = this.clock.setTimeout(() => {
      if (this.closed || !this.pending.has(entry.envelope.message_id)) return;
      this.stats.retransmitted++;
      this.transmit(entry.envelope);
      entry.interval = Math.min(entry.interval * 2, this.maxRetryMs);
      this.schedule(entry);
    }, entry.interval);
  }

  private transmit(envelope: AnyEnvelope): void {
    try {
      this.wire(envelope);
    } catch {
      // A wire that throws is a lost transmission; retransmission covers it.
    }
  }

  private remember(id: string): void {
    this.seen.add(id);
    if (this.seen.size > this.dedupeWindow) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }
}

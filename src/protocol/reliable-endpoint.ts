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
  /**
   * Handles a new message. When it returns a promise, the message is
   * acknowledged only once the promise resolves (for example once what it
   * changed is committed); if it rejects, the message is not acknowledged and
   * will be processed again when the peer retransmits it.
   */
  onMessage: (envelope: AnyEnvelope) => void | Promise<void>;
  /** Time between retransmissions of an unacknowledged envelope. @default 1000 */
  retryIntervalMs?: number;
  /** Retransmission interval cap; the interval doubles up to it. @default 10000 */
  maxRetryIntervalMs?: number;
  /** How many message ids to remember for duplicate suppression. @default 1024 */
  dedupeWindow?: number;
}

interface Pending {
  envelope: AnyEnvelope;
  /** When it goes out again unless acknowledged first. */
  nextAt: number;
  interval: number;
}

/**
 * One side of a conversation with at-least-once delivery and exactly-once
 * processing. Every reliable envelope is retransmitted until the peer
 * acknowledges its id; the receiver hands only the first copy to `onMessage`,
 * acknowledges it once handled, and acknowledges later copies again.
 */
export class ReliableEndpoint {
  readonly id: string;
  readonly peerId: string;
  readonly stats: EndpointStats = { sent: 0, received: 0, dropped: 0, retransmitted: 0, duplicates: 0 };
  private readonly clock: Clock;
  private wire: Wire;
  private readonly onMessage: (envelope: AnyEnvelope) => void | Promise<void>;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly dedupeWindow: number;
  private readonly pending = new Map<string, Pending>();
  /** One timer per endpoint, not per message: it wakes while anything is unacknowledged. */
  private retryTimer: TimerHandle | null = null;
  private acks: string[] = [];
  /** Message ids received: `processing` until handled, then `done`. */
  private readonly seen = new Map<string, 'processing' | 'done'>();
  private closed = false;

  constructor(options: EndpointOptions) {
    this.id = options.id;
    this.peerId = options.peerId;
    this.clock = options.clock;
    this.wire = options.wire;
    this.onMessage = options.onMessage;
    this.retryMs = options.retryIntervalMs ?? 1000;
    this.maxRetryMs = options.maxRetryIntervalMs ?? 10_000;
    this.dedupeWindow = options.dedupeWindow ?? 1024;
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
      this.pending.set(envelope.message_id, { envelope, nextAt: this.clock.monotonic() + this.retryMs, interval: this.retryMs });
      this.armRetry();
    }
    this.transmit(envelope);
    return envelope.message_id;
  }

  /** Feeds an envelope that arrived from the peer. */
  receive(envelope: AnyEnvelope): void {
    if (this.closed) return;
    if (envelope.message_type === 'acknowledgement') {
      this.pending.delete(envelope.payload.ack_of);
      if (envelope.payload.also) for (const id of envelope.payload.also) this.pending.delete(id);
      return;
    }
    const id = envelope.message_id;
    const state = this.seen.get(id);
    if (state !== undefined) {
      this.stats.duplicates++;
      // Handled already: the first acknowledgement was lost. Still being handled: it will be acknowledged then.
      if (state === 'done') this.acknowledge(id);
      return;
    }
    this.remember(id);
    this.stats.received++;
    let outcome: void | Promise<void>;
    try {
      outcome = this.onMessage(envelope);
    } catch {
      this.seen.delete(id);
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then(
        () => {
          if (this.seen.has(id)) this.seen.set(id, 'done');
          this.acknowledge(id);
        },
        () => this.seen.delete(id),
      );
    } else {
      this.seen.set(id, 'done');
      this.acknowledge(id);
    }
  }

  private acknowledge(id: string): void {
    if (this.closed) return;
    this.acks.push(id);
    if (this.acks.length === 1) setImmediate(this.sendAcks);
  }

  /** Sends the acknowledgements gathered this turn in one envelope. */
  private readonly sendAcks = (): void => {
    const [first, ...also] = this.acks;
    this.acks = [];
    if (first === undefined || this.closed) return;
    this.transmit(makeEnvelope('acknowledgement', this.id, this.peerId, also.length > 0 ? { ack_of: first, also } : { ack_of: first }, this.clock.now()));
  };

  /** Whether a reliable envelope sent from here still waits for the peer's acknowledgement. */
  isPending(messageId: string): boolean {
    return this.pending.has(messageId);
  }

  /** Stops retransmitting; whatever is still unacknowledged counts as dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.stats.dropped += this.pending.size;
    this.pending.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private armRetry(): void {
    if (this.retryTimer !== null || this.closed) return;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      if (this.closed) return;
      const now = this.clock.monotonic();
      for (const p of this.pending.values()) {
        if (p.nextAt > now) continue;
        this.stats.retransmitted++;
        this.transmit(p.envelope);
        p.interval = Math.min(p.interval * 2, this.maxRetryMs);
        p.nextAt = now + p.interval;
      }
      if (this.pending.size > 0) this.armRetry();
    }, this.retryMs);
  }

  private transmit(envelope: AnyEnvelope): void {
    try {
      this.wire(envelope);
    } catch {
      // A wire that throws is a lost transmission; retransmission covers it.
    }
  }

  private remember(id: string): void {
    this.seen.set(id, 'processing');
    if (this.seen.size > this.dedupeWindow) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }
}

import type { AnyEnvelope } from './envelope.js';
import type { Wire } from './reliable-endpoint.js';

/**
 * An in-process wire: delivers envelopes asynchronously (never inside the
 * sender's call stack, as a network would not), in order, everything sent in
 * one turn of the event loop arriving together in the next; and can lose
 * envelopes on purpose, so tests can show that retransmission and
 * de-duplication work.
 */
export interface LinkFaults {
  /** Returns true to lose this envelope. */
  drop?: (envelope: AnyEnvelope) => boolean;
}

/**
 * Makes a value and everything in it immutable. Two sides of an in-process
 * link share what crosses it; frozen, neither can change what the other sees
 * (copying every envelope instead cost about 15% of the queue's throughput).
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

export function localWire(deliver: (envelope: AnyEnvelope) => void, faults: LinkFaults = {}): Wire {
  let queue: AnyEnvelope[] = [];
  const flush = (): void => {
    const batch = queue;
    queue = [];
    for (const envelope of batch) deliver(envelope);
  };
  return (envelope) => {
    if (faults.drop?.(envelope)) return;
    queue.push(deepFreeze(envelope));
    if (queue.length === 1) setImmediate(flush);
  };
}

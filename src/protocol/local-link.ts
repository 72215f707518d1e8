import type { AnyEnvelope } from './envelope.js';
import type { Wire } from './reliable-endpoint.js';

/**
 * An in-process wire: delivers each envelope asynchronously (never inside the
 * sender's call stack, as a network would not) and can lose envelopes on
 * purpose, so tests can show that retransmission and de-duplication work.
 */
export interface LinkFaults {
  /** Returns true to lose this envelope. */
  drop?: (envelope: AnyEnvelope) => boolean;
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
    // A structured clone, so neither side can share objects with the other.
    queue.push(structuredClone(envelope));
    // Everything sent in one turn arrives together in the next, in order.
    if (queue.length === 1) setImmediate(flush);
  };
}

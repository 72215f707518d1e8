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
  return (envelope) => {
    if (faults.drop?.(envelope)) return;
    // A structured clone, so neither side can share objects with the other.
    const copy = structuredClone(envelope);
    setImmediate(() => deliver(copy));
  };
}

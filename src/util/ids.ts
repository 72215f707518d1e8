import { randomUUID } from 'node:crypto';
import type { Rng } from '../domain/random.js';
import { randomHex } from '../domain/random.js';

/** The seed's agent id form: `slave-` and 8 hex characters. */
export function newAgentId(rng: Rng): string {
  return `slave-${randomHex(rng, 8)}`;
}

export function newMasterId(rng: Rng): string {
  return `master-${randomHex(rng, 8)}`;
}

export function newTaskId(): string {
  return randomUUID();
}

/**
 * Message ids only need to be unique, not secret: a random prefix per process
 * and a counter, which is far cheaper than a UUID per message.
 */
const messagePrefix = randomUUID().slice(0, 13);
let messageCounter = 0;
export function newMessageId(): string {
  return `${messagePrefix}-${(++messageCounter).toString(36)}`;
}

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

export function newMessageId(): string {
  return randomUUID();
}

import type { Ring, RingOrUnassigned } from './types.js';
import { RINGS } from './types.js';

export type RingCounts = Record<RingOrUnassigned, number>;

export function emptyRingCounts(): RingCounts {
  return { canary: 0, dev: 0, stage: 0, prod: 0, unassigned: 0 };
}

/** Rings an unhealthy device may go to: early rings only, never prod. */
export const UNHEALTHY_RINGS: readonly Ring[] = ['canary', 'dev'];

function leastFilled(candidates: readonly Ring[], counts: RingCounts): Ring {
  let best = candidates[0] as Ring;
  for (const ring of candidates) if (counts[ring] < counts[best]) best = ring;
  return best;
}

/**
 * The seed's assignment rule. A healthy device goes to the least-filled ring
 * (ties go to the earlier ring); an unhealthy one to the less filled of canary
 * and dev. `counts` should not include the device being placed.
 */
export function chooseRing(healthy: boolean, counts: RingCounts): Ring {
  return leastFilled(healthy ? RINGS : UNHEALTHY_RINGS, counts);
}

export interface RingMember {
  id: string;
  ring: RingOrUnassigned;
  healthy: boolean;
  /** Why the device is unhealthy, for the move's stored reason. */
  unhealthyReasons: string[];
}

export interface PlannedMove {
  agentId: string;
  from: RingOrUnassigned;
  to: Ring;
  reason: string;
}

/**
 * Moves every unhealthy device out of prod into the less filled of canary/dev.
 * Deterministic: no random moves, and members are handled in the order given.
 */
export function planRebalance(members: readonly RingMember[], counts: RingCounts): PlannedMove[] {
  const working: RingCounts = { ...counts };
  const moves: PlannedMove[] = [];
  for (const m of members) {
    if (m.ring !== 'prod' || m.healthy) continue;
    const to = leastFilled(UNHEALTHY_RINGS, working);
    working.prod -= 1;
    working[to] += 1;
    moves.push({
      agentId: m.id,
      from: 'prod',
      to,
      reason: `rebalance: unhealthy in prod (${m.unhealthyReasons.join(', ') || 'unhealthy'})`,
    });
  }
  return moves;
}

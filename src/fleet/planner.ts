import { seedRuleFailures } from '../domain/health.js';
import { matchesRule, ringTargets } from '../domain/ring-config.js';
import type { DeviceRegistry } from './registry.js';
import { BINS, DECOMMISSIONED, NO_RING, PIN_MANUAL, PIN_NONE } from './registry.js';

/**
 * Ring assignment over the registry's columns.
 *
 * Who may move: a held device leaves its ring; a pinned one goes to its pin
 * (pins and holds are operator intent and ignore the dwell time); a device
 * with an in-flight deployment execution never moves; a device that moved
 * less than `dwellMs` ago stays; a device whose health is not known yet
 * (no heartbeat) stays unassigned. Everyone else is free, and the policy
 * places the free devices into what the fixed ones leave of each ring's
 * target.
 *
 * Policy `health` (the seed's intent): free devices in ascending score order
 * fill the rings in their configured order, so the least healthy go first
 * (canary) and the healthiest last (prod); a device failing the seed's yes/no
 * rule only goes to rings that allow it (by default canary and dev, never
 * prod), even when that overfills them. Hysteresis: a device whose score is
 * within `hysteresis` points of its ring's band (the cut points of the last
 * rebalance) is ranked as if it were inside the band, so small changes do not
 * move it.
 *
 * Policy `representative`: free devices ordered by stratum (site × model × OS)
 * are dealt out to the rings so that every running prefix stays within one
 * device of the target proportions: each ring gets its share of every
 * stratum, within a device or two. A device stays in its ring while that
 * ring is not ahead of its share.
 *
 * One sort of n Float64 keys plus linear passes: the cost of a full rebalance
 * is about that of sorting the scores.
 */

export interface PlannedMove {
  index: number;
  from: number;
  to: number;
  reason: string;
}

export interface Plan {
  moves: PlannedMove[];
  /** Score-bin cut points between consecutive rings (policy `health`), for hysteresis and incremental moves. */
  cuts: number[] | null;
  targets: number[];
}

const INDEX_SPACE = 4_194_304; // 2^22, MAX_DEVICES
const STICK_SPACE = 32;

let scratch = new Float64Array(0);
function keysBuffer(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

/** Whether the rebalancer may move device i now (pins and holds aside). */
export function movable(reg: DeviceRegistry, i: number, now: number): boolean {
  if (reg.inflight[i] !== 0 || reg.connectivity[i] === DECOMMISSIONED) return false;
  if (reg.ring[i] !== NO_RING && (reg.movedAt[i] as number) > 0 && now - (reg.movedAt[i] as number) < reg.ringConfig.dwellMs) return false;
  return true;
}

function scoreText(reg: DeviceRegistry, i: number): string {
  return ((reg.scoreBin[i] as number) / 10).toFixed(1);
}

export function unhealthyText(reg: DeviceRegistry, i: number): string {
  return seedRuleFailures(reg.battery[i] as number, reg.cpu[i] as number, reg.memory[i] as number, (x) => x.toFixed(1)).join(', ');
}

function pinReason(reg: DeviceRegistry, i: number): string {
  const to = reg.ringName(reg.pinRing[i] as number);
  if (reg.pinSource[i] === PIN_MANUAL) return `pinned to ${to} by an operator`;
  const config = reg.ringConfig;
  const subject = reg.attributes(i);
  const k = config.pinRules.findIndex((p) => matchesRule(p.rule, subject));
  return `pinned to ${to} by rule "${config.pins[k]?.rule ?? '?'}"`;
}

/** Plans a full rebalance. `cuts` are those of the previous plan (policy `health`), or null. */
export function planFull(reg: DeviceRegistry, now: number, cuts: readonly number[] | null): Plan {
  const config = reg.ringConfig;
  const R = config.rings.length;
  const n = reg.size;
  const fixed = new Array<number>(R).fill(0);
  const keys = keysBuffer(n);
  const moves: PlannedMove[] = [];
  let free = 0;
  let assignable = 0;

  for (let i = 0; i < n; i++) {
    if (reg.connectivity[i] === DECOMMISSIONED) continue;
    const ring = reg.ring[i] as number;
    if (reg.held[i] === 1) {
      if (ring !== NO_RING && reg.inflight[i] === 0) moves.push({ index: i, from: ring, to: NO_RING, reason: 'held: excluded from every ring and rollout' });
      continue;
    }
    if (reg.pinSource[i] !== PIN_NONE && reg.pinRing[i] !== NO_RING) {
      assignable++;
      const pin = reg.pinRing[i] as number;
      if (reg.inflight[i] !== 0 && ring !== NO_RING) {
        fixed[ring]!++;
      } else {
        fixed[pin]!++;
        if (ring !== pin) moves.push({ index: i, from: ring, to: pin, reason: pinReason(reg, i) });
      }
      continue;
    }
    if ((reg.scoreBin[i] as number) < 0) continue; // no health yet: stays unassigned
    assignable++;
    if (ring !== NO_RING && !movable(reg, i, now)) {
      fixed[ring]!++;
      continue;
    }
    keys[free++] = i; // the key is built below, per policy
  }

  const targets = ringTargets(config.rings, assignable);
  const cap = targets.map((t, k) => t - (fixed[k] as number));
  const out = config.policy === 'health' ? placeByHealth(reg, keys, free, cap, cuts, moves) : placeRepresentative(reg, keys, free, cap, moves);
  return { moves, cuts: out, targets };
}

function placeByHealth(reg: DeviceRegistry, keys: Float64Array, free: number, cap: number[], cuts: readonly number[] | null, moves: PlannedMove[]): number[] {
  const config = reg.ringConfig;
  const R = config.rings.length;
  const ok = config.unhealthyOk.some(Boolean) ? config.unhealthyOk : config.unhealthyOk.map(() => true);
  let lastOk = 0;
  ok.forEach((v, k) => {
    if (v) lastOk = k;
  });
  const margin = Math.round(config.hysteresis * 10);
  for (let f = 0; f < free; f++) {
    const i = keys[f] as number;
    let bin = reg.scoreBin[i] as number;
    const ring = reg.ring[i] as number;
    if (cuts && ring !== NO_RING && ring < R) {
      const lo = ring > 0 ? (cuts[ring - 1] as number) : 0;
      const hi = ring < R - 1 ? (cuts[ring] as number) : BINS - 1;
      if (bin >= lo - margin && bin <= hi + margin) bin = bin < lo ? lo : bin > hi ? hi : bin;
    }
    const u = reg.unhealthy[i] === 1 ? 0 : 1;
    const stick = ring === NO_RING ? STICK_SPACE - 1 : ring;
    keys[f] = ((u * 1024 + bin) * STICK_SPACE + stick) * INDEX_SPACE + i;
  }
  const sorted = keys.subarray(0, free).sort();
  const newCuts = cuts ? [...cuts] : new Array<number>(Math.max(0, R - 1)).fill(0);
  const maxBin = new Array<number>(R).fill(-1);
  let k = 0;
  for (let f = 0; f < free; f++) {
    const key = sorted[f] as number;
    const hi = Math.floor(key / INDEX_SPACE);
    const i = key - hi * INDEX_SPACE;
    const u = Math.floor(hi / STICK_SPACE / 1024);
    const bin = Math.floor(hi / STICK_SPACE) % 1024;
    let to: number;
    if (u === 0) {
      to = -1;
      for (let j = 0; j < R; j++) {
        if (ok[j] && (cap[j] as number) > 0) {
          to = j;
          break;
        }
      }
      if (to < 0) to = lastOk;
    } else {
      while (k < R && (cap[k] as number) <= 0) k++;
      to = k < R ? k : R - 1;
    }
    cap[to]!--;
    if (bin > (maxBin[to] as number)) maxBin[to] = bin;
    const from = reg.ring[i] as number;
    if (from !== to) {
      moves.push({
        index: i,
        from,
        to,
        reason:
          u === 0
            ? `health policy: fails the seed health rule (${unhealthyText(reg, i)}), kept to an early ring`
            : `health policy: score ${scoreText(reg, i)} ranks in ${reg.ringName(to)}`,
      });
    }
  }
  for (let j = 0; j < R - 1; j++) if ((maxBin[j] as number) >= 0) newCuts[j] = maxBin[j] as number;
  // Cut points never decrease along the rings.
  for (let j = 1; j < R - 1; j++) if ((newCuts[j] as number) < (newCuts[j - 1] as number)) newCuts[j] = newCuts[j - 1] as number;
  return newCuts;
}

function placeRepresentative(reg: DeviceRegistry, keys: Float64Array, free: number, cap: number[], moves: PlannedMove[]): number[] {
  const R = cap.length;
  for (let f = 0; f < free; f++) {
    const i = keys[f] as number;
    // Within a stratum, a fixed pseudo-random order (by device number), so a stratum is not split by import order.
    const hash = (Math.imul(i, 2654435761) >>> 22) & 1023;
    keys[f] = (((reg.stratum[i] as number) & 0xfffff) * 1024 + hash) * INDEX_SPACE + i;
  }
  const sorted = keys.subarray(0, free).sort();
  const goal = cap.map((c) => Math.max(0, c));
  const total = goal.reduce((a, b) => a + b, 0);
  const assigned = new Array<number>(R).fill(0);
  const placed = new Uint8Array(free);
  for (let f = 0; f < free; f++) {
    const key = sorted[f] as number;
    const i = key - Math.floor(key / INDEX_SPACE) * INDEX_SPACE;
    const share = (f + 1) / (total || 1);
    const current = reg.ring[i] as number;
    let to = -1;
    if (current !== NO_RING && current < R && (assigned[current] as number) <= (goal[current] as number) * share && (assigned[current] as number) < (goal[current] as number)) {
      to = current;
    } else {
      let best = -Infinity;
      for (let j = 0; j < R; j++) {
        const deficit = (goal[j] as number) * share - (assigned[j] as number);
        if ((assigned[j] as number) < (goal[j] as number) && deficit > best) {
          best = deficit;
          to = j;
        }
      }
      if (to < 0) to = R - 1;
    }
    assigned[to]!++;
    placed[f] = to;
  }
  for (let f = 0; f < free; f++) {
    const key = sorted[f] as number;
    const i = key - Math.floor(key / INDEX_SPACE) * INDEX_SPACE;
    const to = placed[f] as number;
    const from = reg.ring[i] as number;
    if (from !== to) {
      const a = reg.attributes(i);
      moves.push({ index: i, from, to, reason: `representative policy: stratum ${a.site ?? '-'} / ${a.model ?? '-'} / ${a.osName ?? '-'} spread over the rings` });
    }
  }
  return [];
}

/**
 * What to do right after one device's health changed (a heartbeat): O(log n).
 * Places a device that has no ring yet, moves a held or pinned one where it
 * belongs, and under policy `health` swaps a device whose score left its ring's
 * band by more than the hysteresis margin (or that fails the seed rule in a ring
 * that does not allow it) with the best-placed partner of the neighbouring ring,
 * so that ring sizes stay on target.
 */
export function planIncremental(reg: DeviceRegistry, i: number, now: number, cuts: readonly number[] | null): PlannedMove[] {
  const config = reg.ringConfig;
  const R = config.rings.length;
  const ring = reg.ring[i] as number;
  if (reg.connectivity[i] === DECOMMISSIONED || reg.inflight[i] !== 0) return [];
  if (reg.held[i] === 1) return ring === NO_RING ? [] : [{ index: i, from: ring, to: NO_RING, reason: 'held: excluded from every ring and rollout' }];
  if (reg.pinSource[i] !== PIN_NONE && reg.pinRing[i] !== NO_RING) {
    const pin = reg.pinRing[i] as number;
    return ring === pin ? [] : [{ index: i, from: ring, to: pin, reason: pinReason(reg, i) }];
  }
  const bin = reg.scoreBin[i] as number;
  if (bin < 0) return [];
  const ok = config.unhealthyOk.some(Boolean) ? config.unhealthyOk : config.unhealthyOk.map(() => true);
  const unhealthy = reg.unhealthy[i] === 1;
  if (ring === NO_RING) {
    // First placement: the band its score falls in (or the emptiest ring against its target before any cut exists).
    let to = -1;
    if (config.policy === 'health' && cuts) {
      to = 0;
      while (to < R - 1 && bin > (cuts[to] as number)) to++;
    } else {
      const sizes = config.rings.map((_, k) => (reg.aggregates[k]?.size ?? 0));
      const n = sizes.reduce((a, b) => a + b, 0) + 1;
      const targets = ringTargets(config.rings, n);
      let best = -Infinity;
      for (let k = 0; k < R; k++) {
        const d = ((targets[k] as number) - (sizes[k] as number)) / Math.max(1, targets[k] as number);
        if ((!unhealthy || ok[k] || config.policy !== 'health') && d > best) {
          best = d;
          to = k;
        }
      }
    }
    if (config.policy === 'health' && unhealthy && !ok[to]) to = lastAllowedAtOrBefore(ok, to);
    const reason =
      config.policy === 'health'
        ? unhealthy
          ? `first heartbeat: fails the seed health rule (${unhealthyText(reg, i)}), placed in an early ring`
          : `first heartbeat: score ${scoreText(reg, i)}, placed in ${reg.ringName(to)}`
        : 'first heartbeat: placed in the ring furthest below its target';
    return [{ index: i, from: NO_RING, to, reason }];
  }
  if (config.policy !== 'health' || !movable(reg, i, now)) return [];
  const free = (j: number): boolean => j !== i && reg.pinSource[j] === PIN_NONE && reg.held[j] === 0 && movable(reg, j, now);
  if (unhealthy && !ok[ring]) {
    const to = lastAllowedAtOrBefore(ok, ring);
    const partner = reg.extreme(to, true, (j) => free(j) && reg.unhealthy[j] === 0);
    const reason = `health changed: fails the seed health rule (${unhealthyText(reg, i)}), moved to an early ring`;
    if (partner < 0) return [{ index: i, from: ring, to, reason }];
    return [
      { index: i, from: ring, to, reason },
      { index: partner, from: to, to: ring, reason: `swapped with ${reg.ids[i] ?? '?'}: healthy (score ${scoreText(reg, partner)}), takes its place in ${reg.ringName(ring)}` },
    ];
  }
  if (!cuts) return [];
  const margin = Math.round(config.hysteresis * 10);
  if (ring > 0 && bin < (cuts[ring - 1] as number) - margin) {
    const to = ring - 1;
    const partner = reg.extreme(to, true, (j) => free(j) && (reg.scoreBin[j] as number) > bin && (reg.unhealthy[j] === 0 || (ok[ring] ?? false)));
    if (partner < 0) return [];
    return [
      { index: i, from: ring, to, reason: `health changed: score ${scoreText(reg, i)} fell below ${reg.ringName(ring)}'s band by more than the hysteresis` },
      { index: partner, from: to, to: ring, reason: `swapped with ${reg.ids[i] ?? '?'}: score ${scoreText(reg, partner)} is the best of ${reg.ringName(to)}` },
    ];
  }
  if (ring < R - 1 && bin > (cuts[ring] as number) + margin && (!unhealthy || ok[ring + 1])) {
    const to = ring + 1;
    const partner = reg.extreme(to, false, (j) => free(j) && (reg.scoreBin[j] as number) < bin);
    if (partner < 0) return [];
    return [
      { index: i, from: ring, to, reason: `health changed: score ${scoreText(reg, i)} rose above ${reg.ringName(ring)}'s band by more than the hysteresis` },
      { index: partner, from: to, to: ring, reason: `swapped with ${reg.ids[i] ?? '?'}: score ${scoreText(reg, partner)} is the lowest of ${reg.ringName(to)}` },
    ];
  }
  return [];
}

function lastAllowedAtOrBefore(ok: readonly boolean[], ring: number): number {
  for (let k = Math.min(ring, ok.length - 1); k >= 0; k--) if (ok[k]) return k;
  return 0;
}

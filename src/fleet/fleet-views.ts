import { OrchestratorError } from '../domain/errors.js';
import { round1 } from '../domain/health.js';
import type { HealthScore } from '../domain/health-score.js';
import { explainHealth } from '../domain/health-score.js';
import type { Reading } from '../domain/metrics.js';
import type { RingConfig } from '../domain/ring-config.js';
import { plainRingConfig, ringTargets } from '../domain/ring-config.js';
import type { Connectivity } from '../domain/types.js';
import { Heap } from '../util/heap.js';
import type { DeviceRegistry } from './registry.js';
import { CONNECTIVITY, DECOMMISSIONED, NO_RING, PIN_MANUAL, PIN_NONE } from './registry.js';

/** The most devices one page of a list holds. */
export const DEVICE_LIST_MAX = 1000;

export interface DeviceFilter {
  ring?: string;
  status?: Connectivity;
  healthBelow?: number;
  site?: string;
  department?: string;
  model?: string;
}

export type DeviceSort = 'id' | 'score' | '-score';

export interface DeviceSummary {
  id: string;
  ring: string;
  pinned: boolean;
  held: boolean;
  status: Connectivity;
  score: number | null;
  healthy: boolean | null;
  site: string | null;
  department: string | null;
  manufacturer: string | null;
  model: string | null;
  osName: string | null;
  tags: string[];
}

export interface DeviceDetail extends DeviceSummary {
  health: (HealthScore & { healthy: boolean | null }) | null;
  /** The device's metrics in the API's names (docs/api.md): the trends as `…PerHour`. */
  metrics: (Reading & { batteryDrainPerHour: number; cpuTrendPerHour: number; deploymentImpact: number; sampledAt: number }) | null;
  pin: { ring: string; source: 'rule' | 'manual' } | null;
  inflightExecutions: number;
  movedAt: number | null;
}

export interface RingView {
  name: string;
  share: number;
  min: number | null;
  max: number | null;
  allowUnhealthy: boolean;
  target: number;
  size: number;
  /** Of `size`, online now (the rest are offline). */
  online: number;
  health: { p10: number | null; p50: number | null; p90: number | null; unhealthy: number; unknown: number };
  bySite: Record<string, number>;
  byModel: Record<string, number>;
}

export interface RingsView {
  policy: string;
  hysteresis: number;
  dwellMs: number;
  rings: RingView[];
  unassigned: number;
  held: number;
  total: number;
  config: RingConfig;
}

/** The fleet at a glance, from the incremental aggregates. */
export interface FleetCensus {
  /** Every device the fleet knows, decommissioned ones included. */
  total: number;
  online: number;
  offline: number;
  /** Of the offline ones, silent (no sample) for longer than the census was asked about. */
  missing: number;
  decommissioned: number;
  /** Devices without a score yet. */
  unscored: number;
  /** Devices by health score, in 20 bands of 5 points (the last holds 95–100). */
  health: number[];
  /** Devices failing the seed's health rule. */
  unhealthy: number;
}

/** Health bands of the census: 5 points each. */
export const HEALTH_BAND = 5;

/*
 * How the fleet is shown: read-only views of the device registry, for the API.
 */

/** Every ring's size, target, health distribution and composition, from the incremental aggregates. */
export function ringsView(reg: DeviceRegistry): RingsView {
  const config = reg.ringConfig;
  const names = (m: Map<number, number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [code, n] of m) out[reg.interner.value(code) ?? '(none)'] = n;
    return out;
  };
  const inRings = config.rings.reduce((a, _, k) => a + (reg.aggregates[k]?.size ?? 0), 0);
  const targets = ringTargets(config.rings, inRings);
  const rings = config.rings.map((r, k): RingView => {
    const a = reg.aggregates[k];
    return {
      name: r.name,
      share: r.share,
      min: r.min ?? null,
      max: r.max ?? null,
      allowUnhealthy: config.unhealthyOk[k] ?? false,
      target: targets[k] ?? 0,
      size: a?.size ?? 0,
      online: a?.online ?? 0,
      health: {
        p10: a?.percentile(10) ?? null,
        p50: a?.percentile(50) ?? null,
        p90: a?.percentile(90) ?? null,
        unhealthy: a?.unhealthy ?? 0,
        unknown: (a?.size ?? 0) - (a?.bins.total ?? 0),
      },
      bySite: a ? names(a.bySite) : {},
      byModel: a ? names(a.byModel) : {},
    };
  });
  const unassigned = reg.aggregates[reg.unassignedSlot]?.size ?? 0;
  return {
    policy: config.policy,
    hysteresis: config.hysteresis,
    dwellMs: config.dwellMs,
    rings,
    unassigned,
    held: reg.heldCount,
    total: inRings + unassigned,
    config: plainRingConfig(config),
  };
}

/** Devices online, offline, missing (offline and silent since before `silentBefore`) and by health band. */
export function fleetCensus(reg: DeviceRegistry, silentBefore: number): FleetCensus {
  let inAggregates = 0;
  let online = 0;
  let scored = 0;
  let unhealthy = 0;
  const bands = 100 / HEALTH_BAND;
  const health = new Array<number>(bands).fill(0);
  for (const a of reg.aggregates) {
    inAggregates += a.size;
    online += a.online;
    scored += a.bins.total;
    unhealthy += a.unhealthy;
    // Bins are score ×10; band b holds bins [b×50, (b+1)×50), and the last one bin 1000 too.
    let below = 0;
    for (let b = 0; b < bands; b++) {
      const upTo = a.bins.prefix(b === bands - 1 ? 1000 : (b + 1) * HEALTH_BAND * 10 - 1);
      health[b] = (health[b] as number) + upTo - below;
      below = upTo;
    }
  }
  return {
    total: reg.size,
    online,
    offline: inAggregates - online,
    missing: reg.silentSince(silentBefore),
    decommissioned: reg.size - inAggregates,
    unscored: inAggregates - scored,
    health,
    unhealthy,
  };
}

export function deviceSummary(reg: DeviceRegistry, i: number): DeviceSummary {
  const a = reg.attributes(i);
  return {
    id: a.id,
    ring: reg.ringName(reg.ring[i] as number),
    pinned: reg.pinSource[i] !== PIN_NONE,
    held: reg.held[i] === 1,
    status: CONNECTIVITY[reg.connectivity[i] as number] as Connectivity,
    score: reg.score(i),
    healthy: reg.unhealthy[i] === 2 ? null : reg.unhealthy[i] === 0,
    site: a.site ?? null,
    department: a.department ?? null,
    manufacturer: a.manufacturer ?? null,
    model: a.model ?? null,
    osName: a.osName ?? null,
    tags: [...(a.tags ?? [])],
  };
}

export function deviceDetail(reg: DeviceRegistry, i: number): DeviceDetail {
  const known = (reg.scoreBin[i] as number) >= 0;
  const inputs = reg.healthInputs(i);
  return {
    ...deviceSummary(reg, i),
    health: known ? { ...explainHealth(inputs, reg.healthConfig), healthy: reg.unhealthy[i] === 0 } : null,
    metrics: known
      ? {
          battery: inputs.battery === null ? null : round1(inputs.battery),
          charging: inputs.charging,
          cpu: round1(inputs.cpu),
          memory: round1(inputs.memory),
          disk: round1(inputs.disk),
          batteryDrainPerHour: round1(inputs.drain),
          cpuTrendPerHour: round1(inputs.cpuTrend),
          deploymentImpact: Math.round(inputs.impact * 100) / 100,
          sampledAt: reg.sampledAt[i] as number,
        }
      : null,
    pin: reg.pinSource[i] === PIN_NONE ? null : { ring: reg.ringName(reg.pinRing[i] as number), source: reg.pinSource[i] === PIN_MANUAL ? 'manual' : 'rule' },
    inflightExecutions: reg.inflight[i] as number,
    // 0: never moved between two rings (a first placement, or none yet), as the planner's dwell reads it.
    movedAt: (reg.movedAt[i] as number) === 0 ? null : (reg.movedAt[i] as number),
  };
}

/**
 * A page of devices. `id` order walks the registry from the cursor and stops
 * at `limit` matches; score order keeps the best `limit` candidates past the
 * cursor in one pass. The cursor is opaque to clients.
 */
export function listDevices(reg: DeviceRegistry, filter: DeviceFilter, sort: DeviceSort, limit: number, cursor: string | undefined): { devices: DeviceSummary[]; nextCursor: string | null } {
  const n = reg.size;
  const lim = Math.max(1, Math.min(limit, DEVICE_LIST_MAX));
  const ring = filter.ring === undefined ? undefined : filter.ring === 'unassigned' ? NO_RING : reg.ringNumber(filter.ring);
  if (filter.ring !== undefined && filter.ring !== 'unassigned' && ring === NO_RING) {
    throw new OrchestratorError('ORCH_UNKNOWN_RING', `unknown ring "${filter.ring}"; the rings are ${reg.ringConfig.rings.map((r) => r.name).join(', ')}`);
  }
  const status = filter.status === undefined ? undefined : CONNECTIVITY.indexOf(filter.status);
  // An attribute value no device has matches nothing (code -1).
  const code = (v: string | undefined): number | undefined => (v === undefined ? undefined : (reg.interner.find(v) ?? -1));
  const site = code(filter.site);
  const dept = code(filter.department);
  const model = code(filter.model);
  const below = filter.healthBelow === undefined ? undefined : Math.round(filter.healthBelow * 10);
  const match = (i: number): boolean =>
    (ring === undefined || reg.ring[i] === ring) &&
    (status === undefined || reg.connectivity[i] === status) &&
    (site === undefined || reg.site[i] === site) &&
    (dept === undefined || reg.department[i] === dept) &&
    (model === undefined || reg.model[i] === model) &&
    (below === undefined || ((reg.scoreBin[i] as number) >= 0 && (reg.scoreBin[i] as number) < below));
  const decoded = decodeCursor(cursor, sort);
  if (sort === 'id') {
    const out: DeviceSummary[] = [];
    let i = decoded ? decoded.index + 1 : 0;
    for (; i < n && out.length < lim; i++) if (match(i)) out.push(deviceSummary(reg, i));
    const more = out.length === lim && i < n;
    return { devices: out, nextCursor: more ? encodeCursor(sort, -1, i - 1) : null };
  }
  // Score order (devices without a score last, then by device number).
  if (status !== DECOMMISSIONED) return listByScore(reg, sort, lim, decoded, ring, below, match);
  // Decommissioned devices are in no score list: one pass keeping the first `lim` past the cursor.
  const dir = sort === 'score' ? 1 : -1;
  const keyOf = (i: number): number => {
    const b = reg.scoreBin[i] as number;
    const k = b < 0 ? 2000 : dir === 1 ? b : 1000 - b;
    return k * 4_194_304 + i;
  };
  const after = decoded ? decoded.key * 4_194_304 + decoded.index : -1;
  const top = new Heap<number>((a, b) => a > b); // the largest kept key first: the one to drop
  for (let i = 0; i < n; i++) {
    if (!match(i)) continue;
    const k = keyOf(i);
    if (k <= after) continue;
    if (top.size < lim) top.push(k);
    else if (k < (top.peek() as number)) top.replaceTop(k);
  }
  const best = top.toArray().sort((a, b) => a - b);
  const devices = best.map((k) => deviceSummary(reg, k % 4_194_304));
  const last = best.at(-1);
  const more = best.length === lim && last !== undefined;
  return { devices, nextCursor: more ? encodeCursor(sort, Math.floor(last / 4_194_304), last % 4_194_304) : null };
}

/** The cursor key of devices without a score: after every bin. */
const UNSCORED = 2000;

/**
 * A page in score order, read from the registry's per-bin lists: bin after bin (worst first for `score`,
 * best first for `-score`), the devices of a bin in device-number order, then the devices in no bin (without
 * a score, or decommissioned).
 * Bins the filter's ring does not hold are skipped by their counts, so a page costs about what it shows
 * (plus the devices of the bins it passes that the filter rejects), not a pass over the fleet. Only the
 * unscored tail, reached after every scored device, is found by a pass.
 */
function listByScore(
  reg: DeviceRegistry,
  sort: DeviceSort,
  lim: number,
  cursor: { key: number; index: number } | null,
  ring: number | undefined,
  below: number | undefined,
  match: (i: number) => boolean,
): { devices: DeviceSummary[]; nextCursor: string | null } {
  const worstFirst = sort === 'score';
  const slots = ring === undefined ? reg.aggregates.map((_, k) => k) : [ring === NO_RING ? reg.unassignedSlot : ring];
  const picked: number[] = [];
  let lastKey = -1;
  // The cursor's key is its bin as the sort sees it: 0 first (the bin itself for `score`, 1000 − bin for `-score`).
  const from = cursor === null ? 0 : cursor.key;
  const members: number[] = [];
  for (let k = from; k <= 1000 && picked.length < lim; k++) {
    const bin = worstFirst ? k : 1000 - k;
    if (below !== undefined && bin >= below) {
      if (worstFirst) break;
      continue;
    }
    members.length = 0;
    for (const slot of slots) if (reg.countInBins(slot, bin, bin) > 0) reg.binMembers(slot, bin, members);
    if (members.length === 0) continue;
    members.sort((a, b) => a - b);
    for (const i of members) {
      if (cursor !== null && k === cursor.key && i <= cursor.index) continue;
      if (!match(i)) continue;
      picked.push(i);
      lastKey = k;
      if (picked.length === lim) break;
    }
  }
  if (picked.length < lim) {
    const start = cursor !== null && cursor.key === UNSCORED ? cursor.index + 1 : 0;
    for (let i = start; i < reg.size && picked.length < lim; i++) {
      // Not in any bin: no score yet, or decommissioned (out of every ring and its ranking).
      if (((reg.scoreBin[i] as number) < 0 || reg.connectivity[i] === DECOMMISSIONED) && match(i)) {
        picked.push(i);
        lastKey = UNSCORED;
      }
    }
  }
  const last = picked.at(-1);
  return {
    devices: picked.map((i) => deviceSummary(reg, i)),
    nextCursor: picked.length === lim && last !== undefined ? encodeCursor(sort, lastKey, last) : null,
  };
}

function encodeCursor(sort: DeviceSort, key: number, index: number): string {
  return Buffer.from(`${sort}.${key}.${index}`).toString('base64url');
}

function decodeCursor(cursor: string | undefined, sort: DeviceSort): { key: number; index: number } | null {
  if (cursor === undefined) return null;
  const m = /^(id|score|-score)\.(-?\d+)\.(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m || m[1] !== sort) throw new OrchestratorError('ORCH_VALIDATION', 'cursor is not one this server gave out for this sort order');
  return { key: Number(m[2]), index: Number(m[3]) };
}

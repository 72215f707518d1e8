import type { HealthInputs, HealthScoreConfig } from '../domain/health-score.js';
import type { DeviceMetrics, Reading } from '../domain/metrics.js';
import { healthScore, IMPACT_DECAY } from '../domain/health-score.js';
import { passesSeedRule } from '../domain/health.js';
import type { CompiledRingConfig, RuleSubject } from '../domain/ring-config.js';
import { matchesRule } from '../domain/ring-config.js';

/**
 * Every device of the fleet, held in memory as columns (typed arrays indexed
 * by a dense device number), so that a million devices fit in well under a
 * kilobyte each and a full pass over them is a tight loop. Attribute strings
 * are interned. Per-ring aggregates (size, score histogram, seed health,
 * counts by site and model) are kept up to date on every change, so reading
 * them never walks the fleet.
 *
 * Pure state: no I/O, no clock. The fleet service persists what changes.
 */

export const NO_RING = 255;
/** Score histogram resolution: 0.1 point, 1001 bins. */
export const BINS = 1001;
export const MAX_DEVICES = 1 << 22;

export const CONNECTIVITY = ['online', 'offline', 'decommissioned'] as const;
export type DeviceConnectivity = (typeof CONNECTIVITY)[number];
/** The code of `decommissioned` in the `connectivity` column (codes are indexes of CONNECTIVITY): in no ring, never moved. */
export const DECOMMISSIONED = 2;
/** The codes of `online` and `offline`. */
export const ONLINE = 0;
export const OFFLINE = 1;
/** Offline devices are counted by the minute they were last heard from (see `silentSince`). */
const MINUTE = 60_000;
/** Compile-time check that DECOMMISSIONED is the index of `decommissioned`. */
export const DECOMMISSIONED_IS_ITS_INDEX: (typeof CONNECTIVITY)[typeof DECOMMISSIONED] extends 'decommissioned' ? true : never = true;

export const PIN_NONE = 0;
export const PIN_RULE = 1;
export const PIN_MANUAL = 2;

/** Strings to small integers and back; code 0 is "none". */
export class Interner {
  private readonly codes = new Map<string, number>();
  readonly values: (string | undefined)[] = [undefined];

  code(value: string | undefined | null): number {
    if (value === undefined || value === null || value === '') return 0;
    let c = this.codes.get(value);
    if (c === undefined) {
      c = this.values.length;
      this.codes.set(value, c);
      this.values.push(value);
    }
    return c;
  }

  find(value: string): number | undefined {
    return this.codes.get(value);
  }

  value(code: number): string | undefined {
    return this.values[code];
  }
}

/** A device's attributes: what pin and hold rules read, without the id. */
export type DeviceAttributes = Omit<RuleSubject, 'id'>;

/** Fenwick tree over score bins: counts, prefix sums and rank search in O(log BINS). */
class BinCounts {
  private readonly tree = new Int32Array(BINS + 1);
  total = 0;

  add(bin: number, delta: number): void {
    this.total += delta;
    for (let i = bin + 1; i <= BINS; i += i & -i) this.tree[i]! += delta;
  }

  /** How many elements sit in bins 0..bin. */
  prefix(bin: number): number {
    let sum = 0;
    for (let i = bin + 1; i > 0; i -= i & -i) sum += this.tree[i] as number;
    return sum;
  }

  /** The bin holding the element of 0-based rank `k` in ascending order. */
  binAtRank(k: number): number {
    let pos = 0;
    let rem = k + 1;
    for (let step = 1 << 10; step > 0; step >>= 1) {
      const next = pos + step;
      if (next <= BINS && (this.tree[next] as number) < rem) {
        pos = next;
        rem -= this.tree[next] as number;
      }
    }
    return pos; // 0-based bin index
  }
}

/** Aggregates of one ring (or of the unassigned devices). */
export class RingAggregate {
  size = 0;
  /** Of them, online (the rest are offline: decommissioned devices are in no aggregate). */
  online = 0;
  /** Devices with a known score, by bin. */
  readonly bins = new BinCounts();
  /** Devices failing the seed's yes/no rule. */
  unhealthy = 0;
  readonly bySite = new Map<number, number>();
  readonly byModel = new Map<number, number>();

  percentile(p: number): number | null {
    const n = this.bins.total;
    if (n === 0) return null;
    const k = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
    return this.bins.binAtRank(k) / 10;
  }
}

function bump(map: Map<number, number>, key: number, delta: number): void {
  const v = (map.get(key) ?? 0) + delta;
  if (v === 0) map.delete(key);
  else map.set(key, v);
}

export class DeviceRegistry {
  size = 0;
  private capacity: number;
  readonly ids: string[] = [];
  private readonly index = new Map<string, number>();
  readonly interner = new Interner();
  /** Interned "tag1\u0000tag2" sets. */
  readonly tagSets = new Interner();
  readonly strata = new Interner();

  battery: Float32Array;
  cpu: Float32Array;
  memory: Float32Array;
  disk: Float32Array;
  charging: Uint8Array;
  drain: Float32Array;
  cpuTrend: Float32Array;
  impact: Float32Array;
  /** ms of the last metrics sample; 0 when none yet. */
  sampledAt: Float64Array;
  /** Score ×10 as an integer bin (0–1000); -1 while unknown. */
  scoreBin: Int16Array;
  /** 1 when failing the seed rule, 0 when passing, 2 while unknown. */
  unhealthy: Uint8Array;

  site: Uint32Array;
  department: Uint32Array;
  manufacturer: Uint32Array;
  model: Uint32Array;
  osName: Uint32Array;
  tagSet: Uint32Array;
  /** Interned site × model × OS, for the representative policy. */
  stratum: Uint32Array;

  ring: Uint8Array;
  pinRing: Uint8Array;
  pinSource: Uint8Array;
  held: Uint8Array;
  /** When a device last moved between two rings (epoch ms); 0 if it never has (a first placement does not count). */
  movedAt: Float64Array;
  /** ms of the device's last history point (see Fleet); 0 for none since the start. */
  historyAt: Float64Array;
  inflight: Uint16Array;
  connectivity: Uint8Array;

  /** Devices of each (slot, bin), as intrusive doubly linked lists, to find a ring's best or worst device fast. */
  private heads = new Int32Array(0);
  private next: Int32Array;
  private prev: Int32Array;

  /** One per configured ring, then one for unassigned devices (held ones included). */
  aggregates: RingAggregate[] = [];
  /** Devices currently held, and how many of them failed the seed rule. */
  heldCount = 0;
  healthyCount = 0;
  /** Offline devices by the minute of their last sample (0: never sampled), to count those silent for long. */
  private readonly offlineByMinute = new Map<number, number>();
  private ringCount = 0;

  constructor(
    private config: CompiledRingConfig,
    private scoreConfig: HealthScoreConfig,
    initialCapacity = 1024,
  ) {
    this.capacity = initialCapacity;
    this.battery = new Float32Array(initialCapacity);
    this.cpu = new Float32Array(initialCapacity);
    this.memory = new Float32Array(initialCapacity);
    this.disk = new Float32Array(initialCapacity);
    this.charging = new Uint8Array(initialCapacity);
    this.drain = new Float32Array(initialCapacity);
    this.cpuTrend = new Float32Array(initialCapacity);
    this.impact = new Float32Array(initialCapacity);
    this.sampledAt = new Float64Array(initialCapacity);
    this.scoreBin = new Int16Array(initialCapacity);
    this.unhealthy = new Uint8Array(initialCapacity);
    this.site = new Uint32Array(initialCapacity);
    this.department = new Uint32Array(initialCapacity);
    this.manufacturer = new Uint32Array(initialCapacity);
    this.model = new Uint32Array(initialCapacity);
    this.osName = new Uint32Array(initialCapacity);
    this.tagSet = new Uint32Array(initialCapacity);
    this.stratum = new Uint32Array(initialCapacity);
    this.ring = new Uint8Array(initialCapacity);
    this.pinRing = new Uint8Array(initialCapacity);
    this.pinSource = new Uint8Array(initialCapacity);
    this.held = new Uint8Array(initialCapacity);
    this.movedAt = new Float64Array(initialCapacity);
    this.historyAt = new Float64Array(initialCapacity);
    this.inflight = new Uint16Array(initialCapacity);
    this.connectivity = new Uint8Array(initialCapacity);
    this.next = new Int32Array(initialCapacity);
    this.prev = new Int32Array(initialCapacity);
    this.resetAggregates();
  }

  get ringConfig(): CompiledRingConfig {
    return this.config;
  }

  get healthConfig(): HealthScoreConfig {
    return this.scoreConfig;
  }

  get unassignedSlot(): number {
    return this.ringCount;
  }

  indexOf(id: string): number | undefined {
    return this.index.get(id);
  }

  private grow(min: number): void {
    let cap = this.capacity;
    while (cap < min) cap *= 2;
    if (cap > MAX_DEVICES) cap = MAX_DEVICES;
    if (cap < min) throw new Error(`the registry holds at most ${MAX_DEVICES} devices`);
    const g = <T extends Float32Array | Float64Array | Uint8Array | Uint16Array | Int16Array | Uint32Array | Int32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      b.set(a);
      return b;
    };
    this.battery = g(this.battery);
    this.cpu = g(this.cpu);
    this.memory = g(this.memory);
    this.disk = g(this.disk);
    this.charging = g(this.charging);
    this.drain = g(this.drain);
    this.cpuTrend = g(this.cpuTrend);
    this.impact = g(this.impact);
    this.sampledAt = g(this.sampledAt);
    this.scoreBin = g(this.scoreBin);
    this.unhealthy = g(this.unhealthy);
    this.site = g(this.site);
    this.department = g(this.department);
    this.manufacturer = g(this.manufacturer);
    this.model = g(this.model);
    this.osName = g(this.osName);
    this.tagSet = g(this.tagSet);
    this.stratum = g(this.stratum);
    this.ring = g(this.ring);
    this.pinRing = g(this.pinRing);
    this.pinSource = g(this.pinSource);
    this.held = g(this.held);
    this.movedAt = g(this.movedAt);
    this.historyAt = g(this.historyAt);
    this.inflight = g(this.inflight);
    this.connectivity = g(this.connectivity);
    this.next = g(this.next);
    this.prev = g(this.prev);
    this.capacity = cap;
  }

  // ---------------------------------------------------------------- aggregates

  private slotOf(i: number): number {
    const r = this.ring[i] as number;
    return r === NO_RING ? this.ringCount : r;
  }

  private enter(i: number): void {
    const a = this.aggregates[this.slotOf(i)] as RingAggregate;
    a.size++;
    const c = this.connectivity[i];
    if (c === ONLINE) a.online++;
    else if (c === OFFLINE) bump(this.offlineByMinute, Math.floor((this.sampledAt[i] as number) / MINUTE), 1);
    const bin = this.scoreBin[i] as number;
    if (bin >= 0) {
      a.bins.add(bin, 1);
      const h = this.slotOf(i) * BINS + bin;
      const head = this.heads[h] as number;
      this.prev[i] = -1;
      this.next[i] = head;
      if (head >= 0) this.prev[head] = i;
      this.heads[h] = i;
    }
    const u = this.unhealthy[i];
    if (u === 1) a.unhealthy++;
    else if (u === 0) this.healthyCount++;
    bump(a.bySite, this.site[i] as number, 1);
    bump(a.byModel, this.model[i] as number, 1);
    if (this.held[i] === 1) this.heldCount++;
  }

  private leave(i: number): void {
    const a = this.aggregates[this.slotOf(i)] as RingAggregate;
    a.size--;
    const c = this.connectivity[i];
    if (c === ONLINE) a.online--;
    else if (c === OFFLINE) bump(this.offlineByMinute, Math.floor((this.sampledAt[i] as number) / MINUTE), -1);
    const bin = this.scoreBin[i] as number;
    if (bin >= 0) {
      a.bins.add(bin, -1);
      const p = this.prev[i] as number;
      const n = this.next[i] as number;
      if (p >= 0) this.next[p] = n;
      else this.heads[this.slotOf(i) * BINS + bin] = n;
      if (n >= 0) this.prev[n] = p;
    }
    const u = this.unhealthy[i];
    if (u === 1) a.unhealthy--;
    else if (u === 0) this.healthyCount--;
    bump(a.bySite, this.site[i] as number, -1);
    bump(a.byModel, this.model[i] as number, -1);
    if (this.held[i] === 1) this.heldCount--;
  }

  private resetAggregates(): void {
    this.ringCount = this.config.rings.length;
    this.aggregates = Array.from({ length: this.ringCount + 1 }, () => new RingAggregate());
    this.heads = new Int32Array((this.ringCount + 1) * BINS).fill(-1);
    this.heldCount = 0;
    this.healthyCount = 0;
    this.offlineByMinute.clear();
    for (let i = 0; i < this.size; i++) if (this.connectivity[i] !== DECOMMISSIONED) this.enter(i);
  }

  // ---------------------------------------------------------------- changes

  /** Adds a device, or updates the attributes of a known one. Returns its number. */
  upsert(id: string, attrs: DeviceAttributes): { index: number; created: boolean } {
    let i = this.index.get(id);
    const created = i === undefined;
    if (i === undefined) {
      if (this.size >= this.capacity) this.grow(this.size + 1);
      i = this.size++;
      this.ids.push(id);
      this.index.set(id, i);
      this.ring[i] = NO_RING;
      this.pinRing[i] = NO_RING;
      this.scoreBin[i] = -1;
      this.unhealthy[i] = 2;
      this.setAttributes(i, attrs);
      this.applyRules(i);
      this.enter(i);
    } else {
      const live = this.connectivity[i] !== DECOMMISSIONED;
      if (live) this.leave(i);
      this.setAttributes(i, attrs);
      this.applyRules(i);
      if (live) this.enter(i);
    }
    return { index: i, created };
  }

  private setAttributes(i: number, a: DeviceAttributes): void {
    const n = this.interner;
    this.site[i] = n.code(a.site);
    this.department[i] = n.code(a.department);
    this.manufacturer[i] = n.code(a.manufacturer);
    this.model[i] = n.code(a.model);
    this.osName[i] = n.code(a.osName);
    const tags = a.tags && a.tags.length > 0 ? [...new Set(a.tags)].sort().join('\u0000') : undefined;
    this.tagSet[i] = this.tagSets.code(tags);
    this.stratum[i] = this.strata.code(`${this.site[i]}:${this.model[i]}:${this.osName[i]}`);
  }

  attributes(i: number): RuleSubject {
    const n = this.interner;
    const tags = this.tagSets.value(this.tagSet[i] as number);
    return {
      id: this.ids[i] as string,
      site: n.value(this.site[i] as number),
      department: n.value(this.department[i] as number),
      manufacturer: n.value(this.manufacturer[i] as number),
      model: n.value(this.model[i] as number),
      osName: n.value(this.osName[i] as number),
      tags: tags === undefined ? [] : tags.split('\u0000'),
    };
  }

  /** Evaluates holds and rule pins for one device (a manual pin is kept). */
  private applyRules(i: number): void {
    const subject = this.attributes(i);
    this.held[i] = this.config.holdRules.some((r) => matchesRule(r, subject)) ? 1 : 0;
    if (this.pinSource[i] === PIN_MANUAL) return;
    const pin = this.config.pinRules.find((p) => matchesRule(p.rule, subject));
    this.pinRing[i] = pin ? pin.ring : NO_RING;
    this.pinSource[i] = pin ? PIN_RULE : PIN_NONE;
  }

  /**
   * A new ring configuration. Ring numbers are remapped by name (a device in a
   * ring that no longer exists becomes unassigned); rules are evaluated again
   * and the aggregates rebuilt: O(n × rules), only on a configuration change.
   */
  reconfigure(config: CompiledRingConfig): void {
    const remap = this.config.rings.map((r) => {
      const j = config.rings.findIndex((x) => x.name === r.name);
      return j < 0 ? NO_RING : j;
    });
    this.config = config;
    // Rule evaluation per distinct attribute combination would be faster; configuration changes are rare.
    for (let i = 0; i < this.size; i++) {
      const r = this.ring[i] as number;
      if (r !== NO_RING) this.ring[i] = remap[r] ?? NO_RING;
      if (this.pinSource[i] === PIN_MANUAL) {
        const p = this.pinRing[i] as number;
        const q = p === NO_RING ? NO_RING : (remap[p] ?? NO_RING);
        this.pinRing[i] = q;
        if (q === NO_RING) this.pinSource[i] = PIN_NONE;
      }
      this.applyRules(i);
    }
    this.resetAggregates();
  }

  setHealthConfig(config: HealthScoreConfig): void {
    this.scoreConfig = config;
    for (let i = 0; i < this.size; i++) if ((this.scoreBin[i] as number) >= 0) this.rescore(i);
  }

  /**
   * A metrics sample (a heartbeat): updates the smoothed trends and the score,
   * and the aggregates of the device's ring. O(log BINS).
   */
  sample(i: number, m: Reading, at: number): void {
    const prevAt = this.sampledAt[i] as number;
    if (prevAt > 0 && at > prevAt) {
      const hours = (at - prevAt) / 3_600_000;
      // Trends only over gaps long enough to mean something, smoothed so one odd sample does not dominate.
      if (hours >= 1 / 3600) {
        const alpha = Math.min(1, hours * 6); // about a 10-minute time constant
        // No battery (now or before) is no drain.
        const prev = this.battery[i] as number;
        const drainNow = m.charging || m.battery === null || Number.isNaN(prev) ? 0 : (prev - m.battery) / hours;
        const cpuNow = (m.cpu - (this.cpu[i] as number)) / hours;
        this.drain[i] = (this.drain[i] as number) + alpha * (clampRate(drainNow) - (this.drain[i] as number));
        this.cpuTrend[i] = (this.cpuTrend[i] as number) + alpha * (clampRate(cpuNow) - (this.cpuTrend[i] as number));
      }
    }
    const live = this.connectivity[i] !== DECOMMISSIONED;
    if (live) this.leave(i);
    // Without a battery: NaN and 2 (the score counts such a machine as on mains power; views show null).
    this.battery[i] = m.battery ?? NaN;
    this.charging[i] = m.battery === null ? 2 : m.charging ? 1 : 0;
    this.cpu[i] = m.cpu;
    this.memory[i] = m.memory;
    this.disk[i] = m.disk;
    this.sampledAt[i] = at;
    this.unhealthy[i] = passesSeedRule(m.battery, m.cpu, m.memory) ? 0 : 1;
    this.scoreBin[i] = this.computeBin(i);
    if (live) this.enter(i);
  }

  /** A deployment outcome on this device: hurt (1) or unharmed (0) moves `impact` by IMPACT_DECAY. */
  recordImpact(i: number, hurt: boolean): void {
    this.impact[i] = (this.impact[i] as number) + IMPACT_DECAY * ((hurt ? 1 : 0) - (this.impact[i] as number));
    if ((this.scoreBin[i] as number) >= 0) this.rescore(i);
  }

  private rescore(i: number): void {
    const live = this.connectivity[i] !== DECOMMISSIONED;
    if (live) this.leave(i);
    this.scoreBin[i] = this.computeBin(i);
    if (live) this.enter(i);
  }

  /** Whether device i has a battery (as its last sample said). */
  hasBattery(i: number): boolean {
    return this.charging[i] !== 2;
  }

  /** Device i's metrics as last sampled: battery and charging null on a machine without a battery. */
  metricsOf(i: number): DeviceMetrics {
    const battery = this.hasBattery(i);
    return {
      battery: battery ? (this.battery[i] as number) : null,
      charging: battery ? this.charging[i] === 1 : null,
      cpu: this.cpu[i] as number,
      memory: this.memory[i] as number,
      disk: this.disk[i] as number,
      drain: this.drain[i] as number,
      cpuTrend: this.cpuTrend[i] as number,
    };
  }

  /** What device i's score is computed from: its metrics and its deployment impact. One object (every heartbeat makes one). */
  healthInputs(i: number): HealthInputs {
    const battery = this.hasBattery(i);
    return {
      battery: battery ? (this.battery[i] as number) : null,
      charging: battery ? this.charging[i] === 1 : null,
      cpu: this.cpu[i] as number,
      memory: this.memory[i] as number,
      disk: this.disk[i] as number,
      drain: this.drain[i] as number,
      cpuTrend: this.cpuTrend[i] as number,
      impact: this.impact[i] as number,
    };
  }

  private computeBin(i: number): number {
    return Math.round(healthScore(this.healthInputs(i), this.scoreConfig) * 10);
  }


  /**
   * Offline devices last heard from (their last sample) before `before` (epoch ms), to the minute; devices
   * never heard from count as silent since the epoch. Reads one counter per distinct minute, not the fleet.
   */
  silentSince(before: number): number {
    const cutoff = Math.floor(before / MINUTE);
    let n = 0;
    for (const [minute, count] of this.offlineByMinute) if (minute < cutoff) n += count;
    return n;
  }

  score(i: number): number | null {
    const b = this.scoreBin[i] as number;
    return b < 0 ? null : b / 10;
  }

  setConnectivity(i: number, c: DeviceConnectivity): void {
    const code = CONNECTIVITY.indexOf(c);
    const was = this.connectivity[i];
    if (was === code) return;
    if (was !== 2) this.leave(i);
    this.connectivity[i] = code;
    if (code !== 2) this.enter(i);
  }

  /**
   * Moves a device to a ring (NO_RING: unassigned), keeping the aggregates.
   * Only a move from one ring to another starts the dwell time: a first
   * placement has not flapped.
   */
  setRing(i: number, ring: number, at: number): void {
    const live = this.connectivity[i] !== DECOMMISSIONED;
    if (live) this.leave(i);
    if (this.ring[i] !== NO_RING && ring !== NO_RING) this.movedAt[i] = at;
    this.ring[i] = ring;
    if (live) this.enter(i);
  }

  /** Restores a stored placement as it was (no dwell logic). */
  restoreRing(i: number, ring: number, movedAt: number): void {
    const live = this.connectivity[i] !== DECOMMISSIONED;
    if (live) this.leave(i);
    this.ring[i] = ring;
    this.movedAt[i] = movedAt;
    if (live) this.enter(i);
  }

  /** A manual pin (or its removal with `ring` NO_RING); rule pins come back when it is removed. */
  setManualPin(i: number, ring: number): void {
    if (ring === NO_RING) {
      this.pinSource[i] = PIN_NONE;
      this.pinRing[i] = NO_RING;
      this.applyRules(i);
    } else {
      this.pinSource[i] = PIN_MANUAL;
      this.pinRing[i] = ring;
    }
  }

  /**
   * The best (`highest`) or worst device of a ring that `ok` accepts, looking
   * at no more than `limit` candidates: O(log BINS + limit).
   */
  extreme(ring: number, highest: boolean, ok: (i: number) => boolean, limit = 64): number {
    const slot = ring === NO_RING ? this.ringCount : ring;
    const bins = (this.aggregates[slot] as RingAggregate).bins;
    if (bins.total === 0) return -1;
    let rank = highest ? bins.total - 1 : 0;
    let seen = 0;
    while (rank >= 0 && rank < bins.total && seen < limit) {
      const bin = bins.binAtRank(rank);
      for (let i = this.heads[slot * BINS + bin] as number; i >= 0 && seen < limit; i = this.next[i] as number, seen++) {
        if (ok(i)) return i;
      }
      // On to the next non-empty bin.
      rank = highest ? bins.prefix(bin - 1) - 1 : bins.prefix(bin);
    }
    return -1;
  }

  /**
   * The devices of one aggregate slot (a ring, or `unassignedSlot`) in one score bin, appended to `out`, in no
   * particular order. Only scored devices that are not decommissioned are in a bin.
   */
  binMembers(slot: number, bin: number, out: number[]): void {
    for (let i = this.heads[slot * BINS + bin] as number; i >= 0; i = this.next[i] as number) out.push(i);
  }

  /** Scored devices of a slot in bins `from`..`to` (inclusive), from the aggregate's counts. */
  countInBins(slot: number, from: number, to: number): number {
    const bins = (this.aggregates[slot] as RingAggregate).bins;
    return bins.prefix(to) - (from > 0 ? bins.prefix(from - 1) : 0);
  }

  ringName(r: number): string {
    return r === NO_RING ? 'unassigned' : (this.config.rings[r]?.name ?? 'unassigned');
  }

  ringNumber(name: string): number {
    const r = this.config.rings.findIndex((x) => x.name === name);
    return r < 0 ? NO_RING : r;
  }

  /** Bytes held in the typed columns (the strings and maps come on top). */
  columnBytes(): number {
    const cols = [
      this.battery, this.cpu, this.memory, this.disk, this.charging, this.drain, this.cpuTrend, this.impact, this.sampledAt,
      this.scoreBin, this.unhealthy, this.site, this.department, this.manufacturer, this.model, this.osName, this.tagSet, this.stratum,
      this.ring, this.pinRing, this.pinSource, this.held, this.movedAt, this.inflight, this.connectivity, this.next, this.prev,
    ];
    return cols.reduce((a, c) => a + c.byteLength, 0);
  }
}

function clampRate(x: number): number {
  return x > 1000 ? 1000 : x < -1000 ? -1000 : x;
}

import { OrchestratorError } from '../domain/errors.js';
import type { HealthScoreConfig } from '../domain/health-score.js';
import { readingOf, type DeviceMetrics, type Reading } from '../domain/metrics.js';
import type { CompiledRingConfig, RingConfig } from '../domain/ring-config.js';
import { compileRingConfig, DEFAULT_RING_CONFIG, plainRingConfig } from '../domain/ring-config.js';
import type { Connectivity, RingMove } from '../domain/types.js';
import type { EventBus } from '../domain/events.js';
import type { DeviceHistoryPoint, DeviceRecord, DeviceSample, RingMoveWrite, Store } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { PlannedMove } from './planner.js';
import { planFull, planIncremental } from './planner.js';
import type { DeviceAttributes } from './registry.js';
import { CONNECTIVITY, DECOMMISSIONED, DeviceRegistry, NO_RING, PIN_MANUAL } from './registry.js';
import type { DeviceDetail, DeviceFilter, DeviceSort, DeviceSummary, FleetCensus, RingsView } from './fleet-views.js';
import { DEVICE_LIST_MAX, deviceDetail, fleetCensus, listDevices, ringsView } from './fleet-views.js';

export interface DeviceImport extends DeviceAttributes {
  id: string;
  metrics?: Reading | undefined;
}

const LOAD_PAGE = 20_000;
/** Held-back samples (network agents' heartbeats) reach the store within this long. */
export const WRITE_BEHIND_MS = 1000;
/** Devices whose ring changed since the last snapshot; past this many, a snapshot is written. */
const SNAPSHOT_AFTER = 50_000;
const WRITE_CHUNK = 20_000;

/**
 * The fleet: every device, its health score and its ring. Holds the registry
 * (in memory, authoritative for reads) and writes every change to the store
 * before it is acknowledged. Ring moves come from three places: the first
 * heartbeat and later health changes (incremental, O(log n)), the scheduled
 * full rebalance, and operators (pins, overrides, configuration).
 */
export class Fleet {
  readonly registry: DeviceRegistry;
  private cuts: number[] | null = null;
  /** Devices whose ring changed since the snapshot in `devices.ring` (the move log has them). */
  private readonly dirty = new Set<number>();
  private snapshotting: Promise<void> | null = null;
  private readonly pendingSamples = new Set<number>();
  private sampleFlush: TimerHandle | null = null;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly events: EventBus;
  private readonly log: Logger;
  private readonly canWrite: () => boolean;
  private readonly historySettings: { intervalMs: number; retentionMs: number };

  constructor(options: {
    store: Store;
    clock: Clock;
    events: EventBus;
    log: Logger;
    health: HealthScoreConfig;
    rings?: CompiledRingConfig;
    /** False while the store cannot commit: held-back samples are dropped then (memory is rebuilt). @default always true */
    canWrite?: () => boolean;
    /** A device's metrics history: a point per `intervalMs` at most, kept `retentionMs`. @default 5 min, 7 days */
    history?: { intervalMs: number; retentionMs: number };
  }) {
    this.historySettings = options.history ?? { intervalMs: 300_000, retentionMs: 7 * 86_400_000 };
    this.canWrite = options.canWrite ?? (() => true);
    this.store = options.store;
    this.clock = options.clock;
    this.events = options.events;
    this.log = options.log;
    this.registry = new DeviceRegistry(options.rings ?? compileOrThrow(DEFAULT_RING_CONFIG), options.health);
  }

  /**
   * Loads the stored ring configuration and every device. With `repairs` (loading while the store cannot
   * commit) the snapshot it would write is left to the caller, to run once the store commits again.
   */
  async load(repairs?: (() => Promise<void>)[]): Promise<void> {
    const stored = await this.store.getMeta('ring_config');
    if (stored !== null) {
      const out = compileRingConfig(JSON.parse(stored));
      if ('errors' in out) this.log.error({ errors: out.errors }, 'the stored ring configuration is invalid; using the defaults');
      else this.registry.reconfigure(out.config);
    }
    const reg = this.registry;
    let after = '';
    for (;;) {
      const page = await this.store.loadDevices(after, LOAD_PAGE);
      for (const d of page) {
        const { index: i } = reg.upsert(d.id, {
          site: d.site ?? undefined,
          department: d.department ?? undefined,
          manufacturer: d.manufacturer ?? undefined,
          model: d.model ?? undefined,
          osName: d.osName ?? undefined,
          tags: d.tags ?? undefined,
        });
        reg.drain[i] = d.drain;
        reg.cpuTrend[i] = d.cpuTrend;
        reg.impact[i] = d.impact;
        if (d.metrics && d.sampledAt !== null) {
          // Restore without a trend update: the stored trend already holds it.
          const drain = d.drain;
          const trend = d.cpuTrend;
          reg.sample(i, d.metrics, d.sampledAt);
          reg.drain[i] = drain;
          reg.cpuTrend[i] = trend;
        }
        if (d.pinRing !== null && reg.ringNumber(d.pinRing) !== NO_RING) reg.setManualPin(i, reg.ringNumber(d.pinRing));
        reg.restoreRing(i, d.ring === null ? NO_RING : reg.ringNumber(d.ring), d.movedAt);
        reg.setConnectivity(i, d.connectivity);
      }
      if (page.length < LOAD_PAGE) break;
      after = (page.at(-1) as DeviceRecord).id;
    }
    // The snapshot is as of a watermark; the move log has what came after.
    let mark = await this.store.ringSnapshotWatermark();
    for (;;) {
      const moves = await this.store.ringMovesAfterSnapshot(mark, LOAD_PAGE);
      for (const m of moves) {
        const i = reg.indexOf(m.agentId);
        if (i === undefined) continue;
        const betweenRings = m.from !== 'unassigned' && m.to !== 'unassigned';
        reg.restoreRing(i, m.to === 'unassigned' ? NO_RING : reg.ringNumber(m.to), betweenRings ? m.at : (reg.movedAt[i] as number));
        this.dirty.add(i);
      }
      if (moves.length < LOAD_PAGE) break;
      mark = (moves.at(-1) as RingMove).id;
    }
    this.cuts = this.currentCuts();
    if (this.dirty.size > 0) {
      if (repairs) repairs.push(() => this.snapshot());
      else await this.snapshot();
    }
  }

  /** This fleet is being replaced (its state rebuilt from the store): its held-back writes are dropped. */
  dispose(): void {
    this.sampleFlush?.cancel();
    this.sampleFlush = null;
    this.pendingSamples.clear();
  }

  /**
   * Writes the rings of devices that moved since the last snapshot into
   * `devices.ring` and advances the watermark. Queued after every move it
   * reflects, so it never records a move the log does not have.
   */
  snapshot(): Promise<void> {
    if (this.dirty.size === 0) return this.snapshotting ?? Promise.resolve();
    const reg = this.registry;
    const rows = [...this.dirty].map((i) => ({ id: reg.ids[i] as string, ring: reg.ring[i] === NO_RING ? null : reg.ringName(reg.ring[i] as number), movedAt: reg.movedAt[i] as number }));
    this.dirty.clear();
    const write = this.store.snapshotRings(rows);
    const done = write.then(
      () => {
        if (this.snapshotting === done) this.snapshotting = null;
      },
      (err: unknown) => {
        if (this.snapshotting === done) this.snapshotting = null;
        // The move log still has every move; the next snapshot covers these devices again.
        for (const r of rows) {
          const i = reg.indexOf(r.id);
          if (i !== undefined) this.dirty.add(i);
        }
        this.log.error({ err }, 'ring snapshot failed');
      },
    );
    this.snapshotting = done;
    return done;
  }

  /** Cut points read off the current placement: the highest score bin of each ring but the last. */
  private currentCuts(): number[] | null {
    const reg = this.registry;
    const R = reg.ringConfig.rings.length;
    if (reg.ringConfig.policy !== 'health') return null;
    const cuts: number[] = [];
    for (let k = 0; k < R - 1; k++) {
      const p = reg.aggregates[k]?.percentile(100) ?? null;
      cuts.push(p === null ? (cuts.at(-1) ?? 0) : Math.round(p * 10));
    }
    return cuts.some((c) => c > 0) ? cuts : null;
  }

  get size(): number {
    return this.registry.size;
  }

  has(id: string): boolean {
    return this.registry.indexOf(id) !== undefined;
  }

  ringNames(): string[] {
    return this.registry.ringConfig.rings.map((r) => r.name);
  }

  private indexOrThrow(id: string): number {
    const i = this.registry.indexOf(id);
    if (i === undefined) throw OrchestratorError.of('ORCH_DEVICE_NOT_FOUND', id);
    return i;
  }

  // ---------------------------------------------------------------- devices in

  /**
   * Registers devices or updates the attributes of known ones (bulk import);
   * devices that come with metrics get their score and, under the incremental
   * rules, a ring. Resolves once everything is committed.
   */
  async importDevices(devices: readonly DeviceImport[]): Promise<{ created: number; updated: number }> {
    const reg = this.registry;
    const now = this.clock.now();
    let created = 0;
    const records: DeviceRecord[] = [];
    const fresh: number[] = [];
    for (const d of devices) {
      const out = reg.upsert(d.id, d);
      if (out.created) {
        created++;
        reg.setConnectivity(out.index, 'offline');
      }
      if (d.metrics) {
        reg.sample(out.index, d.metrics, now);
        fresh.push(out.index);
      }
      records.push(this.record(out.index, out.created ? now : 0));
    }
    const writes: Promise<void>[] = [];
    for (let k = 0; k < records.length; k += WRITE_CHUNK) writes.push(this.store.upsertDevices(records.slice(k, k + WRITE_CHUNK)));
    await Promise.all(writes);
    // Large imports, and any before the first full rebalance, are placed by a full rebalance; small ones device by device.
    if (fresh.length > 100 || (this.cuts === null && fresh.length > 0)) await this.rebalance('import');
    else {
      // Each placement sees the ones before it.
      const rows: RingMoveWrite[] = [];
      for (const i of fresh) rows.push(...this.applyInMemory(planIncremental(reg, i, now, this.cuts), now));
      await this.persist(rows);
    }
    return { created, updated: devices.length - created };
  }

  private record(i: number, createdAt: number): DeviceRecord {
    const reg = this.registry;
    const a = reg.attributes(i);
    const known = (reg.scoreBin[i] as number) >= 0;
    return {
      id: a.id,
      site: a.site ?? null,
      department: a.department ?? null,
      manufacturer: a.manufacturer ?? null,
      model: a.model ?? null,
      osName: a.osName ?? null,
      tags: a.tags && a.tags.length > 0 ? [...a.tags] : null,
      metrics: known ? readingOf(reg.metricsOf(i)) : null,
      drain: reg.drain[i] as number,
      cpuTrend: reg.cpuTrend[i] as number,
      impact: reg.impact[i] as number,
      sampledAt: known ? (reg.sampledAt[i] as number) : null,
      ring: reg.ring[i] === NO_RING ? null : reg.ringName(reg.ring[i] as number),
      movedAt: reg.movedAt[i] as number,
      pinRing: reg.pinSource[i] === PIN_MANUAL ? reg.ringName(reg.pinRing[i] as number) : null,
      connectivity: CONNECTIVITY[reg.connectivity[i] as number] as Connectivity,
      createdAt,
    };
  }

  /** Makes sure a device exists for an agent (same id), with its asset's attributes. */
  async ensureDevice(id: string, attrs: DeviceAttributes): Promise<void> {
    const out = this.registry.upsert(id, attrs);
    if (out.created) this.registry.setConnectivity(out.index, 'offline');
    await this.store.upsertDevices([this.record(out.index, this.clock.now())]);
  }

  /**
   * A device's new metrics: rescored, and moved between rings where the rules say so. Returns the writes to
   * wait for, or null when there are none (the sample written behind and no ring move).
   */
  sample(id: string, metrics: Reading, at = this.clock.now(), options: { writeBehind?: boolean } = {}): Promise<unknown> | null {
    const reg = this.registry;
    const i = reg.indexOf(id);
    if (i === undefined) return null;
    reg.sample(i, metrics, at);
    const moves = planIncremental(reg, i, at, this.cuts);
    if (options.writeBehind) {
      // Only the latest sample of a device matters: it is written with the others within WRITE_BEHIND_MS.
      this.pendingSamples.add(i);
      this.sampleFlush ??= this.clock.setTimeout(() => void this.flushSamples(), WRITE_BEHIND_MS);
      return moves.length === 0 ? null : this.apply(moves, at);
    }
    return Promise.all([this.store.saveDeviceSamples([this.sampleRow(i)]), this.apply(moves, at)]);
  }

  /** Writes the samples held back by write-behind (at the latest WRITE_BEHIND_MS after they came, and on stop). */
  async flushSamples(): Promise<void> {
    this.sampleFlush?.cancel();
    this.sampleFlush = null;
    if (this.pendingSamples.size === 0) return;
    if (!this.canWrite()) {
      // The store cannot commit; memory is being rebuilt from it. The devices' next samples come soon.
      this.pendingSamples.clear();
      return;
    }
    const rows = [...this.pendingSamples].map((i) => this.sampleRow(i));
    this.pendingSamples.clear();
    try {
      await this.store.saveDeviceSamples(rows);
    } catch (err) {
      this.log.error({ err, samples: rows.length }, 'writing held-back device samples failed');
    }
  }

  /** Deletes the history points older than the retention; resolves to how many (run hourly by the orchestrator). */
  pruneHistory(): Promise<number> {
    return this.store.pruneDeviceHistory(this.clock.now() - this.historySettings.retentionMs);
  }

  /** A device's metrics history at or after `since`, oldest first (the newest `limit` points). */
  history(id: string, since: number, limit: number): Promise<DeviceHistoryPoint[]> {
    this.indexOrThrow(id);
    return this.store.deviceHistory(id, since, limit);
  }

  /** A device's latest sample to store; a point of its history too when the last one is `history.intervalMs` old. */
  private sampleRow(i: number): DeviceSample {
    const reg = this.registry;
    const m = reg.metricsOf(i);
    const at = reg.sampledAt[i] as number;
    const row: DeviceSample = {
      id: reg.ids[i] as string,
      battery: m.battery, charging: m.charging, cpu: m.cpu, memory: m.memory, disk: m.disk, drain: m.drain, cpuTrend: m.cpuTrend,
      impact: reg.impact[i] as number,
      sampledAt: at,
    };
    if (at - (reg.historyAt[i] as number) >= this.historySettings.intervalMs) {
      reg.historyAt[i] = at;
      row.history = { score: reg.score(i) };
    }
    return row;
  }

  async setConnectivity(id: string, connectivity: Connectivity): Promise<void> {
    const i = this.registry.indexOf(id);
    if (i === undefined) return;
    this.registry.setConnectivity(i, connectivity);
    await this.store.setDeviceConnectivity(id, connectivity);
  }

  /** A deployment outcome on the device, for the impact factor of its score. */
  async recordImpact(id: string, hurt: boolean): Promise<void> {
    const i = this.registry.indexOf(id);
    if (i === undefined) return;
    this.registry.recordImpact(i, hurt);
    if ((this.registry.scoreBin[i] as number) >= 0) await this.store.saveDeviceSamples([this.sampleRow(i)]);
  }

  /** A deployment execution started (+1) or ended (-1) on the device: it is not moved meanwhile. */
  markInflight(id: string, delta: 1 | -1): void {
    const i = this.registry.indexOf(id);
    if (i === undefined) return;
    const v = (this.registry.inflight[i] as number) + delta;
    this.registry.inflight[i] = v < 0 ? 0 : v;
  }

  // ---------------------------------------------------------------- moves

  private async apply(moves: readonly PlannedMove[], now: number): Promise<void> {
    if (moves.length === 0) return;
    await this.persist(this.applyInMemory(moves, now));
  }

  /** Moves devices in the registry; returns the rows to store. */
  private applyInMemory(moves: readonly PlannedMove[], now: number): RingMoveWrite[] {
    const reg = this.registry;
    const rows: RingMoveWrite[] = [];
    for (const m of moves) {
      reg.setRing(m.index, m.to, now);
      this.dirty.add(m.index);
      rows.push({ agentId: reg.ids[m.index] as string, from: reg.ringName(m.from), to: reg.ringName(m.to), reason: m.reason, at: now, movedAt: reg.movedAt[m.index] });
    }
    return rows;
  }

  /** Stores moves (in chunks, all queued at once so they commit in order), then announces them. */
  private async persist(rows: readonly RingMoveWrite[]): Promise<void> {
    if (rows.length === 0) return;
    const writes: Promise<void>[] = [];
    for (let k = 0; k < rows.length; k += WRITE_CHUNK) writes.push(this.store.applyRingMoves(rows.slice(k, k + WRITE_CHUNK)));
    // A large backlog is folded into the snapshot in the background, queued right behind these moves.
    if (this.dirty.size >= SNAPSHOT_AFTER && this.snapshotting === null) void this.snapshot();
    await Promise.all(writes);
    for (const move of rows) this.events.emit('ring.moved', { move });
  }

  /** A full rebalance: plans every ring at once and applies the moves. */
  async rebalance(trigger: string): Promise<{ moves: number; planMs: number; totalMs: number }> {
    const t0 = performance.now();
    const now = this.clock.now();
    const plan = planFull(this.registry, now, this.cuts);
    if (this.registry.ringConfig.policy === 'health') this.cuts = plan.cuts;
    const planMs = performance.now() - t0;
    await this.apply(plan.moves, now);
    const totalMs = performance.now() - t0;
    this.events.emit('rings.rebalanced', { trigger, moves: plan.moves.length, planMs, totalMs });
    return { moves: plan.moves.length, planMs, totalMs };
  }

  /**
   * An operator's override: moves the device to `ring` now (unless a
   * deployment execution is in flight on it, in which case the move waits for
   * the next rebalance after it ends). `pinned` keeps it there: a manual pin
   * wins over rules and policy until it is removed (`ring: null`).
   */
  async override(id: string, ring: string | null, pinned: boolean, reason: string): Promise<{ device: DeviceDetail; moved: boolean }> {
    const reg = this.registry;
    const i = this.indexOrThrow(id);
    const now = this.clock.now();
    if (ring === null) {
      if (reg.pinSource[i] === PIN_MANUAL) {
        reg.setManualPin(i, NO_RING);
        await this.store.setDevicePin(id, null);
      }
      return { device: this.device(id), moved: false };
    }
    const to = reg.ringNumber(ring);
    if (to === NO_RING) throw new OrchestratorError('ORCH_UNKNOWN_RING', `unknown ring "${ring}"; the rings are ${this.ringNames().join(', ')}`);
    if (reg.held[i] === 1) throw new OrchestratorError('ORCH_DEVICE_HELD', `device ${id} is held by a rule and belongs to no ring; change the holds to move it`);
    if (pinned) {
      reg.setManualPin(i, to);
      await this.store.setDevicePin(id, ring);
    } else if (reg.pinSource[i] === PIN_MANUAL) {
      reg.setManualPin(i, NO_RING);
      await this.store.setDevicePin(id, null);
    }
    let moved = false;
    if (reg.inflight[i] === 0 && reg.ring[i] !== to) {
      await this.apply([{ index: i, from: reg.ring[i] as number, to, reason: `${pinned ? 'pinned' : 'moved'} by an operator: ${reason}` }], now);
      moved = true;
    }
    return { device: this.device(id), moved };
  }

  /** Replaces the ring configuration (validated), then rebalances. */
  async configure(doc: unknown): Promise<{ config: RingConfig; moves: number }> {
    const out = compileRingConfig(doc);
    if ('errors' in out) throw new OrchestratorError('ORCH_VALIDATION', `invalid ring configuration: ${out.errors.join('; ')}`, { errors: out.errors });
    await this.store.setMeta('ring_config', JSON.stringify(plainRingConfig(out.config)));
    // Manual pins to rings that no longer exist are dropped.
    const names = new Set(out.config.rings.map((r) => r.name));
    const reg = this.registry;
    const dropped: string[] = [];
    for (let i = 0; i < reg.size; i++) {
      if (reg.pinSource[i] === PIN_MANUAL && !names.has(reg.ringName(reg.pinRing[i] as number))) dropped.push(reg.ids[i] as string);
    }
    await Promise.all(dropped.map((id) => this.store.setDevicePin(id, null)));
    // Devices in rings that no longer exist become unassigned, each move recorded, before the rebalance places them.
    const now = this.clock.now();
    const gone = reg.ringConfig.rings.map((r) => !names.has(r.name));
    const orphaned: RingMoveWrite[] = [];
    for (let i = 0; i < reg.size; i++) {
      const r = reg.ring[i] as number;
      if (r !== NO_RING && gone[r]) {
        orphaned.push({ agentId: reg.ids[i] as string, from: reg.ringName(r), to: 'unassigned', reason: `ring ${reg.ringName(r)} was removed from the configuration`, at: now, movedAt: reg.movedAt[i] });
      }
    }
    reg.reconfigure(out.config);
    await this.persist(orphaned);
    this.cuts = this.currentCuts();
    const { moves } = await this.rebalance('configuration');
    return { config: plainRingConfig(out.config), moves: orphaned.length + moves };
  }

  // ---------------------------------------------------------------- reads

  ringCounts(): Record<string, number> {
    const reg = this.registry;
    const out: Record<string, number> = {};
    reg.ringConfig.rings.forEach((r, k) => (out[r.name] = reg.aggregates[k]?.size ?? 0));
    out.unassigned = reg.aggregates[reg.unassignedSlot]?.size ?? 0;
    return out;
  }

  healthyCount(): number {
    return this.registry.healthyCount;
  }

  /** Devices in a ring now (held ones are in none), in registration order: O(n). */
  members(ring: string): string[] {
    const reg = this.registry;
    const r = reg.ringNumber(ring);
    if (r === NO_RING) return [];
    const out: string[] = [];
    for (let i = 0; i < reg.size; i++) if (reg.ring[i] === r && reg.connectivity[i] !== DECOMMISSIONED) out.push(reg.ids[i] as string);
    return out;
  }

  modelOf(id: string): string | undefined {
    const i = this.registry.indexOf(id);
    return i === undefined ? undefined : this.registry.interner.value(this.registry.model[i] as number);
  }

  ringSize(ring: string): number {
    const r = this.registry.ringNumber(ring);
    return r === NO_RING ? 0 : (this.registry.aggregates[r]?.size ?? 0);
  }

  /** A device's connectivity, or null for a device the fleet does not know. */
  connectivityOf(id: string): Connectivity | null {
    const i = this.registry.indexOf(id);
    return i === undefined ? null : (CONNECTIVITY[this.registry.connectivity[i] as number] as Connectivity);
  }

  /** A device's attributes (model, site, OS, …), or null for a device the fleet does not know. */
  attributesOf(id: string): DeviceAttributes | null {
    const i = this.registry.indexOf(id);
    if (i === undefined) return null;
    const { id: _id, ...attributes } = this.registry.attributes(i);
    return attributes;
  }

  /** The device's latest metrics, for deployment baselines and pre-flight; null before its first sample. */
  metrics(id: string): DeviceMetrics | null {
    const reg = this.registry;
    const i = reg.indexOf(id);
    if (i === undefined || (reg.scoreBin[i] as number) < 0) return null;
    return reg.metricsOf(i);
  }

  ringOf(id: string): string {
    const i = this.registry.indexOf(id);
    return i === undefined ? 'unassigned' : this.registry.ringName(this.registry.ring[i] as number);
  }

  /** The fleet at a glance; `silentBefore`: an offline device last heard from before it is missing. */
  census(silentBefore: number): FleetCensus {
    return fleetCensus(this.registry, silentBefore);
  }

  /** Every ring's size, target, health distribution and composition, from the incremental aggregates. */
  rings(): RingsView {
    return ringsView(this.registry);
  }

  device(id: string): DeviceDetail {
    return deviceDetail(this.registry, this.indexOrThrow(id));
  }

  /** A page of devices (see listDevices). */
  list(filter: DeviceFilter, sort: DeviceSort, limit: number, cursor: string | undefined): { devices: DeviceSummary[]; nextCursor: string | null } {
    return listDevices(this.registry, filter, sort, limit, cursor);
  }

  /** Every move at or after `since`, oldest first, paged. */
  async moves(since: number, limit: number, cursor: string | undefined): Promise<{ moves: RingMove[]; nextCursor: string | null }> {
    let at = since;
    let afterId = 0;
    if (cursor !== undefined) {
      const m = /^(\d+)\.(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
      if (!m) throw new OrchestratorError('ORCH_VALIDATION', 'cursor is not one this server gave out');
      at = Number(m[1]);
      afterId = Number(m[2]);
    }
    const lim = Math.max(1, Math.min(limit, DEVICE_LIST_MAX));
    const moves = await this.store.listRingMovesSince(at, afterId, lim);
    const last = moves.at(-1);
    return { moves, nextCursor: moves.length === lim && last ? Buffer.from(`${last.at}.${last.id}`).toString('base64url') : null };
  }
}

function compileOrThrow(doc: RingConfig): CompiledRingConfig {
  const out = compileRingConfig(doc);
  if ('errors' in out) throw new Error(out.errors.join('; '));
  return out.config;
}


import type { DeviceMetrics, Reading, Trends } from '../domain/metrics.js';
import type { Connectivity, RingMove } from '../domain/types.js';

/** A device as stored: its attributes, latest reading and trends, ring and connectivity. */
export interface DeviceRecord extends Trends {
  id: string;
  site: string | null;
  department: string | null;
  manufacturer: string | null;
  model: string | null;
  osName: string | null;
  tags: string[] | null;
  /** Latest reading; null until the first sample. */
  metrics: Reading | null;
  impact: number;
  sampledAt: number | null;
  ring: string | null;
  movedAt: number;
  /** A manual pin. */
  pinRing: string | null;
  connectivity: Connectivity;
  createdAt: number;
}

/** A device's latest metrics, deployment impact and when it was sampled, to store. */
export interface DeviceSample extends DeviceMetrics {
  id: string;
  impact: number;
  sampledAt: number;
  /** Also a point of the device's history, with its score then (see `deviceHistory`). */
  history?: { score: number | null };
}

/** A point of a device's metrics history. */
export interface DeviceHistoryPoint extends Reading {
  at: number;
  /** The health score then; null while it had none. */
  score: number | null;
}

/** A ring move to store; `movedAt` is the device's dwell start after it (default `at`). */
export type RingMoveWrite = Omit<RingMove, 'id'> & { movedAt?: number };

/**
 * Devices (attributes, latest metrics, pins, connectivity) and the log of ring moves, whose snapshot in the
 * devices is folded forward now and then. Every verb is atomic, and a write's promise resolves once it is durably committed, after every write
 * made before it (see Store).
 */
export interface FleetStore {
  /**
   * Appends ring moves to the move log, in one commit. The log is what a
   * device's ring is: `devices.ring` is a snapshot of it up to a watermark
   * (see `snapshotRings`), and `ringMovesAfter` gives what came since.
   */
  applyRingMoves(moves: readonly RingMoveWrite[]): Promise<void>;
  /**
   * Writes devices' current rings into the snapshot and moves the watermark
   * to the newest logged move, in one commit. Every move the rows reflect must
   * have been handed to `applyRingMoves` before this call.
   */
  snapshotRings(rows: readonly { id: string; ring: string | null; movedAt: number }[]): Promise<void>;
  /** Logged moves newer than the snapshot's watermark, oldest first (for loading). */
  ringMovesAfterSnapshot(afterId: number, limit: number): Promise<RingMove[]>;
  /** The id of the newest move the snapshot reflects. */
  ringSnapshotWatermark(): Promise<number>;
  /** All ring moves or one device's, oldest first. */
  listRingMoves(agentId?: string): Promise<RingMove[]>;
  /** Moves at or after `since` (ms), oldest first, after move id `afterId`. */
  listRingMovesSince(since: number, afterId: number, limit: number): Promise<RingMove[]>;

  /** Inserts devices, or updates the attributes of known ones; metrics and ring are written only when given. */
  upsertDevices(devices: readonly DeviceRecord[]): Promise<void>;
  /** Latest metrics and trends of devices, and the history points among them, in one commit. */
  saveDeviceSamples(samples: readonly DeviceSample[]): Promise<void>;
  /** A device's history points at or after `since` (ms), oldest first, at most `limit` (the newest of them). */
  deviceHistory(id: string, since: number, limit: number): Promise<DeviceHistoryPoint[]>;
  /** Deletes history points older than `before` (ms); resolves to how many. */
  pruneDeviceHistory(before: number): Promise<number>;
  setDevicePin(id: string, ring: string | null): Promise<void>;
  setDeviceConnectivity(id: string, connectivity: Connectivity): Promise<void>;
  /** Devices in id order after `afterId` ('' for the first page). */
  loadDevices(afterId: string, limit: number): Promise<DeviceRecord[]>;
}

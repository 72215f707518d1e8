import type { MetricAdjustment, Reading } from '../domain/metrics.js';
import type { DeviceInfo, Ring, TaskType } from '../domain/types.js';
import { newMessageId } from '../util/ids.js';

/**
 * The one message envelope, with the seed's field names and message types; a device's metrics inside it
 * are the domain's `Reading` (`device_info` a `DeviceInfo`). Simulated agents use it in-process; what the
 * orchestrator sends a network agent is turned into that agent's commands (core/network-channel.ts).
 */
export const MESSAGE_TYPES = [
  'task_assignment',
  'task_result',
  'task_status',
  'heartbeat',
  'shutdown',
  'error',
  'registration',
  'acknowledgement',
  'ring_assignment',
  'device_status_update',
  'modify_metrics',
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface PayloadMap {
  registration: { capabilities: TaskType[]; device_info: DeviceInfo };
  heartbeat: { seq: number; metrics: Reading; running_tasks: string[] };
  task_assignment: {
    task_id: string;
    task_type: TaskType;
    parameters: Record<string, unknown>;
    attempt: number;
    timeout_ms: number;
  };
  /** Cancels a task's attempt on the agent (it was reassigned or timed out). */
  task_status: { task_id: string; attempt: number; status: 'started' | 'cancel' };
  task_result: {
    task_id: string;
    attempt: number;
    success: boolean;
    result?: unknown;
    error?: string;
    /** false: the failure will not go away on retry (bad parameters). */
    retryable?: boolean;
  };
  /** Acknowledges `ack_of`, and every id in `also` (acknowledgements made in one turn travel together). */
  acknowledgement: { ack_of: string; also?: string[] };
  ring_assignment: { ring: Ring; reason: string };
  modify_metrics: { reason: string; deployment_id?: string; adjustments: MetricAdjustment[] };
  device_status_update: { in_reply_to?: string; device_info: DeviceInfo };
  shutdown: { reason: string };
  error: { in_reply_to?: string; code: string; message: string };
}

export interface Envelope<T extends MessageType = MessageType> {
  message_type: T;
  sender_id: string;
  receiver_id: string;
  /** ISO 8601. */
  timestamp: string;
  payload: PayloadMap[T];
  message_id: string;
}

export type AnyEnvelope = { [T in MessageType]: Envelope<T> }[MessageType];

let lastStampMs = NaN;
let lastStamp = '';
/** ISO 8601 for `now`, computed once per millisecond. */
function stamp(now: number): string {
  if (now !== lastStampMs) {
    lastStampMs = now;
    lastStamp = new Date(now).toISOString();
  }
  return lastStamp;
}

export function makeEnvelope<T extends MessageType>(
  type: T,
  sender: string,
  receiver: string,
  payload: PayloadMap[T],
  now: number,
): Envelope<T> {
  return {
    message_type: type,
    sender_id: sender,
    receiver_id: receiver,
    timestamp: stamp(now),
    payload,
    message_id: newMessageId(),
  };
}

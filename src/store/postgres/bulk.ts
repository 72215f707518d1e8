import { AGENT_SQL } from '../sql/agent-store.js';
import { DEPLOYMENT_SQL } from '../sql/deployment-store.js';
import { FLEET_SQL } from '../sql/fleet-store.js';
import { TASK_SQL } from '../sql/task-store.js';

/**
 * One statement for many rows. A batch of writes often holds hundreds of the same statement (a heartbeat
 * flush, a task burst, a ring's executions); one round trip each would bound the writer by the network's
 * latency. The writer runs a run of consecutive steps of a statement listed here as one statement over
 * arrays (`unnest`), as long as no row comes twice in the run (an UPDATE ... FROM or an upsert would take
 * only one of them); `key` names a step's row. The result is what the steps one by one would have left.
 */
export interface BulkForm {
  /** The statement over arrays: `$1` ... `$n` are the arrays of the single statement's parameters, in order. */
  sql: string;
  /** Which row a step writes, or null when its rows cannot repeat (a plain insert). */
  key: ((params: readonly unknown[]) => string) | null;
}

const arrays = (types: readonly string[]): string => types.map((t, i) => `$${i + 1}::${t}[]`).join(', ');

/**
 * `INSERT ... VALUES (?, ...)` as `INSERT ... SELECT ... FROM unnest($1::type[], ...)` in the arrays' order (so
 * that generated ids follow it), with its ON CONFLICT clause kept.
 */
function bulkInsert(sql: string, types: readonly string[]): string {
  const values = /VALUES\s*\((\s*\?\s*,?)+\)/;
  if (!values.test(sql)) throw new Error(`not a single-row INSERT: ${sql}`);
  const cols = types.map((_, i) => `c${i + 1}`);
  return sql.replace(values, () => `SELECT ${cols.join(', ')} FROM unnest(${arrays(types)}) WITH ORDINALITY AS v(${cols.join(', ')}, n) ORDER BY n`);
}

const at = (i: number) => (p: readonly unknown[]): string => String(p[i]);
const pair = (i: number, j: number) => (p: readonly unknown[]): string => `${String(p[i])}\u0000${String(p[j])}`;

const TASK_TYPES = ['int8', 'text', 'text', 'text', 'int4', 'text', 'text', 'int4', 'int4', 'int8', 'int8', 'int8', 'text', 'text', 'text', 'int4', 'text', 'int8', 'text', 'int8', 'int8', 'int8'];
const DEVICE_TYPES = ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'float8', 'int2', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'int8', 'text', 'int8', 'text', 'text', 'int8'];
const EXECUTION_TYPES = ['int8', 'text', 'int4', 'text', 'text', 'text', 'text', 'text', 'float8', 'float8', 'float8', 'text', 'int8', 'int8', 'int8', 'int8'];

export const BULK_FORMS: ReadonlyMap<string, BulkForm> = new Map<string, BulkForm>([
  [TASK_SQL.insertTask, { sql: bulkInsert(TASK_SQL.insertTask, TASK_TYPES), key: null }],
  [
    TASK_SQL.recordStart,
    {
      sql: `UPDATE tasks SET status = 'in_progress', assigned_to = v.assigned_to, attempts = v.attempts, started_at = v.started_at, run_after = NULL,
              lease_expires_at = v.lease FROM unnest(${arrays(['text', 'int4', 'int8', 'int8', 'int8'])}) AS v(assigned_to, attempts, started_at, lease, seq)
            WHERE tasks.seq = v.seq`,
      key: at(4),
    },
  ],
  [
    TASK_SQL.saveTask,
    {
      sql: `UPDATE tasks SET status = v.status, assigned_to = v.assigned_to, attempts = v.attempts, max_attempts = v.max_attempts, started_at = v.started_at,
              completed_at = v.completed_at, result = v.result, error = v.error, attempts_base = v.attempts_base, run_after = v.run_after,
              lease_expires_at = v.lease, priority = v.priority
            FROM unnest(${arrays(['text', 'text', 'int4', 'int4', 'int8', 'int8', 'text', 'text', 'int4', 'int8', 'int8', 'int4', 'int8'])})
              AS v(status, assigned_to, attempts, max_attempts, started_at, completed_at, result, error, attempts_base, run_after, lease, priority, seq)
            WHERE tasks.seq = v.seq`,
      key: at(12),
    },
  ],
  [
    AGENT_SQL.heartbeat,
    {
      sql: `UPDATE agents SET device = v.device, last_heartbeat_at = v.at, connectivity = 'online'
            FROM unnest(${arrays(['text', 'int8', 'text'])}) AS v(device, at, id)
            WHERE agents.id = v.id AND agents.connectivity <> 'decommissioned'`,
      key: at(2),
    },
  ],
  [
    FLEET_SQL.saveSample,
    {
      sql: `UPDATE devices SET battery = v.battery, charging = v.charging, cpu = v.cpu, memory = v.memory, disk = v.disk, drain = v.drain,
              cpu_trend = v.cpu_trend, impact = v.impact, sampled_at = v.sampled_at
            FROM unnest(${arrays(['float8', 'int2', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'int8', 'text'])})
              AS v(battery, charging, cpu, memory, disk, drain, cpu_trend, impact, sampled_at, id)
            WHERE devices.id = v.id`,
      key: at(9),
    },
  ],
  [
    FLEET_SQL.setDeviceRing,
    {
      sql: `UPDATE devices SET ring = v.ring, moved_at = v.moved_at FROM unnest(${arrays(['text', 'int8', 'text'])}) AS v(ring, moved_at, id) WHERE devices.id = v.id`,
      key: at(2),
    },
  ],
  [FLEET_SQL.addHistory, { sql: bulkInsert(FLEET_SQL.addHistory, ['text', 'int8', 'float8', 'int2', 'float8', 'float8', 'float8', 'float8']), key: pair(0, 1) }],
  [FLEET_SQL.insertMove, { sql: bulkInsert(FLEET_SQL.insertMove, ['text', 'text', 'text', 'text', 'int8']), key: null }],
  [FLEET_SQL.upsertDevice, { sql: bulkInsert(FLEET_SQL.upsertDevice, DEVICE_TYPES), key: at(0) }],
  [DEPLOYMENT_SQL.saveExecution, { sql: bulkInsert(DEPLOYMENT_SQL.saveExecution, EXECUTION_TYPES), key: pair(0, 1) }],
]);

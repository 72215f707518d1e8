import Database from 'better-sqlite3';
import type {
  Agent,
  Asset,
  BackoffPolicy,
  Connectivity,
  DeviceInfo,
  RingMove,
  Task,
  TaskStatus,
  TaskTarget,
  TaskType,
} from '../../domain/types.js';
import { TASK_STATUSES } from '../../domain/types.js';
import type { DeploymentRecord, DeploymentSpec, DeploymentState, DeviceReading, Execution, ExecutionState, GateEvaluation } from '../../domain/deployment.js';
import type { DeviceRecord, DeviceSample, RingMoveWrite, Store, TaskAttempt, TaskFilter } from '../store.js';
import type { ApiToken, Approval, AuditEntry, AuditQuery, EnrollmentToken, Role } from '../../domain/security.js';
import { fromSqliteError } from './errors.js';
import { MIGRATIONS } from './migrations.js';
import { DatabaseFileError, explainSqliteError, openDatabaseFile } from './open.js';
import type { Step, StepResult, Writer } from './writer.js';
import { InlineWriter, ThreadWriter } from './writer.js';

interface AgentRow {
  id: string;
  kind: string;
  capabilities: string;
  connectivity: string;
  registered_at: number | null;
  last_heartbeat_at: number | null;
  device: string | null;
  ring: string;
  asset_id: string | null;
  created_at: number;
  credential_hash: string | null;
  approval: string;
}

interface TaskRow {
  seq: number;
  id: string;
  type: string;
  parameters: string;
  priority: number;
  status: string;
  assigned_to: string | null;
  attempts: number;
  max_attempts: number;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  result: string | null;
  error: string | null;
  target: string | null;
  attempts_base: number;
  backoff: string;
  timeout_ms: number;
  idempotency_key: string | null;
  run_after: number | null;
  deadline: number | null;
  lease_expires_at: number | null;
}

interface AttemptRow {
  task_id: string;
  task_seq: number;
  attempt: number;
  agent_id: string;
  started_at: number;
  ended_at: number | null;
  outcome: string | null;
  error: string | null;
}

interface DeviceRow {
  id: string;
  site: string | null;
  department: string | null;
  manufacturer: string | null;
  model: string | null;
  os_name: string | null;
  tags: string | null;
  battery: number | null;
  charging: number | null;
  cpu: number | null;
  memory: number | null;
  disk: number | null;
  drain: number;
  cpu_trend: number;
  impact: number;
  sampled_at: number | null;
  ring: string | null;
  moved_at: number;
  pin_ring: string | null;
  connectivity: string;
  created_at: number;
}

function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    site: r.site,
    department: r.department,
    manufacturer: r.manufacturer,
    model: r.model,
    osName: r.os_name,
    tags: r.tags === null ? null : (JSON.parse(r.tags) as string[]),
    metrics:
      // A sample has cpu and memory; a machine without a battery has battery and charging null.
      r.cpu === null || r.memory === null
        ? null
        : { battery: r.battery, charging: r.battery === null ? null : r.charging === 1, cpu: r.cpu, memory: r.memory, disk: r.disk ?? 0 },
    drain: r.drain,
    cpuTrend: r.cpu_trend,
    impact: r.impact,
    sampledAt: r.sampled_at,
    ring: r.ring,
    movedAt: r.moved_at,
    pinRing: r.pin_ring,
    connectivity: r.connectivity as Connectivity,
    createdAt: r.created_at,
  };
}

interface MoveRow {
  id: number;
  agent_id: string;
  from_ring: string;
  to_ring: string;
  reason: string;
  at: number;
}

interface DeploymentRow {
  seq: number;
  id: string;
  kind: string;
  spec: string;
  status: string;
  stage: number;
  phase: string;
  soak_until: number | null;
  gate_reset_at: number;
  halt_reason: string | null;
  detail: string;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

interface ExecutionRow {
  deployment_seq: number;
  device_id: string;
  stage: number;
  state: string;
  task_id: string | null;
  reason: string | null;
  baseline: string | null;
  observed: string | null;
  cpu_delta: number | null;
  memory_delta: number | null;
  drain_delta: number | null;
  rollback_task_id: string | null;
  queued_at: number;
  started_at: number | null;
  ended_at: number | null;
  observed_at: number | null;
}

interface GateRow {
  stage: number;
  ring: string;
  at: number;
  verdict: string;
  reason: string;
  figures: string;
}

interface ApiTokenRow {
  id: string;
  name: string;
  role: string;
  secret_hash: string;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
}

interface EnrollmentTokenRow {
  id: string;
  name: string;
  secret_hash: string;
  max_uses: number | null;
  uses: number;
  expires_at: number | null;
  require_approval: number;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
}

interface AuditRow {
  id: number;
  at: number;
  actor: string;
  actor_token_id: string | null;
  role: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number;
  address: string | null;
}

function toApiToken(r: ApiTokenRow): ApiToken {
  return { id: r.id, name: r.name, role: r.role as Role, createdAt: r.created_at, createdBy: r.created_by, revokedAt: r.revoked_at };
}

function toEnrollmentToken(r: EnrollmentTokenRow): EnrollmentToken {
  return {
    id: r.id,
    name: r.name,
    maxUses: r.max_uses,
    uses: r.uses,
    expiresAt: r.expires_at,
    requireApproval: r.require_approval === 1,
    createdAt: r.created_at,
    createdBy: r.created_by,
    revokedAt: r.revoked_at,
  };
}

function toAudit(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    actorTokenId: r.actor_token_id,
    role: r.role as Role | null,
    action: r.action,
    target: r.target,
    outcome: r.outcome as AuditEntry['outcome'],
    status: r.status,
    address: r.address,
  };
}

function prepareSecurity(db: Database.Database) {
  return {
    getApiToken: db.prepare<[string], ApiTokenRow>('SELECT * FROM api_tokens WHERE id = ?'),
    listApiTokens: db.prepare<[], ApiTokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id'),
    countApiTokens: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM api_tokens'),
    getEnrollmentToken: db.prepare<[string], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens WHERE id = ?'),
    listEnrollmentTokens: db.prepare<[], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens ORDER BY created_at, id'),
    listAudit: db.prepare<[{ after: number; since: number | null; actor: string | null; action: string | null; limit: number }], AuditRow>(
      `SELECT * FROM audit_log
       WHERE id > @after AND (@since IS NULL OR at >= @since) AND (@actor IS NULL OR actor = @actor) AND (@action IS NULL OR action = @action)
       ORDER BY id LIMIT @limit`,
    ),
  };
}

function toAgent(r: AgentRow): Agent {
  return {
    id: r.id,
    kind: r.kind as Agent['kind'],
    capabilities: JSON.parse(r.capabilities) as TaskType[],
    connectivity: r.connectivity as Agent['connectivity'],
    registeredAt: r.registered_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    device: r.device === null ? null : (JSON.parse(r.device) as DeviceInfo),
    ring: r.ring,
    assetId: r.asset_id,
    createdAt: r.created_at,
    ...(r.credential_hash !== null ? { credentialHash: r.credential_hash } : {}),
    ...(r.approval === 'pending' ? { approval: 'pending' as const } : {}),
  };
}

function toTask(r: TaskRow): Task {
  return {
    id: r.id,
    seq: r.seq,
    type: r.type as TaskType,
    parameters: JSON.parse(r.parameters) as Record<string, unknown>,
    priority: r.priority,
    status: r.status as TaskStatus,
    assignedTo: r.assigned_to,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    createdAt: r.created_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    error: r.error,
    target: r.target === null ? null : (JSON.parse(r.target) as TaskTarget),
    attemptsBase: r.attempts_base,
    backoff: JSON.parse(r.backoff) as BackoffPolicy,
    timeoutMs: r.timeout_ms,
    idempotencyKey: r.idempotency_key,
    runAfter: r.run_after,
    deadline: r.deadline,
    leaseExpiresAt: r.lease_expires_at,
  };
}

function toMove(r: MoveRow): RingMove {
  return {
    id: r.id,
    agentId: r.agent_id,
    from: r.from_ring,
    to: r.to_ring,
    reason: r.reason,
    at: r.at,
  };
}
function toDeployment(r: DeploymentRow): DeploymentRecord {
  return {
    seq: r.seq,
    id: r.id,
    kind: r.kind as DeploymentRecord['kind'],
    spec: JSON.parse(r.spec) as DeploymentSpec,
    status: r.status as DeploymentState,
    stage: r.stage,
    phase: r.phase as DeploymentRecord['phase'],
    soakUntil: r.soak_until,
    gateResetAt: r.gate_reset_at,
    haltReason: r.halt_reason,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}

function toExecution(r: ExecutionRow): Execution {
  return {
    deviceId: r.device_id,
    stage: r.stage,
    state: r.state as ExecutionState,
    taskId: r.task_id,
    reason: r.reason,
    baseline: r.baseline === null ? null : (JSON.parse(r.baseline) as DeviceReading),
    observed: r.observed === null ? null : (JSON.parse(r.observed) as DeviceReading),
    cpuDelta: r.cpu_delta,
    memoryDelta: r.memory_delta,
    drainDelta: r.drain_delta,
    rollbackTaskId: r.rollback_task_id,
    queuedAt: r.queued_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    observedAt: r.observed_at,
  };
}

/** A task's columns in the order of the INSERT. */
function taskRow(t: Task): unknown[] {
  return [
    t.seq,
    t.id,
    t.type,
    JSON.stringify(t.parameters),
    t.priority,
    t.status,
    t.assignedTo,
    t.attempts,
    t.maxAttempts,
    t.createdAt,
    t.startedAt,
    t.completedAt,
    t.result === null || t.result === undefined ? null : JSON.stringify(t.result),
    t.error,
    t.target === null ? null : JSON.stringify(t.target),
    t.attemptsBase,
    JSON.stringify(t.backoff),
    t.timeoutMs,
    t.idempotencyKey,
    t.runAfter,
    t.deadline,
    t.leaseExpiresAt,
  ];
}

/** The mutable columns, in the order of the UPDATE. */
function taskStateRow(t: Task): unknown[] {
  return [
    t.status,
    t.assignedTo,
    t.attempts,
    t.maxAttempts,
    t.startedAt,
    t.completedAt,
    t.result === null || t.result === undefined ? null : JSON.stringify(t.result),
    t.error,
    t.attemptsBase,
    t.runAfter,
    t.leaseExpiresAt,
    t.priority,
    t.seq,
  ];
}

function attemptRow(a: TaskAttempt): unknown[] {
  return [a.taskSeq, a.attempt, a.agentId, a.startedAt, a.endedAt, a.outcome, a.error];
}

/** Runs a synchronous body and hands its outcome over as a promise. */
function run<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(fromSqliteError(err));
  }
}

export interface SqliteStoreOptions {
  /**
   * `FULL` (the default) fsyncs the WAL on every commit: an acknowledged change
   * survives a process crash and a power loss. `NORMAL` survives a process
   * crash but may lose the last commits on power loss.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * `inline` (the default) commits on the event-loop thread at the end of each
   * turn; `thread` commits on a writer thread, so the event loop never waits
   * for an fsync and batches grow with the load.
   */
  writer?: 'inline' | 'thread';
}

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is
 * synchronous, so each verb is one atomic transaction that has committed by
 * the time its promise resolves.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  /** One process per file (a lock on DATA_DIR keeps a second one off); `orchestrator backup` copies it online. */
  readonly capabilities = { sharedByProcesses: false, onlineBackup: true } as const;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;
  private secStmts: ReturnType<typeof prepareSecurity> | undefined;
  /** Every write goes through here, in order, grouped into commits. */
  readonly writer: Writer;
  private readonly listCache = new Map<string, Database.Statement<unknown[], TaskRow>>();

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    // A file is checked before use (see open.ts): each way it can be unusable is a DatabaseFileError.
    this.db = path === ':memory:' ? new Database(path) : openDatabaseFile(path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('foreign_keys = ON');
      this.migrate();
    } catch (err) {
      this.db.close();
      throw explainSqliteError(path, err) ?? err;
    }
    // Migrations ran above on this connection; from here on it only reads, and the writer writes.
    this.writer = options.writer === 'thread' && path !== ':memory:' ? new ThreadWriter(path, options.synchronous ?? 'FULL') : new InlineWriter(this.db);
    const db = this.db;
    this.stmts = {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      getAsset: db.prepare<[string], { data: string }>('SELECT data FROM assets WHERE id = ?'),
      updateAsset: db.prepare('UPDATE assets SET data = ?, updated_at = ? WHERE id = ?'),
      listAssets: db.prepare<[], { data: string }>('SELECT data FROM assets ORDER BY created_at, id'),
      insertAgent: db.prepare(
        `INSERT INTO agents (id, kind, capabilities, connectivity, registered_at, last_heartbeat_at, device, ring, asset_id, created_at, credential_hash, approval)
         VALUES (@id, @kind, @capabilities, @connectivity, @registered_at, @last_heartbeat_at, @device, @ring, @asset_id, @created_at, @credential_hash, @approval)`,
      ),
      getAgent: db.prepare<[string], AgentRow>('SELECT * FROM agents WHERE id = ?'),
      listAgents: db.prepare<[], AgentRow>(
        "SELECT * FROM agents WHERE connectivity <> 'decommissioned' ORDER BY created_at, id",
      ),
      agentByAsset: db.prepare<[string], AgentRow>(
        "SELECT * FROM agents WHERE asset_id = ? AND connectivity <> 'decommissioned'",
      ),
      registration: db.prepare(
        "UPDATE agents SET device = ?, registered_at = COALESCE(registered_at, ?), last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
      ),
      heartbeat: db.prepare(
        "UPDATE agents SET device = ?, last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
      ),
      setConnectivity: db.prepare('UPDATE agents SET connectivity = ? WHERE id = ?'),
      setDevice: db.prepare('UPDATE agents SET device = ? WHERE id = ?'),
      setDeviceRing: db.prepare('UPDATE devices SET ring = ?, moved_at = ? WHERE id = ?'),
      setWatermark: db.prepare("INSERT INTO meta (key, value) VALUES ('ring_snapshot_move_id', (SELECT COALESCE(MAX(id), 0) FROM ring_moves)) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
      movesAfter: db.prepare<[number, number], MoveRow>('SELECT * FROM ring_moves WHERE id > ? ORDER BY id LIMIT ?'),
      insertMove: db.prepare('INSERT INTO ring_moves (agent_id, from_ring, to_ring, reason, at) VALUES (?, ?, ?, ?, ?)'),
      movesSince: db.prepare<[number, number, number, number], MoveRow>('SELECT * FROM ring_moves WHERE at >= ? AND (at > ? OR id > ?) ORDER BY at, id LIMIT ?'),
      upsertDevice: db.prepare(
        `INSERT INTO devices (id, site, department, manufacturer, model, os_name, tags, battery, charging, cpu, memory, disk,
           drain, cpu_trend, impact, sampled_at, ring, moved_at, pin_ring, connectivity, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET site = excluded.site, department = excluded.department, manufacturer = excluded.manufacturer,
           model = excluded.model, os_name = excluded.os_name, tags = excluded.tags,
           battery = CASE WHEN excluded.cpu IS NULL THEN battery ELSE excluded.battery END,
           charging = CASE WHEN excluded.cpu IS NULL THEN charging ELSE excluded.charging END,
           cpu = COALESCE(excluded.cpu, cpu), memory = COALESCE(excluded.memory, memory), disk = COALESCE(excluded.disk, disk),
           sampled_at = COALESCE(excluded.sampled_at, sampled_at)`,
      ),
      saveSample: db.prepare(
        'UPDATE devices SET battery = ?, charging = ?, cpu = ?, memory = ?, disk = ?, drain = ?, cpu_trend = ?, impact = ?, sampled_at = ? WHERE id = ?',
      ),
      setPin: db.prepare('UPDATE devices SET pin_ring = ? WHERE id = ?'),
      setDeviceConnectivity: db.prepare('UPDATE devices SET connectivity = ? WHERE id = ?'),
      loadDevices: db.prepare<[string, number], DeviceRow>('SELECT * FROM devices WHERE id > ? ORDER BY id LIMIT ?'),
      movesAll: db.prepare<[], MoveRow>('SELECT * FROM ring_moves ORDER BY id'),
      movesOf: db.prepare<[string], MoveRow>('SELECT * FROM ring_moves WHERE agent_id = ? ORDER BY id'),
      insertTask: db.prepare(
        `INSERT INTO tasks (seq, id, type, parameters, priority, status, assigned_to, attempts, max_attempts, created_at, started_at,
           completed_at, result, error, target, attempts_base, backoff, timeout_ms, idempotency_key, run_after, deadline, lease_expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      saveTask: db.prepare(
        `UPDATE tasks SET status = ?, assigned_to = ?, attempts = ?, max_attempts = ?, started_at = ?, completed_at = ?, result = ?,
           error = ?, attempts_base = ?, run_after = ?, lease_expires_at = ?, priority = ?
         WHERE seq = ?`,
      ),
      recordStart: db.prepare(
        "UPDATE tasks SET status = 'in_progress', assigned_to = ?, attempts = ?, started_at = ?, run_after = NULL, lease_expires_at = ? WHERE seq = ?",
      ),
      renewLeases: db.prepare("UPDATE tasks SET lease_expires_at = ? WHERE assigned_to = ? AND status = 'in_progress'"),
      getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
      byIdempotencyKey: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE idempotency_key = ?'),
      attempts: db.prepare<[string], AttemptRow>(
        'SELECT t.id AS task_id, a.* FROM task_attempts a JOIN tasks t ON t.seq = a.task_seq WHERE t.id = ? ORDER BY a.attempt',
      ),
      saveAttempt: db.prepare(
        `INSERT INTO task_attempts (task_seq, attempt, agent_id, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(task_seq, attempt) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome, error = excluded.error`,
      ),
      live: db.prepare<[], TaskRow>("SELECT * FROM tasks WHERE status IN ('pending', 'in_progress') ORDER BY seq"),
      maxSeq: db.prepare<[], { m: number | null }>('SELECT MAX(seq) AS m FROM tasks'),
      countByStatus: db.prepare<[], { status: string; n: number }>('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status'),
      attemptsByAgent: db.prepare<[], { agent_id: string; succeeded: number; failed: number }>(
        `SELECT agent_id, SUM(succeeded) AS succeeded, SUM(failed) AS failed FROM (
           SELECT assigned_to AS agent_id, COUNT(*) AS succeeded, 0 AS failed FROM tasks WHERE status = 'completed' AND assigned_to IS NOT NULL GROUP BY assigned_to
           UNION ALL
           SELECT agent_id, 0, COUNT(*) FROM task_attempts WHERE outcome IS NOT NULL AND outcome <> 'succeeded' GROUP BY agent_id
         ) GROUP BY agent_id`,
      ),
      insertDeployment: db.prepare(
        `INSERT INTO deployments (id, kind, spec, status, stage, phase, soak_until, gate_reset_at, halt_reason, detail, created_at, started_at, ended_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      saveDeployment: db.prepare(
        `UPDATE deployments SET status = ?, stage = ?, phase = ?, soak_until = ?, gate_reset_at = ?, halt_reason = ?, detail = ?, started_at = ?, ended_at = ?
         WHERE seq = ?`,
      ),
      saveExecution: db.prepare(
        `INSERT OR REPLACE INTO deployment_executions (deployment_seq, device_id, stage, state, task_id, reason, baseline, observed,
           cpu_delta, memory_delta, drain_delta, rollback_task_id, queued_at, started_at, ended_at, observed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertGate: db.prepare('INSERT INTO gate_evaluations (deployment_seq, stage, ring, at, verdict, reason, figures) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      getDeployment: db.prepare<[string], DeploymentRow>('SELECT * FROM deployments WHERE id = ?'),
      listDeployments: db.prepare<[number, number], DeploymentRow>('SELECT * FROM deployments WHERE seq < ? ORDER BY seq DESC LIMIT ?'),
      activeDeployments: db.prepare<[], DeploymentRow>("SELECT * FROM deployments WHERE status IN ('scheduled', 'in_progress', 'paused', 'halted') ORDER BY seq"),
      executions: db.prepare<[number], ExecutionRow>('SELECT * FROM deployment_executions WHERE deployment_seq = ? ORDER BY queued_at, device_id'),
      gates: db.prepare<[number], GateRow>('SELECT * FROM gate_evaluations WHERE deployment_seq = ? ORDER BY id'),
    };
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    const latest = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0);
    if (current > latest) {
      throw new DatabaseFileError(
        this.path,
        `${this.path} has schema version ${current}, newer than this orchestrator knows (${latest}): run the newer version, or restore a backup this version made`,
      );
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.pragma(`user_version = ${m.version}`);
      })();
    }
  }

  probe(): Promise<void> {
    return this.writer.probe();
  }

  onWriteFailure(listener: (err: Error) => void): void {
    this.writer.onFailure = listener;
  }

  idle(): Promise<void> {
    return this.writer.idle();
  }

  async close(): Promise<void> {
    await this.writer.close();
    if (this.db.open) this.db.close();
  }

  private write(steps: Step[], row?: { key: string; supersedable: boolean; full: boolean }): Promise<StepResult[]> {
    return this.writer.submit(row ? { steps, ...row } : { steps });
  }

  getMeta(key: string): Promise<string | null> {
    return run(() => this.stmts.getMeta.get(key)?.value ?? null);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.write([{ sql: this.stmts.setMeta.source, params: [key, value] }]).then(() => undefined);
  }

  // ---------------------------------------------------------------- security

  insertApiToken(token: ApiToken, secretHash: string): Promise<void> {
    return this.write([{
      sql: 'INSERT INTO api_tokens (id, name, role, secret_hash, created_at, created_by, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      params: [token.id, token.name, token.role, secretHash, token.createdAt, token.createdBy, token.revokedAt],
    }]).then(() => undefined);
  }

  getApiToken(id: string): Promise<{ token: ApiToken; secretHash: string } | null> {
    return run(() => {
      const row = this.sec.getApiToken.get(id);
      return row ? { token: toApiToken(row), secretHash: row.secret_hash } : null;
    });
  }

  listApiTokens(): Promise<ApiToken[]> {
    return run(() => this.sec.listApiTokens.all().map(toApiToken));
  }

  revokeApiToken(id: string, at: number): Promise<boolean> {
    return this.write([{ sql: 'UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', params: [at, id], want: 'changes' }]).then(([n]) => n === 1);
  }

  countApiTokens(): Promise<number> {
    return run(() => this.sec.countApiTokens.get()?.n ?? 0);
  }

  insertEnrollmentToken(token: EnrollmentToken, secretHash: string): Promise<void> {
    return this.write([{
      sql: `INSERT INTO enrollment_tokens (id, name, secret_hash, max_uses, uses, expires_at, require_approval, created_at, created_by, revoked_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      params: [token.id, token.name, secretHash, token.maxUses, token.uses, token.expiresAt, token.requireApproval ? 1 : 0, token.createdAt, token.createdBy, token.revokedAt],
    }]).then(() => undefined);
  }

  getEnrollmentToken(id: string): Promise<{ token: EnrollmentToken; secretHash: string } | null> {
    return run(() => {
      const row = this.sec.getEnrollmentToken.get(id);
      return row ? { token: toEnrollmentToken(row), secretHash: row.secret_hash } : null;
    });
  }

  listEnrollmentTokens(): Promise<EnrollmentToken[]> {
    return run(() => this.sec.listEnrollmentTokens.all().map(toEnrollmentToken));
  }

  revokeEnrollmentToken(id: string, at: number): Promise<boolean> {
    return this.write([{ sql: 'UPDATE enrollment_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', params: [at, id], want: 'changes' }]).then(([n]) => n === 1);
  }

  consumeEnrollmentToken(id: string, now: number): Promise<boolean> {
    return this.write([{
      sql: `UPDATE enrollment_tokens SET uses = uses + 1
            WHERE id = ? AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > ?)`,
      params: [id, now],
      want: 'changes',
    }]).then(([n]) => n === 1);
  }

  setAgentApproval(id: string, approval: Approval): Promise<void> {
    return this.write([{ sql: 'UPDATE agents SET approval = ? WHERE id = ?', params: [approval, id] }]).then(() => undefined);
  }

  appendAudit(e: Omit<AuditEntry, 'id'>): Promise<void> {
    return this.write([{
      sql: 'INSERT INTO audit_log (at, actor, actor_token_id, role, action, target, outcome, status, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      params: [e.at, e.actor, e.actorTokenId, e.role, e.action, e.target, e.outcome, e.status, e.address],
    }]).then(() => undefined);
  }

  listAudit(q: AuditQuery): Promise<AuditEntry[]> {
    return run(() =>
      this.sec.listAudit
        .all({ after: q.afterId ?? 0, since: q.since ?? null, actor: q.actor ?? null, action: q.action ?? null, limit: q.limit })
        .map(toAudit),
    );
  }

  /** Statements of the security tables, prepared on first use. */
  private get sec(): ReturnType<typeof prepareSecurity> {
    this.secStmts ??= prepareSecurity(this.db);
    return this.secStmts;
  }

  upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }> {
    const data = JSON.stringify(asset);
    return this.write([
      { sql: this.stmts.updateAsset.source, params: [data, now, asset.id], want: 'changes' },
      { sql: 'INSERT OR IGNORE INTO assets (id, data, created_at, updated_at) VALUES (?, ?, ?, ?)', params: [asset.id, data, now, now] },
    ]).then(([updated]) => ({ created: updated === 0 }));
  }

  getAsset(id: string): Promise<Asset | null> {
    return run(() => {
      const row = this.stmts.getAsset.get(id);
      return row ? (JSON.parse(row.data) as Asset) : null;
    });
  }

  listAssets(): Promise<Asset[]> {
    return run(() => this.stmts.listAssets.all().map((r) => JSON.parse(r.data) as Asset));
  }

  insertAgent(agent: Agent): Promise<void> {
    return this.write([{ sql: this.stmts.insertAgent.source, params: {
        id: agent.id,
        kind: agent.kind,
        capabilities: JSON.stringify(agent.capabilities),
        connectivity: agent.connectivity,
        registered_at: agent.registeredAt,
        last_heartbeat_at: agent.lastHeartbeatAt,
        device: agent.device === null ? null : JSON.stringify(agent.device),
        ring: agent.ring,
        asset_id: agent.assetId,
        created_at: agent.createdAt,
        credential_hash: agent.credentialHash ?? null,
        approval: agent.approval ?? 'approved',
      } }]).then(() => undefined);
  }

  getAgent(id: string): Promise<Agent | null> {
    return run(() => {
      const row = this.stmts.getAgent.get(id);
      return row ? toAgent(row) : null;
    });
  }

  listAgents(): Promise<Agent[]> {
    return run(() => this.stmts.listAgents.all().map(toAgent));
  }

  findAgentByAsset(assetId: string): Promise<Agent | null> {
    return run(() => {
      const row = this.stmts.agentByAsset.get(assetId);
      return row ? toAgent(row) : null;
    });
  }

  recordRegistration(id: string, device: DeviceInfo, at: number): Promise<void> {
    return this.write([{ sql: this.stmts.registration.source, params: [JSON.stringify(device), at, at, id] }]).then(() => undefined);
  }

  recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void> {
    return this.recordHeartbeats([{ id, device, at }]);
  }

  recordHeartbeats(rows: readonly { id: string; device: DeviceInfo; at: number }[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const sql = this.stmts.heartbeat.source;
    return this.write(rows.map((r) => ({ sql, params: [JSON.stringify(r.device), r.at, r.id] }))).then(() => undefined);
  }

  setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void> {
    return this.write([{ sql: this.stmts.setConnectivity.source, params: [connectivity, id] }]).then(() => undefined);
  }

  updateAgentDevice(id: string, device: DeviceInfo): Promise<void> {
    return this.write([{ sql: this.stmts.setDevice.source, params: [JSON.stringify(device), id] }]).then(() => undefined);
  }

  applyRingMoves(moves: readonly RingMoveWrite[]): Promise<void> {
    if (moves.length === 0) return Promise.resolve();
    const insert = this.stmts.insertMove.source;
    return this.write(moves.map((m) => ({ sql: insert, params: [m.agentId, m.from, m.to, m.reason, m.at] }))).then(() => undefined);
  }

  snapshotRings(rows: readonly { id: string; ring: string | null; movedAt: number }[]): Promise<void> {
    const setRing = this.stmts.setDeviceRing.source;
    const steps: Step[] = rows.map((r) => ({ sql: setRing, params: [r.ring, r.movedAt, r.id] }));
    steps.push({ sql: this.stmts.setWatermark.source });
    return this.write(steps).then(() => undefined);
  }

  ringMovesAfterSnapshot(afterId: number, limit: number): Promise<RingMove[]> {
    return run(() => this.stmts.movesAfter.all(afterId, limit).map(toMove));
  }

  async ringSnapshotWatermark(): Promise<number> {
    return Number((await this.getMeta('ring_snapshot_move_id')) ?? 0);
  }

  listRingMovesSince(since: number, afterId: number, limit: number): Promise<RingMove[]> {
    return run(() => this.stmts.movesSince.all(since, since, afterId, limit).map(toMove));
  }

  upsertDevices(devices: readonly DeviceRecord[]): Promise<void> {
    if (devices.length === 0) return Promise.resolve();
    const sql = this.stmts.upsertDevice.source;
    return this.write(
      devices.map((d) => ({
        sql,
        params: [
          d.id, d.site, d.department, d.manufacturer, d.model, d.osName, d.tags === null ? null : JSON.stringify(d.tags),
          d.metrics?.battery ?? null, d.metrics === null || d.metrics.charging === null ? null : d.metrics.charging ? 1 : 0, d.metrics?.cpu ?? null,
          d.metrics?.memory ?? null, d.metrics?.disk ?? null, d.drain, d.cpuTrend, d.impact, d.sampledAt,
          d.ring, d.movedAt, d.pinRing, d.connectivity, d.createdAt,
        ],
      })),
    ).then(() => undefined);
  }

  saveDeviceSamples(samples: readonly DeviceSample[]): Promise<void> {
    if (samples.length === 0) return Promise.resolve();
    const sql = this.stmts.saveSample.source;
    return this.write(
      samples.map((m) => ({ sql, params: [m.battery, m.charging === null ? null : m.charging ? 1 : 0, m.cpu, m.memory, m.disk, m.drain, m.cpuTrend, m.impact, m.sampledAt, m.id] })),
    ).then(() => undefined);
  }

  setDevicePin(id: string, ring: string | null): Promise<void> {
    return this.write([{ sql: this.stmts.setPin.source, params: [ring, id] }]).then(() => undefined);
  }

  setDeviceConnectivity(id: string, connectivity: Connectivity): Promise<void> {
    return this.write([{ sql: this.stmts.setDeviceConnectivity.source, params: [connectivity, id] }]).then(() => undefined);
  }

  loadDevices(afterId: string, limit: number): Promise<DeviceRecord[]> {
    return run(() => this.stmts.loadDevices.all(afterId, limit).map(toDevice));
  }

  listRingMoves(agentId?: string): Promise<RingMove[]> {
    return run(() => (agentId === undefined ? this.stmts.movesAll.all() : this.stmts.movesOf.all(agentId)).map(toMove));
  }

  insertTasks(tasks: readonly Task[]): Promise<void> {
    const sql = this.stmts.insertTask.source;
    return this.write(tasks.map((t) => ({ sql, params: taskRow(t) }))).then(() => undefined);
  }

  saveTask(task: Task, endedAttempt: TaskAttempt | null = null): Promise<void> {
    const steps: Step[] = [{ sql: this.stmts.saveTask.source, params: taskStateRow(task) }];
    // A successful attempt is the completed task's last one: its record is read from the task row.
    if (endedAttempt && endedAttempt.outcome !== 'succeeded') steps.push({ sql: this.stmts.saveAttempt.source, params: attemptRow(endedAttempt) });
    // It sets every column a later write changes, so a task start queued before it need not run.
    return this.write(steps, { key: `task:${task.seq}`, supersedable: steps.length === 1, full: true }).then(() => undefined);
  }

  recordStart(task: Task): Promise<void> {
    return this.write(
      [{ sql: this.stmts.recordStart.source, params: [task.assignedTo, task.attempts, task.startedAt, task.leaseExpiresAt, task.seq] }],
      { key: `task:${task.seq}`, supersedable: true, full: false },
    ).then(() => undefined);
  }

  renewLeases(agentId: string, until: number): Promise<void> {
    return this.write([{ sql: this.stmts.renewLeases.source, params: [until, agentId] }]).then(() => undefined);
  }

  getTask(id: string): Promise<Task | null> {
    return run(() => {
      const row = this.stmts.getTask.get(id);
      return row ? toTask(row) : null;
    });
  }

  findTaskByIdempotencyKey(key: string): Promise<Task | null> {
    return run(() => {
      const row = this.stmts.byIdempotencyKey.get(key);
      return row ? toTask(row) : null;
    });
  }

  getAttempts(taskId: string): Promise<TaskAttempt[]> {
    return run(() => {
      const attempts: TaskAttempt[] = this.stmts.attempts.all(taskId).map((r) => ({
        taskId: r.task_id,
        taskSeq: r.task_seq,
        attempt: r.attempt,
        agentId: r.agent_id,
        startedAt: r.started_at,
        endedAt: r.ended_at,
        outcome: r.outcome as TaskAttempt['outcome'],
        error: r.error,
      }));
      const row = this.stmts.getTask.get(taskId);
      if (row && row.status === 'completed' && row.assigned_to !== null && !attempts.some((a) => a.attempt === row.attempts)) {
        attempts.push({
          taskId,
          taskSeq: row.seq,
          attempt: row.attempts,
          agentId: row.assigned_to,
          startedAt: row.started_at ?? row.created_at,
          endedAt: row.completed_at,
          outcome: 'succeeded',
          error: null,
        });
      }
      return attempts;
    });
  }

  loadLiveTasks(): Promise<Task[]> {
    return run(() => this.stmts.live.all().map(toTask));
  }

  maxTaskSeq(): Promise<number> {
    return run(() => this.stmts.maxSeq.get()?.m ?? 0);
  }

  listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]> {
    return run(() => {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (filter.status !== undefined) {
        where.push('status = ?');
        args.push(filter.status);
      }
      if (filter.type !== undefined) {
        where.push('type = ?');
        args.push(filter.type);
      }
      if (filter.agentId !== undefined) {
        where.push('assigned_to = ?');
        args.push(filter.agentId);
      }
      if (before !== undefined) {
        where.push('seq < ?');
        args.push(before);
      }
      const sql = `SELECT * FROM tasks ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
      let stmt = this.listCache.get(sql);
      if (!stmt) {
        stmt = this.db.prepare<unknown[], TaskRow>(sql);
        this.listCache.set(sql, stmt);
      }
      return stmt.all(...args, limit).map(toTask);
    });
  }

  countTasksByStatus(): Promise<Record<TaskStatus, number>> {
    return run(() => {
      const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
      for (const r of this.stmts.countByStatus.all()) counts[r.status as TaskStatus] = r.n;
      return counts;
    });
  }

  countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>> {
    return run(
      () =>
        new Map(
          this.stmts.attemptsByAgent.all().map((r) => [r.agent_id, { succeeded: r.succeeded, failed: r.failed }] as const),
        ),
    );
  }

  insertDeployment(d: Omit<DeploymentRecord, 'seq'>): Promise<number> {
    return this.write([
      {
        sql: this.stmts.insertDeployment.source,
        params: [d.id, d.kind, JSON.stringify(d.spec), d.status, d.stage, d.phase, d.soakUntil, d.gateResetAt, d.haltReason, JSON.stringify(d.detail), d.createdAt, d.startedAt, d.endedAt],
        want: 'rowid',
      },
    ]).then(([seq]) => seq as number);
  }

  saveDeployment(d: DeploymentRecord, also: { executions?: readonly Execution[]; evaluations?: readonly GateEvaluation[] } = {}): Promise<void> {
    // One write of several steps: the writer runs a write's steps in one transaction (or savepoint), so all or none commit.
    return this.write([
      { sql: this.stmts.saveDeployment.source, params: [d.status, d.stage, d.phase, d.soakUntil, d.gateResetAt, d.haltReason, JSON.stringify(d.detail), d.startedAt, d.endedAt, d.seq] },
      ...this.executionSteps(d.seq, also.executions ?? []),
      ...(also.evaluations ?? []).map((e) => this.gateStep(d.seq, e)),
    ]).then(() => undefined);
  }

  saveExecutions(deploymentSeq: number, executions: readonly Execution[]): Promise<void> {
    if (executions.length === 0) return Promise.resolve();
    return this.write(this.executionSteps(deploymentSeq, executions)).then(() => undefined);
  }

  private executionSteps(deploymentSeq: number, executions: readonly Execution[]): Step[] {
    const sql = this.stmts.saveExecution.source;
    return executions.map((e) => ({
      sql,
      params: [
        deploymentSeq, e.deviceId, e.stage, e.state, e.taskId, e.reason,
        e.baseline === null ? null : JSON.stringify(e.baseline), e.observed === null ? null : JSON.stringify(e.observed),
        e.cpuDelta, e.memoryDelta, e.drainDelta, e.rollbackTaskId, e.queuedAt, e.startedAt, e.endedAt, e.observedAt,
      ],
    }));
  }

  private gateStep(deploymentSeq: number, e: GateEvaluation): Step {
    return { sql: this.stmts.insertGate.source, params: [deploymentSeq, e.stage, e.ring, e.at, e.verdict, e.reason, JSON.stringify(e.figures)] };
  }

  insertGateEvaluation(deploymentSeq: number, e: GateEvaluation): Promise<void> {
    return this.write([this.gateStep(deploymentSeq, e)]).then(() => undefined);
  }

  getDeployment(id: string): Promise<DeploymentRecord | null> {
    return run(() => {
      const row = this.stmts.getDeployment.get(id);
      return row ? toDeployment(row) : null;
    });
  }

  listDeployments(limit: number, before?: number): Promise<DeploymentRecord[]> {
    return run(() => this.stmts.listDeployments.all(before ?? Number.MAX_SAFE_INTEGER, limit).map(toDeployment));
  }

  loadActiveDeployments(): Promise<DeploymentRecord[]> {
    return run(() => this.stmts.activeDeployments.all().map(toDeployment));
  }

  getExecutions(deploymentSeq: number): Promise<Execution[]> {
    return run(() => this.stmts.executions.all(deploymentSeq).map(toExecution));
  }

  getGateEvaluations(deploymentSeq: number): Promise<GateEvaluation[]> {
    return run(() =>
      this.stmts.gates.all(deploymentSeq).map((r) => ({ stage: r.stage, ring: r.ring, at: r.at, verdict: r.verdict as GateEvaluation['verdict'], reason: r.reason, figures: JSON.parse(r.figures) as Record<string, number> })),
    );
  }
}

/**
 * Numbered, forward-only migrations. The applied version lives in
 * `PRAGMA user_version`; each migration runs in its own transaction.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE assets (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        capabilities TEXT NOT NULL,
        connectivity TEXT NOT NULL,
        registered_at INTEGER,
        last_heartbeat_at INTEGER,
        device TEXT,
        ring TEXT NOT NULL DEFAULT 'unassigned',
        asset_id TEXT,
        created_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX agents_live_asset ON agents(asset_id)
        WHERE asset_id IS NOT NULL AND connectivity <> 'decommissioned';

      CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        parameters TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
        assigned_to TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        completed_at INTEGER,
        result TEXT,
        error TEXT
      );
      CREATE INDEX tasks_pending ON tasks(priority DESC, seq ASC) WHERE status = 'pending';
      CREATE INDEX tasks_in_progress ON tasks(assigned_to) WHERE status = 'in_progress';
      CREATE INDEX tasks_status ON tasks(status);

      CREATE TABLE task_attempts (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        outcome TEXT,
        error TEXT,
        PRIMARY KEY (task_id, attempt)
      );

      CREATE TABLE ring_moves (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id TEXT NOT NULL,
        from_ring TEXT NOT NULL,
        to_ring TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE INDEX ring_moves_agent ON ring_moves(agent_id, id);

      CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        completed_at INTEGER,
        affected_agents TEXT NOT NULL,
        recovered_agents TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'task engine: targets, backoff, timeouts, idempotency, schedule, leases',
    sql: `
      ALTER TABLE tasks ADD COLUMN target TEXT;
      ALTER TABLE tasks ADD COLUMN attempts_base INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE tasks ADD COLUMN backoff TEXT NOT NULL DEFAULT '{"strategy":"exponential","initialMs":1000,"maxMs":60000,"jitter":true}';
      ALTER TABLE tasks ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 60000;
      ALTER TABLE tasks ADD COLUMN idempotency_key TEXT;
      ALTER TABLE tasks ADD COLUMN run_after INTEGER;
      ALTER TABLE tasks ADD COLUMN deadline INTEGER;
      ALTER TABLE tasks ADD COLUMN lease_expires_at INTEGER;
      CREATE UNIQUE INDEX tasks_idempotency ON tasks(idempotency_key) WHERE idempotency_key IS NOT NULL;
      DROP INDEX tasks_pending;
      DROP INDEX tasks_status;
      DROP INDEX tasks_in_progress;
      CREATE INDEX tasks_status_seq ON tasks(status, seq);
      CREATE INDEX tasks_type_seq ON tasks(type, seq);
      CREATE INDEX tasks_agent_seq ON tasks(assigned_to, seq);
    `,
  },
  {
    version: 3,
    name: 'attempts keyed by task seq, so that new attempts append instead of scattering',
    sql: `
      CREATE TABLE task_attempts_new (
        task_seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        outcome TEXT,
        error TEXT,
        PRIMARY KEY (task_seq, attempt)
      ) WITHOUT ROWID;
      INSERT INTO task_attempts_new (task_seq, attempt, agent_id, started_at, ended_at, outcome, error)
        SELECT t.seq, a.attempt, a.agent_id, a.started_at, a.ended_at, a.outcome, a.error
        FROM task_attempts a JOIN tasks t ON t.id = a.task_id;
      DROP TABLE task_attempts;
      ALTER TABLE task_attempts_new RENAME TO task_attempts;
    `,
  },
  {
    version: 4,
    name: 'a task\'s successful attempt is read from the task row, not stored twice',
    sql: `DELETE FROM task_attempts WHERE outcome = 'succeeded';`,
  },
  {
    version: 5,
    name: 'index only the tasks in progress by agent: an index of every task by agent cost a page per agent per commit',
    sql: `
      DROP INDEX tasks_agent_seq;
      CREATE INDEX tasks_agent_running ON tasks(assigned_to) WHERE status = 'in_progress';
    `,
  },
  {
    version: 6,
    name: 'devices: every device of the fleet with its attributes, latest metrics, trends, ring and pin; agents are devices too',
    sql: `
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        site TEXT, department TEXT, manufacturer TEXT, model TEXT, os_name TEXT, tags TEXT,
        battery REAL, charging INTEGER, cpu REAL, memory REAL, disk REAL,
        drain REAL NOT NULL DEFAULT 0, cpu_trend REAL NOT NULL DEFAULT 0, impact REAL NOT NULL DEFAULT 0,
        sampled_at INTEGER,
        ring TEXT, moved_at INTEGER NOT NULL DEFAULT 0,
        pin_ring TEXT,
        connectivity TEXT NOT NULL DEFAULT 'offline',
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO devices (id, battery, charging, cpu, memory, disk, sampled_at, ring, moved_at, connectivity, created_at)
        SELECT a.id,
               json_extract(a.device, '$.battery_level'), json_extract(a.device, '$.battery_charging'),
               json_extract(a.device, '$.cpu_usage'), json_extract(a.device, '$.memory_usage'), json_extract(a.device, '$.disk_usage'),
               CASE WHEN a.registered_at IS NULL THEN NULL ELSE a.last_heartbeat_at END,
               CASE WHEN a.ring = 'unassigned' THEN NULL ELSE a.ring END, 0, a.connectivity, a.created_at
        FROM agents a;
      UPDATE devices SET
        site = (SELECT json_extract(s.data, '$.site') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        department = (SELECT json_extract(s.data, '$.department') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        manufacturer = (SELECT json_extract(s.data, '$.manufacturer') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        model = (SELECT json_extract(s.data, '$.model') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        os_name = (SELECT json_extract(s.data, '$.osName') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id);
      CREATE INDEX ring_moves_at ON ring_moves(at, id);
      INSERT INTO meta (key, value) SELECT 'ring_snapshot_move_id', COALESCE(MAX(id), 0) FROM ring_moves;
    `,
  },
  {
    version: 7,
    name: 'staged deployments: deployments with a plan, per-device executions and gate evaluations; the seed facade is a deployment of kind seed',
    sql: `
      ALTER TABLE deployments RENAME TO deployments_v1;
      CREATE TABLE deployments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        stage INTEGER NOT NULL DEFAULT 0,
        phase TEXT NOT NULL DEFAULT 'dispatching',
        soak_until INTEGER,
        gate_reset_at INTEGER NOT NULL DEFAULT 0,
        halt_reason TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER
      );
      CREATE INDEX deployments_active ON deployments(status) WHERE status IN ('scheduled', 'in_progress', 'paused', 'halted');
      CREATE TABLE deployment_executions (
        deployment_seq INTEGER NOT NULL,
        device_id TEXT NOT NULL,
        stage INTEGER NOT NULL,
        state TEXT NOT NULL,
        task_id TEXT,
        reason TEXT,
        baseline TEXT,
        observed TEXT,
        cpu_delta REAL,
        memory_delta REAL,
        drain_delta REAL,
        rollback_task_id TEXT,
        queued_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        observed_at INTEGER,
        PRIMARY KEY (deployment_seq, device_id)
      ) WITHOUT ROWID;
      CREATE TABLE gate_evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment_seq INTEGER NOT NULL,
        stage INTEGER NOT NULL,
        ring TEXT NOT NULL,
        at INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL,
        figures TEXT NOT NULL
      );
      CREATE INDEX gate_evaluations_deployment ON gate_evaluations(deployment_seq, id);
      INSERT INTO deployments (id, kind, spec, status, detail, created_at, started_at, ended_at)
        SELECT id, 'seed',
               json_object('name', id, 'payload', json_object('type', 'deploy', 'params', json_object()), 'stages', json_array(),
                           'maintenanceWindows', json_array(), 'autoRollback', json('false'), 'rollbackPayload', json_object('type', 'deploy', 'params', json_object())),
               CASE status WHEN 'active' THEN 'in_progress' ELSE 'completed' END,
               json_object('recovered', json(recovered_agents)), started_at, started_at, completed_at
        FROM deployments_v1 ORDER BY started_at, id;
      INSERT INTO deployment_executions (deployment_seq, device_id, stage, state, queued_at, started_at, ended_at)
        SELECT d.seq, j.value, 0, 'succeeded', v.started_at, v.started_at, v.started_at
        FROM deployments_v1 v JOIN deployments d ON d.id = v.id, json_each(v.affected_agents) j;
      DROP TABLE deployments_v1;
    `,
  },
  {
    version: 8,
    name: 'network agents: the hash of each agent credential',
    sql: `ALTER TABLE agents ADD COLUMN credential_hash TEXT;`,
  },
  {
    version: 9,
    name: 'security: API tokens, enrollment tokens, agent approval, audit log',
    sql: `
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER
      );
      CREATE TABLE enrollment_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER,
        require_approval INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER
      );
      ALTER TABLE agents ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved';
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        actor_token_id TEXT,
        role TEXT,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        status INTEGER NOT NULL,
        address TEXT
      );
      CREATE INDEX audit_log_at ON audit_log(at);
      CREATE INDEX audit_log_actor ON audit_log(actor, id);
    `,
  },
  {
    version: 10,
    name: "one metrics type: an agent's device report and an execution's readings in the domain's names, not the seed's",
    sql: `
      UPDATE agents SET device = json_object(
          'name', json_extract(device, '$.name'),
          'osVersion', json_extract(device, '$.os_version'),
          'battery', json_extract(device, '$.battery_level'),
          'charging', CASE json_type(device, '$.battery_charging') WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') END,
          'cpu', json_extract(device, '$.cpu_usage'),
          'memory', json_extract(device, '$.memory_usage'),
          'disk', json_extract(device, '$.disk_usage'))
        WHERE device IS NOT NULL AND json_type(device, '$.cpu_usage') IS NOT NULL;
      UPDATE deployment_executions SET baseline = json_set(baseline, '$.cpuTrend', 0)
        WHERE baseline IS NOT NULL AND json_type(baseline, '$.cpuTrend') IS NULL;
      UPDATE deployment_executions SET observed = json_set(observed, '$.cpuTrend', 0)
        WHERE observed IS NOT NULL AND json_type(observed, '$.cpuTrend') IS NULL;
    `,
  },
  {
    version: 11,
    name: 'the advisor: advice records, listed by subject',
    sql: `
      CREATE TABLE advice (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        trigger TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        applied TEXT
      );
      CREATE INDEX advice_subject ON advice(subject, seq);
    `,
  },
  {
    version: 12,
    name: "the dashboard's device page: each device's metrics history, and its deployment executions by device",
    sql: `
      CREATE TABLE device_history (
        device_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        battery REAL,
        charging INTEGER,
        cpu REAL NOT NULL,
        memory REAL NOT NULL,
        disk REAL NOT NULL,
        score REAL,
        PRIMARY KEY (device_id, at)
      ) WITHOUT ROWID;
      CREATE INDEX device_history_at ON device_history(at);
      CREATE INDEX deployment_executions_device ON deployment_executions(device_id, deployment_seq);
    `,
  },
];

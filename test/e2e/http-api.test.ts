import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import type { RunningServer } from '../../src/server.js';
import { SEED_STARTUP_ASSET, startServer } from '../../src/server.js';
import { getJson, postJson, waitFor } from '../support/server-process.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

let server: RunningServer;
let base: string;
const printed: string[] = [];

beforeAll(async () => {
  const config = loadConfig({
    PORT: '0',
    DATA_DIR: tempDir(),
    HEARTBEAT_INTERVAL: '200ms',
    AGENT_TIMEOUT: '5s',
    REBALANCE_INTERVAL: '1s',
    LOG_LEVEL: 'silent',
  });
  server = await startServer(config, { print: (l) => printed.push(l), logger: pino({ level: 'silent' }) });
  base = server.url;
  // Let the agents register and send a first heartbeat.
  await waitFor(async () => ((await getJson(`${base}/cluster_status`)).body.idle_slaves === 3 ? true : undefined));
});

afterAll(async () => {
  await server.close();
  cleanupTempDirs();
});

/** What the store holds (not live state such as busy/idle), to show that a rejected request changed nothing. */
async function snapshot(): Promise<string> {
  const cluster = (await getJson(`${base}/cluster_status`)).body;
  const assets = ((await getJson(`${base}/asset_details`)).body.assets as { asset: unknown; agent_id: string }[]).map((a) => [a.asset, a.agent_id]);
  const agents = (await getJson(`${base}/list_agents`)).body;
  return JSON.stringify([cluster.total_tasks, cluster.total_slaves, assets, agents]);
}

async function expectRejected(
  request: () => Promise<Response>,
  status: number,
  code: string,
  error?: string | RegExp,
): Promise<void> {
  const before = await snapshot();
  const res = await request();
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const body = (await res.json()) as { error: string; code: string };
  expect(Object.keys(body).sort()).toEqual(['code', 'error']);
  expect(body.code).toBe(code);
  if (error !== undefined) expect(body.error).toMatch(error);
  expect(await snapshot()).toBe(before);
}

const post = (path: string, body: string, contentType = 'application/json') =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });

describe('start-up', () => {
  it('spawned two agents, then added the seed asset with a third, and said so', async () => {
    expect(printed[0]).toBe('Starting master orchestrator (background)...');
    expect(printed[1]).toBe('Spawning 2 default agents...');
    expect(printed[2]).toMatch(/^\[Master\] spawned agent slave-[0-9a-f]{8}$/);
    expect(printed[3]).toMatch(/^\[Master\] spawned agent slave-[0-9a-f]{8}$/);
    expect(printed[4]).toBe('Simulating asset add from UI (will spawn one agent)...');
    expect(printed[5]).toMatch(/^\[Master\] spawned agent slave-[0-9a-f]{8}$/);
    expect(printed.at(-3)).toBe(`HTTP API running at ${base}`);
    expect(printed.at(-2)).toMatch(new RegExp(`^Agents enroll with: orchestrator agent --server ${base} --enroll-token [A-Za-z0-9_-]{24}$`));
    expect(printed.at(-1)).toBe('API open to this machine without tokens (HOST is loopback and no API token exists); see docs/security.md');
    const { body } = await getJson(`${base}/asset_details`);
    const third = printed[5]?.split(' ').at(-1);
    expect(body.assets).toEqual([{ asset: SEED_STARTUP_ASSET, agent_id: third, agent_status: expect.stringMatching(/idle|busy/) as unknown }]);
  });
});

describe('GET /list_agents and POST /spawn_agent', () => {
  it('lists agent ids; a spawned agent registers and shows up', async () => {
    const before = (await getJson(`${base}/list_agents`)).body.agents as string[];
    expect(before).toHaveLength(3);
    const { status, body } = await postJson(`${base}/spawn_agent`);
    expect(status).toBe(200);
    expect(body.agent_id).toMatch(/^slave-[0-9a-f]{8}$/);
    expect((await getJson(`${base}/list_agents`)).body.agents).toEqual([...before, body.agent_id]);
    const agent = await waitFor(async () => {
      const a = (await getJson(`${base}/api/v1/agents/${String(body.agent_id)}`)).body;
      return a.ring_assignment !== 'unassigned' ? a : undefined;
    });
    expect(agent).toMatchObject({ slave_id: body.agent_id, connectivity: 'online' });
  });
});

describe('POST /add_asset', () => {
  const asset = {
    id: '7712...328',
    name: 'LAPTOP-RCK72RHH',
    manufacturer: 'LENOVO',
    model: 'IdeaPad Slim 5',
    osName: 'Win 11 Home',
    site: 'Coimbatore',
    department: 'Marketing',
  };

  it('adds an asset with its agent (the seed curl example); the same id again updates it and keeps the agent', async () => {
    const first = await postJson(`${base}/add_asset`, asset);
    expect(first).toEqual({ status: 200, body: { agent_id: expect.stringMatching(/^slave-/) as unknown, message: 'Asset added and agent created with metrics' } });
    const agents = (await getJson(`${base}/list_agents`)).body.agents as string[];
    const again = await postJson(`${base}/add_asset`, { ...asset, department: 'Sales', owner: 'kim' });
    expect(again.status).toBe(200);
    expect(again.body.agent_id).toBe(first.body.agent_id);
    expect((await getJson(`${base}/list_agents`)).body.agents).toEqual(agents);
    const one = await getJson(`${base}/asset_details?asset_id=${encodeURIComponent(asset.id)}`);
    expect(one.body).toMatchObject({ asset: { ...asset, department: 'Sales', owner: 'kim' }, agent_id: first.body.agent_id });
    const agent = (await getJson(`${base}/api/v1/agents/${String(first.body.agent_id)}`)).body;
    expect(agent.device_info).toMatchObject({ name: 'LAPTOP-RCK72RHH', os_version: 'Win 11 Home' });
  });

  it('rejects empty, malformed and mistyped bodies', async () => {
    await expectRejected(() => post('/add_asset', ''), 400, 'ORCH_EMPTY_PAYLOAD', /^empty payload$/);
    await expectRejected(() => post('/add_asset', '{}'), 400, 'ORCH_EMPTY_PAYLOAD', /^empty payload$/);
    await expectRejected(() => post('/add_asset', '{"id": "x",'), 400, 'ORCH_INVALID_JSON', /^invalid json$/);
    await expectRejected(() => post('/add_asset', '{"name": "no id"}'), 400, 'ORCH_VALIDATION', /id/);
    await expectRejected(() => post('/add_asset', '{"id": 42}'), 400, 'ORCH_VALIDATION', /id/);
    await expectRejected(() => post('/add_asset', '{"id": ""}'), 400, 'ORCH_VALIDATION');
    await expectRejected(() => post('/add_asset', '[1,2]'), 400, 'ORCH_VALIDATION');
    await expectRejected(() => post('/add_asset', '"text"'), 400, 'ORCH_VALIDATION');
    await expectRejected(() => post('/add_asset', '{"id": "a", "site": 7}'), 400, 'ORCH_VALIDATION', /site/);
  });

  it('refuses bodies over 1 MiB with 413', async () => {
    const big = JSON.stringify({ id: 'big', blob: 'x'.repeat(1024 * 1024) });
    await expectRejected(() => post('/add_asset', big), 413, 'ORCH_PAYLOAD_TOO_LARGE');
  });
});

describe('POST /submit_task and GET /status/{task_id}', () => {
  it('runs a task to completed with its result and every field of the seed', async () => {
    const { status, body } = await postJson(`${base}/submit_task`, { task_type: 'process_data', parameters: { data: [5, 1, 3] }, priority: 2 });
    expect(status).toBe(200);
    expect(Object.keys(body)).toEqual(['task_id']);
    const task = await waitFor(async () => {
      const t = (await getJson(`${base}/status/${String(body.task_id)}`)).body;
      return t.status === 'completed' ? t : undefined;
    }, 5000);
    for (const key of ['task_id', 'task_type', 'parameters', 'priority', 'status', 'assigned_to', 'created_at', 'started_at', 'completed_at', 'result', 'error']) {
      expect(task).toHaveProperty(key);
    }
    expect(task).toMatchObject({
      task_id: body.task_id,
      task_type: 'process_data',
      parameters: { data: [5, 1, 3] },
      priority: 2,
      result: { count: 3, sum: 9, min: 1, max: 5, median: 3 },
      error: null,
      attempts: 1,
      assigned_to: expect.stringMatching(/^slave-/) as unknown,
    });
    expect(Date.parse(String(task.completed_at))).toBeGreaterThanOrEqual(Date.parse(String(task.started_at)));
  });

  it('takes parameters and priority as optional', async () => {
    const { status, body } = await postJson(`${base}/submit_task`, { task_type: 'health_check' });
    expect(status).toBe(200);
    const t = (await getJson(`${base}/status/${String(body.task_id)}`)).body;
    expect(t).toMatchObject({ parameters: {}, priority: 0 });
  });

  it('rejects bad task submissions without storing anything', async () => {
    await expectRejected(() => post('/submit_task', '{"task_type": "mine"}'), 400, 'ORCH_UNKNOWN_TASK_TYPE', /unknown task_type "mine"/);
    await expectRejected(() => post('/submit_task', '{"parameters": {}}'), 400, 'ORCH_VALIDATION', /task_type/);
    await expectRejected(() => post('/submit_task', '{"task_type": 5}'), 400, 'ORCH_VALIDATION');
    await expectRejected(() => post('/submit_task', '{"task_type": "monitor", "priority": "5"}'), 400, 'ORCH_VALIDATION', /priority/);
    await expectRejected(() => post('/submit_task', '{"task_type": "monitor", "priority": 1.5}'), 400, 'ORCH_VALIDATION', /priority/);
    await expectRejected(() => post('/submit_task', '{"task_type": "monitor", "parameters": [1]}'), 400, 'ORCH_VALIDATION', /parameters/);
    await expectRejected(() => post('/submit_task', '{"task_type": "monitor", "params": {}}'), 400, 'ORCH_VALIDATION', /unknown field "params"/);
    await expectRejected(() => post('/submit_task', 'task_type=monitor', 'application/x-www-form-urlencoded'), 400, 'ORCH_INVALID_JSON');
    await expectRejected(() => post('/submit_task', ''), 400, 'ORCH_VALIDATION');
  });

  it('answers 404 for an unknown task', async () => {
    const res = await fetch(`${base}/status/00000000-0000-0000-0000-000000000000`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'task not found', code: 'ORCH_TASK_NOT_FOUND' });
  });
});

describe('GET /cluster_status', () => {
  it('has the seed fields, and they add up', async () => {
    const { body } = await getJson(`${base}/cluster_status`);
    for (const key of ['master_id', 'running', 'total_slaves', 'active_slaves', 'idle_slaves', 'healthy_devices', 'total_tasks', 'pending_tasks', 'in_progress_tasks', 'completed_tasks', 'failed_tasks', 'ring_distribution', 'queue_stats']) {
      expect(body).toHaveProperty(key);
    }
    expect(body.master_id).toMatch(/^master-[0-9a-f]{8}$/);
    expect(body.running).toBe(true);
    const n = (k: string) => body[k] as number;
    expect(n('active_slaves') + n('idle_slaves') + n('offline_slaves')).toBe(n('total_slaves'));
    expect(n('pending_tasks') + n('in_progress_tasks') + n('completed_tasks') + n('failed_tasks') + n('cancelled_tasks')).toBe(n('total_tasks'));
    const rings = body.ring_distribution as Record<string, number>;
    expect(Object.keys(rings).sort()).toEqual(['canary', 'dev', 'prod', 'stage', 'unassigned']);
    expect(Object.values(rings).reduce((a, b) => a + b, 0)).toBe(n('total_slaves'));
    // Real health from the first heartbeat on, not zero until a deployment.
    expect(n('healthy_devices')).toBeGreaterThan(0);
    const stats = body.queue_stats as Record<string, { sent: number; received: number; dropped: number }>;
    expect(Object.keys(stats).sort()).toEqual(((await getJson(`${base}/list_agents`)).body.agents as string[]).slice().sort());
    for (const s of Object.values(stats)) expect(s.received).toBeGreaterThan(0);
  });
});

describe('deployments', () => {
  it('start, status and complete (the seed curl examples)', async () => {
    const total = ((await getJson(`${base}/list_agents`)).body.agents as string[]).length;
    const start = await postJson(`${base}/start_deployment`, { deployment_id: 'deploy-001' });
    expect(start.status).toBe(200);
    expect(start.body).toMatchObject({ deployment_id: 'deploy-001', status: 'active' });
    const affected = start.body.affected_agents as string[];
    expect(start.body.agent_count).toBe(affected.length);
    expect(affected.length).toBeGreaterThanOrEqual(Math.max(1, Math.floor(total * 0.3)));
    expect(affected.length).toBeLessThanOrEqual(Math.max(1, Math.floor(total * 0.5)));

    const status = await getJson(`${base}/deployment_status?deployment_id=deploy-001`);
    expect(status.status).toBe(200);
    for (const key of ['deployment_id', 'status', 'start_time', 'total_agents', 'active_agents', 'idle_agents', 'healthy_devices', 'agents', 'assets', 'ring_distribution', 'spawned_agents', 'registered_slaves']) {
      expect(status.body).toHaveProperty(key);
    }
    expect(status.body.status).toBe('active');
    const agent = (status.body.agents as Record<string, unknown>[])[0] as Record<string, unknown>;
    for (const key of ['slave_id', 'status', 'capabilities', 'registered_at', 'last_heartbeat', 'assigned_tasks', 'completed_tasks', 'failed_tasks', 'device_info', 'ring_assignment', 'asset']) {
      expect(agent).toHaveProperty(key);
    }
    expect(Object.keys(agent.device_info as object).sort()).toEqual(['battery_charging', 'battery_level', 'cpu_usage', 'disk_usage', 'is_healthy', 'memory_usage', 'name', 'os_version']);
    const assets = status.body.assets as { agent_id: string; asset_data: { id: string }; agent_status: string }[];
    expect(assets.map((a) => a.asset_data.id)).toContain(SEED_STARTUP_ASSET.id);

    const done = await postJson(`${base}/complete_deployment`, { deployment_id: 'deploy-001' });
    expect(done.status).toBe(200);
    expect(done.body.status).toBe('completed');
    expect((done.body.recovered_agents as string[]).length).toBeGreaterThanOrEqual(1);
    expect(done.body.agents).toBeInstanceOf(Array);
    expect((await getJson(`${base}/deployment_status?deployment_id=deploy-001`)).body.status).toBe('completed');
  });

  it('errors: missing id 400, unknown 404, twice 409, already started 409', async () => {
    await expectRejected(() => post('/start_deployment', '{}'), 400, 'ORCH_VALIDATION', /^deployment_id required$/);
    await expectRejected(() => post('/start_deployment', '{"deployment_id": 7}'), 400, 'ORCH_VALIDATION');
    await expectRejected(() => post('/complete_deployment', '{}'), 400, 'ORCH_VALIDATION', /^deployment_id required$/);
    await expectRejected(() => post('/complete_deployment', '{"deployment_id": "never"}'), 404, 'ORCH_DEPLOYMENT_NOT_FOUND');
    await expectRejected(() => post('/complete_deployment', '{"deployment_id": "deploy-001"}'), 409, 'ORCH_DEPLOYMENT_NOT_ACTIVE');
    await expectRejected(() => post('/start_deployment', '{"deployment_id": "deploy-001"}'), 409, 'ORCH_DEPLOYMENT_EXISTS');
    await expectRejected(() => fetch(`${base}/deployment_status?deployment_id=never`), 404, 'ORCH_DEPLOYMENT_NOT_FOUND');
    await expectRejected(() => fetch(`${base}/deployment_status`), 400, 'ORCH_VALIDATION', /deployment_id required/);
  });
});

describe('GET /asset_details', () => {
  it('lists all, or one, or 404', async () => {
    const all = (await getJson(`${base}/asset_details`)).body.assets as { asset: { id: string }; agent_id: string; agent_status: string }[];
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const a of all) expect(Object.keys(a).sort()).toEqual(['agent_id', 'agent_status', 'asset']);
    const one = await getJson(`${base}/asset_details?asset_id=${encodeURIComponent(SEED_STARTUP_ASSET.id)}`);
    expect(one.body).toEqual(all.find((a) => a.asset.id === SEED_STARTUP_ASSET.id));
    const res = await fetch(`${base}/asset_details?asset_id=nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'asset not found', code: 'ORCH_ASSET_NOT_FOUND' });
  });
});

describe('POST /simulate_activity', () => {
  it('changes metrics on every online agent and shows before and after', async () => {
    const { status, body } = await postJson(`${base}/simulate_activity`);
    expect(status).toBe(200);
    const affected = body.affected_agents as string[];
    expect(body).toMatchObject({ status: 'success', message: `Simulated activity on ${affected.length} agents` });
    expect(affected.length).toBeGreaterThanOrEqual(3);
    const before = body.before as Record<string, { cpu: number; battery: number; memory: number }>;
    const after = body.after as typeof before;
    expect(Object.keys(before).sort()).toEqual(affected.slice().sort());
    expect(Object.keys(after).sort()).toEqual(affected.slice().sort());
    expect(affected.some((id) => before[id]?.cpu !== after[id]?.cpu)).toBe(true);
  });
});

describe('/api/v1/agents', () => {
  it('shows one agent, and DELETE removes it and its tasks go back to the queue', async () => {
    const { body } = await postJson(`${base}/spawn_agent`);
    const id = String(body.agent_id);
    expect((await getJson(`${base}/api/v1/agents/${id}`)).status).toBe(200);
    const del = await fetch(`${base}/api/v1/agents/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({ agent_id: id, status: 'decommissioned' });
    expect((await getJson(`${base}/list_agents`)).body.agents).not.toContain(id);
    const again = await fetch(`${base}/api/v1/agents/${id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ code: 'ORCH_AGENT_NOT_FOUND' });
    expect((await getJson(`${base}/api/v1/agents/${id}`)).status).toBe(404);
    const history = await getJson(`${base}/api/v1/agents/${String(((await getJson(`${base}/list_agents`)).body.agents as string[])[0])}/ring-history`);
    expect((history.body.moves as unknown[]).length).toBeGreaterThan(0);
  });
});

describe('hostile input', () => {
  it('bad URLs, oversized path segments and prototype keys are refused', async () => {
    await expectRejected(() => fetch(`${base}/status/%ff`), 400, 'ORCH_VALIDATION', /URL is not valid/);
    await expectRejected(() => fetch(`${base}/status/${'a'.repeat(5000)}`), 414, 'ORCH_URI_TOO_LONG');
    await expectRejected(() => fetch(`${base}/status/%00`), 400, 'ORCH_VALIDATION', /must not contain a slash, a backslash or a control character/);
    await expectRejected(() => fetch(`${base}/api/v1/agents/..%2F..%2Fetc`), 400, 'ORCH_VALIDATION', /params\.id must not contain a slash/);
    await expectRejected(() => fetch(`${base}/asset_details?asset_id=a&asset_id=b`), 400, 'ORCH_VALIDATION');
    await expectRejected(() => post('/add_asset', '{"id": "p", "__proto__": {"polluted": 1}}'), 400, 'ORCH_VALIDATION', /__proto__/);
    await expectRejected(() => post('/add_asset', '{"id": "p", "x": [{"constructor": {"prototype": {}}}]}'), 400, 'ORCH_VALIDATION');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a body nested deeper than 64 levels is a 400 before any work: nothing counted, its idempotency key still free', async () => {
    const before = (await getJson(`${base}/cluster_status`)).body.total_tasks as number;
    // About 4,000 levels in 8 KB: it once overflowed the stack in validation and in the store's serialisation.
    const deep = `{"type": "process_data", "idempotencyKey": "deep-1", "params": {"x": ${'['.repeat(4000)}${']'.repeat(4000)}}}`;
    await expectRejected(() => post('/api/v1/tasks', deep), 400, 'ORCH_VALIDATION', /deeper than 64 levels/);
    await expectRejected(() => post('/submit_task', `{"task_type": "process_data", "parameters": ${'{"a":'.repeat(65)}1${'}'.repeat(65)}}`), 400, 'ORCH_VALIDATION', /deeper than 64 levels/);
    // Brackets inside strings are text, not nesting; 64 levels is still a body.
    const fine = await post('/api/v1/tasks', `{"type": "process_data", "idempotencyKey": "deep-1", "params": {"note": "${'['.repeat(500)}", "x": ${'['.repeat(62)}${']'.repeat(62)}}}`);
    expect(fine.status).toBe(201);
    expect((await getJson(`${base}/cluster_status`)).body.total_tasks).toBe(before + 1);
  });

  it('no random body on any route gets a 5xx, and every error has the error shape', async () => {
    const routes = ['/spawn_agent', '/add_asset', '/submit_task', '/start_deployment', '/complete_deployment', '/simulate_activity'];
    const bodyArb = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ task_type: fc.oneof(fc.constantFrom('process_data', 'monitor', 'deploy'), fc.string()), parameters: fc.jsonValue(), priority: fc.jsonValue() }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.record({ id: fc.jsonValue(), name: fc.jsonValue(), deployment_id: fc.jsonValue() }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.string(),
    );
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), bodyArb, async (route, body) => {
        requests++;
        const res = await post(route, body);
        expect(res.status).toBeLessThan(500);
        const json = (await res.json()) as Record<string, unknown>;
        if (res.status >= 400) {
          expect(typeof json.error).toBe('string');
          expect(typeof json.code).toBe('string');
        }
      }),
      { numRuns: 300, seed: 2026 },
    );
    expect(requests).toBe(300);
  });
});

describe('unknown routes and methods', () => {
  it('answer 404 JSON', async () => {
    await expectRejected(() => fetch(`${base}/nope`), 404, 'ORCH_NOT_FOUND');
    await expectRejected(() => fetch(`${base}/cluster_status`, { method: 'DELETE' }), 404, 'ORCH_NOT_FOUND');
    await expectRejected(() => fetch(`${base}/list_agents`, { method: 'POST' }), 404, 'ORCH_NOT_FOUND');
  });
});

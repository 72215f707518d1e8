import { hostname } from 'node:os';
import { execFileSync } from 'node:child_process';
import http2 from 'node:http2';
import https from 'node:https';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import type { RunningServer } from '../../src/server.js';
import { startServer } from '../../src/server.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

const ENROLL = 'security-enroll-token-0123456789';
const metrics = { battery: 70, charging: false, cpu: 12.5, memory: 40, disk: 55 };
const running: RunningServer[] = [];

async function start(env: Record<string, string>, dataDir = tempDir(), print: (line: string) => void = () => undefined): Promise<RunningServer> {
  const config = loadConfig({ PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'silent', DEFAULT_AGENTS: '0', ENROLL_TOKEN: ENROLL, ...env });
  const server = await startServer(config, { print, logger: pino({ level: 'silent' }) });
  running.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
  cleanupTempDirs();
});

async function call(base: string, method: string, path: string, auth?: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(auth === undefined ? {} : { authorization: `Bearer ${auth}` }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

const enrollBody = (hostname: string, token = ENROLL) => ({ token, hostname, capabilities: ['health_check'], metrics });

describe('protected mode', () => {
  it('on loopback without tokens the API is open, as the prototype was; the first token closes it for good', async () => {
    const s = await start({});
    expect((await call(s.url, 'GET', '/cluster_status')).status).toBe(200);
    expect((await call(s.url, 'GET', '/api/v1/whoami')).body).toEqual({ actor: 'local', role: 'admin', open: true });
    const made = await call(s.url, 'POST', '/api/v1/tokens', undefined, { name: 'first', role: 'admin' });
    expect(made.status).toBe(201);
    expect((await call(s.url, 'GET', '/cluster_status')).status).toBe(401);
    expect((await call(s.url, 'GET', '/cluster_status', made.body.token as string)).status).toBe(200);
    // Revoking every token does not open it again.
    expect((await call(s.url, 'DELETE', `/api/v1/tokens/${String(made.body.id)}`, made.body.token as string)).status).toBe(200);
    expect((await call(s.url, 'GET', '/cluster_status')).status).toBe(401);
  });

  it('refuses to start on another address without authentication, says how, and starts with a token', async () => {
    const dataDir = tempDir();
    const refused = await start({ HOST: '0.0.0.0' }, dataDir).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toMatch(/^HOST: 0\.0\.0\.0 exposes the API .*\(orchestrator token create --role admin .* ADMIN_TOKEN/);
    const admin = 'an-admin-token-of-at-least-32-characters';
    const printed: string[] = [];
    const s = await start({ HOST: '0.0.0.0', ADMIN_TOKEN: admin }, dataDir, (line) => printed.push(line));
    const base = s.url.replace('0.0.0.0', '127.0.0.1');
    // How agents enroll names this machine, not the wildcard address it listens on.
    expect(printed.find((l) => l.startsWith('Agents enroll with:'))).toBe(`Agents enroll with: orchestrator agent --server ${s.url.replace('0.0.0.0', hostname())} --enroll-token ${ENROLL}`);
    expect((await call(base, 'GET', '/cluster_status')).status).toBe(401);
    expect((await call(base, 'GET', '/cluster_status', admin)).status).toBe(200);
    expect((await call(base, 'GET', '/api/v1/whoami', admin)).body).toMatchObject({ actor: 'ADMIN_TOKEN', role: 'admin' });
  });

  it('a token created by the CLI while the orchestrator runs is taken at once, and closes an open API', async () => {
    const dataDir = tempDir();
    const s = await start({}, dataDir);
    expect((await call(s.url, 'GET', '/cluster_status')).status).toBe(200);
    const cli = join(process.cwd(), 'src/cli/main.ts');
    const token = execFileSync(process.execPath, ['--import', 'tsx', cli, 'token', 'create', '--role', 'viewer', '--name', 'from-cli', '--data-dir', dataDir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    expect(token).toMatch(/^orch_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect((await call(s.url, 'GET', '/cluster_status')).status).toBe(401);
    expect((await call(s.url, 'GET', '/cluster_status', token)).status).toBe(200);
    expect((await call(s.url, 'POST', '/spawn_agent', token)).status).toBe(403);
    execFileSync(process.execPath, ['--import', 'tsx', cli, 'token', 'revoke', token.slice(5, 17), '--data-dir', dataDir], { stdio: 'ignore' });
    expect((await call(s.url, 'GET', '/cluster_status', token)).status).toBe(401);
  }, 30_000);
});

describe('limits', () => {
  it('failed authentications from one address are answered 429 with retry-after once over the limit, valid tokens too', async () => {
    const admin = 'an-admin-token-of-at-least-32-characters';
    const s = await start({ ADMIN_TOKEN: admin, AUTH_FAILURE_LIMIT: '3/1m' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await call(s.url, 'GET', '/cluster_status', `wrong-${i}`)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const limited = await call(s.url, 'GET', '/cluster_status', admin);
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ code: 'ORCH_RATE_LIMITED' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(20);
    // Agents' failed credentials count as well.
    expect((await call(s.url, 'POST', '/api/v1/agent/heartbeat', 'x:0123456789abcdefghijklmn', { seq: 1, metrics, running: [] })).status).toBe(429);
  });

  it('enrollments from one address are limited (429 with retry-after)', async () => {
    const s = await start({ ENROLL_RATE_LIMIT: '2/1m' });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody(`limited-${i}`)));
    expect(statuses.map((r) => r.status)).toEqual([200, 200, 429]);
    expect(statuses[2]?.body).toMatchObject({ code: 'ORCH_RATE_LIMITED' });
    expect(Number(statuses[2]?.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('bodies over 1 MiB are refused with 413, and errors never carry a stack trace', async () => {
    const s = await start({});
    const big = await call(s.url, 'POST', '/api/v1/tasks', undefined, { type: 'health_check', parameters: { pad: 'x'.repeat(1024 * 1024) } });
    expect(big).toMatchObject({ status: 413, body: { code: 'ORCH_PAYLOAD_TOO_LARGE' } });
    for (const r of [big, await call(s.url, 'POST', '/api/v1/tasks', undefined, { type: 'nope' })]) {
      expect(JSON.stringify(r.body)).not.toMatch(/at .*\.(js|ts):\d+/);
      expect(Object.keys(r.body).sort()).toEqual(['code', 'error']);
    }
  });
});

describe('enrollment tokens', () => {
  it('are limited in uses and time, revocable, shown once, and a used-up token still lets its agents back in', async () => {
    const s = await start({ ENROLL_TOKEN: 'off' });
    expect((await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody('default', 'off-off-off-off-off'))).status).toBe(403);
    const once = await call(s.url, 'POST', '/api/v1/enrollment-tokens', undefined, { name: 'one laptop', maxUses: 1 });
    expect(once).toMatchObject({ status: 201, body: { name: 'one laptop', maxUses: 1, uses: 0, requireApproval: false, token: expect.stringMatching(/^enr_/) as unknown } });
    const first = await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody('laptop', once.body.token as string));
    expect(first.status).toBe(200);
    expect((await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody('second', once.body.token as string))).body).toMatchObject({ code: 'ORCH_ENROLL_REFUSED' });
    // The agent that used it comes back with its own credential.
    const back = await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, { ...enrollBody('laptop', once.body.token as string), agentId: first.body.agentId, credential: first.body.credential });
    expect(back).toMatchObject({ status: 200, body: { agentId: first.body.agentId } });

    const short = await call(s.url, 'POST', '/api/v1/enrollment-tokens', undefined, { name: 'short', expiresInSeconds: 1 });
    const revoked = await call(s.url, 'POST', '/api/v1/enrollment-tokens', undefined, { name: 'revoked' });
    expect((await call(s.url, 'DELETE', `/api/v1/enrollment-tokens/${String(revoked.body.id)}`)).body).toMatchObject({ revokedAt: expect.any(String) as unknown });
    expect((await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody('r', revoked.body.token as string))).status).toBe(403);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody('late', short.body.token as string))).status).toBe(403);
    const list = await call(s.url, 'GET', '/api/v1/enrollment-tokens');
    expect(list.body.tokens).toEqual([
      expect.objectContaining({ name: 'one laptop', uses: 1, maxUses: 1 }),
      expect.objectContaining({ name: 'short', uses: 0 }),
      expect.objectContaining({ name: 'revoked', revokedAt: expect.any(String) as unknown }),
    ]);
    expect(JSON.stringify(list.body)).not.toContain((once.body.token as string).slice(17));
  });

  it('with approval required, a new agent waits as pending and gets no task until an admin approves it', async () => {
    const s = await start({});
    const t = await call(s.url, 'POST', '/api/v1/enrollment-tokens', undefined, { name: 'needs approval', requireApproval: true });
    const e = await call(s.url, 'POST', '/api/v1/agent/enroll', undefined, enrollBody('pending-one', t.body.token as string));
    expect(e.body).toMatchObject({ approval: 'pending' });
    const auth = `${String(e.body.agentId)}:${String(e.body.credential)}`;
    expect((await call(s.url, 'GET', `/api/v1/agents/${String(e.body.agentId)}`)).body).toMatchObject({ approval: 'pending' });
    const ack = ((await call(s.url, 'GET', '/api/v1/agent/commands?waitMs=0', auth)).body.commands as { id: number }[]).at(-1)?.id ?? 0;
    const task = await call(s.url, 'POST', '/api/v1/tasks', undefined, { type: 'health_check', target: { agentId: e.body.agentId } });
    // Heartbeats are taken, but no task comes.
    expect((await call(s.url, 'POST', '/api/v1/agent/heartbeat', auth, { seq: 1, metrics, running: [] })).status).toBe(200);
    expect((await call(s.url, 'GET', `/api/v1/agent/commands?waitMs=700&ack=${ack}`, auth)).body.commands).toEqual([]);
    expect((await call(s.url, 'GET', `/api/v1/tasks/${String(task.body.id)}`)).body).toMatchObject({ status: 'pending' });
    expect((await call(s.url, 'POST', `/api/v1/agents/${String(e.body.agentId)}/approve`)).body).toMatchObject({ approval: 'approved' });
    const cmds = (await call(s.url, 'GET', `/api/v1/agent/commands?waitMs=3000&ack=${ack}`, auth)).body.commands as { taskId?: string }[];
    expect(cmds).toEqual([expect.objectContaining({ type: 'task_assignment', taskId: task.body.id })]);
    // Approval is kept across a restart.
    expect((await call(s.url, 'GET', `/api/v1/agents/${String(e.body.agentId)}`)).body).toMatchObject({ approval: 'approved' });
  });
});

describe('audit log', () => {
  it('stores every operator and admin action with who, what, target, when and outcome, and pages through it', async () => {
    const admin = 'an-admin-token-of-at-least-32-characters';
    const s = await start({ ADMIN_TOKEN: admin, AUTH_FAILURE_LIMIT: 'off' });
    const op = await call(s.url, 'POST', '/api/v1/tokens', admin, { name: 'ci', role: 'operator' });
    const viewer = await call(s.url, 'POST', '/api/v1/tokens', admin, { name: 'dash', role: 'viewer' });
    // `since` strictly between the last token's entry and the first task's: the clock's millisecond must move on both sides.
    await new Promise((r) => setTimeout(r, 5));
    const since = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    const task = await call(s.url, 'POST', '/api/v1/tasks', op.body.token as string, { type: 'health_check' });
    await call(s.url, 'POST', `/api/v1/tasks/${String(task.body.id)}/cancel`, op.body.token as string);
    await call(s.url, 'POST', '/api/v1/tasks', viewer.body.token as string, { type: 'health_check' });
    await call(s.url, 'POST', '/api/v1/tasks', 'wrong', { type: 'health_check' });
    await call(s.url, 'POST', '/api/v1/tasks', op.body.token as string, { type: 'no-such-type' });
    await call(s.url, 'GET', '/api/v1/tasks', op.body.token as string); // reading is not an action

    const all = await call(s.url, 'GET', `/api/v1/audit?since=${encodeURIComponent(since)}`, admin);
    expect(all.body.entries).toEqual([
      expect.objectContaining({ actor: 'ci', role: 'operator', action: 'POST /api/v1/tasks', target: task.body.id, outcome: 'ok', status: 201, address: '127.0.0.1' }),
      expect.objectContaining({ actor: 'ci', action: 'POST /api/v1/tasks/:id/cancel', target: task.body.id, outcome: 'ok', status: 200 }),
      expect.objectContaining({ actor: 'dash', role: 'viewer', action: 'POST /api/v1/tasks', target: null, outcome: 'denied', status: 403 }),
      expect.objectContaining({ actor: 'anonymous', role: null, action: 'POST /api/v1/tasks', outcome: 'denied', status: 401 }),
      expect.objectContaining({ actor: 'ci', action: 'POST /api/v1/tasks', outcome: 'refused', status: 400 }),
    ]);
    const entries = all.body.entries as { at: string }[];
    expect(Date.parse(entries[0]?.at ?? '')).toBeGreaterThanOrEqual(Date.parse(since));

    // Filters, and pages of 2 followed by their cursors.
    expect(((await call(s.url, 'GET', '/api/v1/audit?actor=dash', admin)).body.entries as unknown[]).length).toBe(1);
    expect(((await call(s.url, 'GET', `/api/v1/audit?action=${encodeURIComponent('POST /api/v1/tokens')}`, admin)).body.entries as unknown[]).length).toBe(2);
    const pages: unknown[] = [];
    let cursor: string | null = null;
    do {
      const page = await call(s.url, 'GET', `/api/v1/audit?limit=2${cursor === null ? '' : `&cursor=${cursor}`}`, admin);
      pages.push(...(page.body.entries as unknown[]));
      cursor = page.body.nextCursor as string | null;
    } while (cursor !== null);
    expect(pages).toEqual((await call(s.url, 'GET', '/api/v1/audit', admin)).body.entries);
    expect(pages.length).toBe(7);
    // Only admins read it.
    expect((await call(s.url, 'GET', '/api/v1/audit', op.body.token as string)).status).toBe(403);
    expect((await call(s.url, 'GET', '/api/v1/audit?since=yesterday', admin)).status).toBe(400);
  });
});

describe('TLS', () => {
  it('with TLS_CERT and TLS_KEY the API speaks HTTPS, HTTP/1.1 and HTTP/2, with HSTS', async () => {
    const dir = tempDir();
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    const s = await start({ TLS_CERT: cert, TLS_KEY: key });
    expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = execFileSync('cat', [cert]);
    const h1 = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      https
        .get(`${s.url}/cluster_status`, { ca }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        })
        .on('error', reject);
    });
    expect(h1.status).toBe(200);
    expect(h1.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(JSON.parse(h1.body)).toHaveProperty('total_slaves', 0);
    const session = http2.connect(s.url, { ca });
    try {
      const h2 = await new Promise<{ status: number; hsts: unknown }>((resolve, reject) => {
        const req = session.request({ ':path': '/api/v1/agent/heartbeat', ':method': 'POST', 'content-type': 'application/json' });
        req.on('response', (h) => {
          req.resume();
          req.on('end', () => resolve({ status: Number(h[':status']), hsts: h['strict-transport-security'] }));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ seq: 1, metrics, running: [] }));
      });
      expect(h2).toEqual({ status: 401, hsts: 'max-age=31536000' });
    } finally {
      session.close();
    }
    // Plain HTTP to the TLS port gets nowhere.
    await expect(fetch(s.url.replace('https:', 'http:') + '/healthz')).rejects.toThrow();
  });

  it('TLS_CERT without TLS_KEY is a configuration error', () => {
    expect(() => loadConfig({ TLS_CERT: '/tmp/cert.pem' })).toThrow(/TLS_KEY: TLS_CERT and TLS_KEY go together/);
  });
});

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { documentedSchema } from '../../src/api/openapi.js';
import { fetchAnswer, OpenApiChecker } from '../support/openapi-check.js';
import type { JsonSchema } from '../support/schema-arbitrary.js';
import { fromSchema, mutatedBody, pathParam, PRIVILEGED_FIELDS } from '../support/schema-arbitrary.js';
import { serverPerFile } from '../support/in-process.js';

const ADMIN = 'fuzz-admin-token-0123456789-0123456789';
const ENROLL = 'fuzz-enroll-token-0123456789';
// Long intervals: nothing changes the store in the background while the fuzz runs, so a change can only come from a request.
const srv = serverPerFile({
  ADMIN_TOKEN: ADMIN,
  ENROLL_TOKEN: ENROLL,
  DEFAULT_AGENTS: '0',
  AUTH_FAILURE_LIMIT: 'off',
  ENROLL_RATE_LIMIT: 'off',
  HEARTBEAT_INTERVAL: '10m',
  AGENT_TIMEOUT: '60m',
  REBALANCE_INTERVAL: '60m',
  TASK_TIMEOUT: '60m',
});
const metrics = { battery: 70, charging: false, cpu: 12.5, memory: 40, disk: 55 };
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 10_000);

/**
 * Routes whose success starts work in the background (agents that run and beat, deployments that roll out):
 * they are fuzzed only with callers they must refuse, so that the store changes only when a request is taken.
 */
const REFUSED_ONLY = new Set(['POST /spawn_agent', 'POST /add_asset', 'POST /simulate_activity', 'POST /api/v1/deployments/:id/:action', 'POST /start_deployment']);

/** A route's request schemas as the OpenAPI document shows them (some parts are validated in code, documented in the schema). */
function documented(schema: { body?: unknown; querystring?: unknown }): { body?: JsonSchema; querystring?: JsonSchema } {
  return documentedSchema(schema) as { body?: JsonSchema; querystring?: JsonSchema };
}

/** A deployment that starts rolls out in the background: the fuzz creates only ones that wait (`scheduled`). */
const startsWork = (route: string, body: string | undefined): boolean => route === 'POST /api/v1/deployments' && body !== undefined && /"start"\s*:\s*true/.test(body);

/** Every table but the audit log (a refused action is recorded there, by design), each row in order, hashed. */
function digest(db: Database.Database): string {
  const h = createHash('sha256');
  const tables = db.prepare<[], { name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'audit_log' ORDER BY name").all();
  for (const { name, sql } of tables) {
    h.update(name);
    // A WITHOUT ROWID table is read in its primary key's order.
    const order = /WITHOUT ROWID/i.test(sql) ? '' : ' ORDER BY rowid';
    for (const row of db.prepare(`SELECT * FROM "${name}"${order}`).raw().iterate()) h.update(JSON.stringify(row));
  }
  return h.digest('hex');
}

describe('fuzz: every route, from its own schema, mutated', () => {
  it(`${REQUESTS} requests: no answer at or above 500, every answer as the OpenAPI document says, and nothing stored changed by a refused request`, async () => {
    const base = srv.base();
    const mint = async (role: string): Promise<string> => ((await srv.call('POST', '/api/v1/tokens', { name: `fuzz-${role}`, role })).body.token as string);
    const viewer = await mint('viewer');
    const operator = await mint('operator');
    // Agents without capabilities: they can beat, poll and report, and no task is ever dispatched to them.
    const agents: string[] = [];
    const agentIds: string[] = [];
    for (const hostname of ['fuzz-a', 'fuzz-b']) {
      const r = await srv.call('POST', '/api/v1/agent/enroll', { token: ENROLL, hostname, capabilities: [], metrics });
      agents.push(`${String(r.body.agentId)}:${String(r.body.credential)}`);
      agentIds.push(r.body.agentId as string);
    }
    await srv.call('POST', '/api/v1/devices', { devices: [{ id: 'fuzz-device-1', model: 'm1' }, { id: 'fuzz-device-2', model: 'm2' }] });
    const task = await srv.call('POST', '/api/v1/tasks', { type: 'health_check' });
    const realIds = [...agentIds, 'fuzz-device-1', task.body.id as string, 'no-such-id'];

    const checker = await OpenApiChecker.load(base);
    const db = new Database(join(srv.dataDir, 'orchestrator.db'), { readonly: true });
    const routes = srv.server().app.routeTable.filter((r) => r.method !== 'HEAD');
    const identities = fc.constantFrom<string | undefined>(ADMIN, ADMIN, ADMIN, operator, viewer, agents[0], agents[1], undefined, 'garbage', `${ADMIN}x`);
    const request = fc
      .constantFrom(...routes)
      .chain((route) => {
        const schema = documented(route.schema);
        const params = (route.url.match(/:[a-z_]+/g) ?? []).map(() => pathParam(realIds));
        return fc.record({
          route: fc.constant(route),
          params: fc.tuple(...params),
          query: schema.querystring === undefined ? fc.constant('') : fc.oneof(fromSchema(schema.querystring), fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 })).map((q) => new URLSearchParams(q as Record<string, string>).toString()),
          body: route.method === 'GET' || route.method === 'DELETE' ? fc.constant(undefined) : mutatedBody(schema.body).filter((b) => !startsWork(`${route.method} ${route.url}`, b)),
          auth: REFUSED_ONLY.has(`${route.method} ${route.url}`) ? fc.constantFrom(viewer, undefined, agents[0]) : identities,
          contentType: fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined),
        });
      });

    let before = digest(db);
    let version = db.pragma('data_version', { simple: true }) as number;
    let sent = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let i = 0;
        const path = r.route.url.replace(/:[a-z_]+/g, () => r.params[i++] as string);
        const headers: Record<string, string> = {};
        if (r.auth !== undefined) headers.authorization = `Bearer ${r.auth}`;
        if (r.contentType !== undefined && r.body !== undefined) headers['content-type'] = r.contentType;
        const { res, text } = await fetchAnswer(`${base}${path}${r.query === '' ? '' : `?${r.query}`}`, { method: r.route.method, headers, ...(r.body === undefined ? {} : { body: r.body }) });
        sent++;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const label = `${r.route.method} ${path} as ${r.auth?.slice(0, 12) ?? 'nobody'}: ${res.status} ${text.slice(0, 200)}`;
        expect(res.status, label).toBeLessThan(500);
        if (res.status >= 400) {
          const json = JSON.parse(text) as Record<string, unknown>;
          expect(typeof json.error === 'string' && typeof json.code === 'string' && json.code.startsWith('ORCH_'), label).toBe(true);
          expect(text, label).not.toMatch(/\n\s+at /);
        }
        // The status is one the document gives for the route, and the body and headers what it says for that status.
        expect(checker.check({ method: r.route.method, path: `${path}${r.query === '' ? '' : `?${r.query}`}`, status: res.status, headers: res.headers, text }), label).toEqual([]);
        // A field a client must not set, where the schema does not list it, is refused.
        const bodySchema = documented(r.route.schema).body;
        const parsed = ((): unknown => {
          try {
            return JSON.parse(r.body ?? '') as unknown;
          } catch {
            return null;
          }
        })();
        // A request the server took follows the documented request schema (where a route checks its body in code too).
        const key = `${r.route.method} ${r.route.url.replace(/:([a-z_]+)/g, '{$1}')}`;
        if (res.status < 400 && bodySchema !== undefined) expect(checker.requestBodyValid(key, parsed), `${label} took a body the document refuses: ${r.body ?? ''}`).toBe(true);
        if (bodySchema?.additionalProperties === false && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
          const smuggled = Object.keys(parsed).filter((k) => PRIVILEGED_FIELDS.includes(k) && !(k in (bodySchema.properties ?? {})));
          if (smuggled.length > 0) expect(res.status, `${label} (smuggled ${smuggled.join(', ')})`).toBeGreaterThanOrEqual(400);
        }
        // Heartbeats and samples are written behind: what a taken request changes is committed now.
        if (res.status < 400) await srv.server().orchestrator.flushHeartbeats();
        const v = db.pragma('data_version', { simple: true }) as number;
        if (v === version) return; // nothing was committed at all
        version = v;
        const after = digest(db);
        if (res.status >= 400) expect(after, `a refused request changed the store: ${label}`).toBe(before);
        before = after;
      }),
      { numRuns: REQUESTS, seed: 20261125, endOnFailure: true },
    );
    db.close();
    expect(sent).toBe(REQUESTS);
    // The fuzz reached past validation as well as into it: taken requests, refusals of every kind.
    for (const status of [200, 400, 401, 403, 404]) expect(statuses.get(status) ?? 0, `answers with status ${status}`).toBeGreaterThan(50);
  }, 600_000);

  it('every body schema is closed (additionalProperties: false), but the prototype\'s free-form asset record', () => {
    const open = srv
      .server()
      .app.routeTable.filter((r) => r.schema.body !== undefined && documented(r.schema).body?.additionalProperties !== false)
      .map((r) => `${r.method} ${r.url}`);
    expect(open).toEqual(['POST /add_asset']);
  });

  it('path and id inputs with ../, NUL, control characters and oversized values are refused', async () => {
    const hostile = ['..%2F..%2Fetc%2Fpasswd', '..%5C..%5Cwindows', 'a%00b', '%00', 'a%0Ab', 'x'.repeat(201)];
    for (const route of ['/api/v1/tasks/', '/api/v1/agents/', '/api/v1/devices/', '/api/v1/deployments/', '/status/']) {
      for (const id of hostile) {
        const res = await srv.call('GET', `${route}${id}`);
        expect({ route, id, status: res.status, code: res.body.code }).toEqual({ route, id, status: 400, code: 'ORCH_VALIDATION' });
      }
      const long = await srv.call('GET', `${route}${'y'.repeat(300)}`);
      expect({ route, status: long.status, code: long.body.code }).toEqual({ route, status: 414, code: 'ORCH_URI_TOO_LONG' });
    }
    for (const id of ['../x', 'a\u0000b', 'a/b']) {
      const res = await srv.call('POST', '/api/v1/devices', { devices: [{ id, model: 'm' }] });
      expect({ id, status: res.status }).toEqual({ id, status: 400 });
    }
  });
});

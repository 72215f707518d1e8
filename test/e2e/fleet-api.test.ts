import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { serverPerFile } from '../support/in-process.js';

const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '2' });
const base = (): string => srv.base();

const { call } = srv;

const SITES = ['berlin', 'austin', 'tokyo'];
const MODELS = ['x1', 't14', 'mac'];

/** 1,000 devices: 5% failing the seed rule, IT department on every tenth. */
function devices(from: number, n: number) {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return {
      id: `dev-${String(i).padStart(5, '0')}`,
      site: SITES[i % 3],
      model: MODELS[(i >> 2) % 3],
      osName: i % 2 === 0 ? 'windows' : 'linux',
      department: i % 10 === 0 ? 'IT' : 'Sales',
      tags: i % 50 === 0 ? ['kiosk'] : [],
      metrics: { battery: i % 20 === 0 ? 10 : 30 + (i % 70), charging: i % 3 === 0, cpu: (i * 7) % 79, memory: 20 + (i % 60), disk: (i * 13) % 90 },
    };
  });
}

interface RingJson {
  name: string;
  size: number;
  target: number;
  health: { p10: number | null; p50: number | null; p90: number | null; unhealthy: number };
  bySite: Record<string, number>;
  byModel: Record<string, number>;
}

describe('/api/v1/devices and /api/v1/rings over HTTP', () => {
  it('imports devices in bulk, scores them and fills the default rings to their shares', async () => {
    for (let from = 0; from < 1000; from += 500) {
      const res = await call('POST', '/api/v1/devices', { devices: devices(from, 500) });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({ created: 500, updated: 0 });
    }
    // A second import of known ids updates them.
    expect((await call('POST', '/api/v1/devices', { devices: devices(0, 2) })).body).toEqual({ created: 0, updated: 2 });
    const rings = await call('GET', '/api/v1/rings');
    expect(rings.status).toBe(200);
    const list = rings.body.rings as RingJson[];
    expect(list.map((r) => r.name)).toEqual(['canary', 'dev', 'stage', 'prod']);
    // 1,003 devices with a score (1,000 imported and 3 agents): each ring within one device of its target.
    const total = list.reduce((a, r) => a + r.size, 0);
    expect(total).toBe(1003);
    for (const r of list) expect(Math.abs(r.size - r.target)).toBeLessThanOrEqual(1);
    // Unhealthy devices only in canary and dev; prod has the best scores.
    expect(list.find((r) => r.name === 'prod')?.health.unhealthy).toBe(0);
    expect(list.find((r) => r.name === 'stage')?.health.unhealthy).toBe(0);
    // Stage and prod hold healthy devices only, in score order: every prod device scores at least as well as every stage one.
    const stage = list[2] as RingJson;
    const prod = list[3] as RingJson;
    expect(prod.health.p10 as number).toBeGreaterThanOrEqual(stage.health.p90 as number);
    expect(Object.values(prod.bySite).reduce((a, b) => a + b, 0)).toBe(prod.size);
    expect(Object.keys(prod.byModel).sort()).toEqual(expect.arrayContaining(['mac', 't14', 'x1']));
    // The seed's cluster_status agrees.
    const cluster = await call('GET', '/cluster_status');
    expect(cluster.body.ring_distribution).toEqual({ canary: list[0]?.size, dev: list[1]?.size, stage: list[2]?.size, prod: list[3]?.size, unassigned: 0 });
    expect(cluster.body.total_devices).toBe(1003);
  });

  it('shows one device with its score, every factor and the seed health', async () => {
    const res = await call('GET', '/api/v1/devices/dev-00020');
    expect(res.status).toBe(200);
    const health = res.body.health as { score: number; healthy: boolean; factors: { factor: string; value: number; contribution: number }[] };
    expect(health.healthy).toBe(false);
    expect(health.factors.map((f) => f.factor)).toEqual(['battery', 'charging', 'cpu', 'memory', 'disk', 'batteryDrain', 'cpuTrend', 'impact']);
    expect(health.factors.find((f) => f.factor === 'battery')).toMatchObject({ value: 10, contribution: -25 });
    expect(health.score).toBeCloseTo(100 + health.factors.reduce((a, f) => a + f.contribution, 0), 0);
    expect(res.body).toMatchObject({ id: 'dev-00020', site: 'tokyo', department: 'IT', status: 'offline', healthy: false });
    expect(['canary', 'dev']).toContain(res.body.ring);
    // Placed in its ring by the rebalance, never moved between two rings: no move to show (it was 1970).
    expect(res.body.movedAt).toBeNull();
    const missing = await call('GET', '/api/v1/devices/nope');
    expect(missing).toEqual({ status: 404, body: { error: 'device nope not found', code: 'ORCH_DEVICE_NOT_FOUND' } });
  });

  it('pages through the fleet with filters and cursors, in id or score order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await call('GET', `/api/v1/devices?site=berlin&limit=70${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      for (const d of page.body.devices as { id: string; site: string }[]) {
        expect(d.site).toBe('berlin');
        seen.push(d.id);
      }
      cursor = page.body.nextCursor as string | null;
    } while (cursor !== null);
    expect(seen).toHaveLength(334);
    expect(new Set(seen).size).toBe(334);
    // Score order, worst first, across pages.
    const scores: number[] = [];
    cursor = null;
    for (let k = 0; k < 3; k++) {
      const page = await call('GET', `/api/v1/devices?sort=score&limit=40${cursor ? `&cursor=${cursor}` : ''}`);
      scores.push(...(page.body.devices as { score: number }[]).map((d) => d.score));
      cursor = page.body.nextCursor as string;
    }
    expect(scores).toHaveLength(120);
    expect(scores).toEqual([...scores].sort((a, b) => a - b));
    const low = await call('GET', '/api/v1/devices?healthBelow=60&ring=canary&limit=1000');
    for (const d of low.body.devices as { score: number; ring: string }[]) {
      expect(d.score).toBeLessThan(60);
      expect(d.ring).toBe('canary');
    }
    for (const [query, code] of [
      ['limit=0', 'ORCH_VALIDATION'],
      ['limit=5000', 'ORCH_VALIDATION'],
      ['ring=moon', 'ORCH_UNKNOWN_RING'],
      ['sort=colour', 'ORCH_VALIDATION'],
      ['healthBelow=500', 'ORCH_VALIDATION'],
      ['cursor=garbage', 'ORCH_VALIDATION'],
      ['status=asleep', 'ORCH_VALIDATION'],
      ['extra=1', 'ORCH_VALIDATION'],
    ] as const) {
      const res = await call('GET', `/api/v1/devices?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.code, query).toBe(code);
    }
  });

  it('changes the ring configuration with validation, applies pins and holds, and records every move', async () => {
    const bad = await call('PUT', '/api/v1/rings', { rings: [{ name: 'a', share: 0.7 }, { name: 'a', share: 0.2 }], pins: [{ rule: 'department ==', ring: 'a' }] });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('ORCH_VALIDATION');
    expect(bad.body.errors).toEqual([
      'rings[1].name: "a" is used twice; ring names must be unique',
      'pins[0].rule: expected a value after "department ="',
    ]);
    expect((await call('PUT', '/api/v1/rings', '"nope"')).status).toBe(400);
    // Nothing changed.
    expect(((await call('GET', '/api/v1/rings')).body.rings as RingJson[]).map((r) => r.name)).toEqual(['canary', 'dev', 'stage', 'prod']);

    const before = Date.now();
    const ok = await call('PUT', '/api/v1/rings', {
      rings: [
        { name: 'canary', share: 0.1 },
        { name: 'early', share: 0.3 },
        { name: 'broad', share: 0.6 },
      ],
      pins: [{ rule: 'department = IT', ring: 'canary' }],
      holds: ['tag = kiosk'],
      policy: 'representative',
      dwellMs: 0,
    });
    expect(ok.status).toBe(200);
    expect(ok.body.moves as number).toBeGreaterThan(0);
    const rings = (await call('GET', '/api/v1/rings')).body;
    expect(rings.policy).toBe('representative');
    expect(rings.held).toBe(20);
    const list = rings.rings as RingJson[];
    // 80 IT devices (not held) are pinned to canary, and the policy tops canary up to its target (10% of 983).
    for (const r of list) expect(Math.abs(r.size - r.target)).toBeLessThanOrEqual(1);
    const it = await call('GET', '/api/v1/devices?department=IT&limit=1000');
    for (const d of it.body.devices as { ring: string; pinned: boolean; held: boolean }[]) {
      if (!d.held) expect(d).toMatchObject({ ring: 'canary', pinned: true });
    }
    const kiosk = await call('GET', '/api/v1/devices/dev-00050');
    expect(kiosk.body).toMatchObject({ held: true, ring: 'unassigned' });
    // Every move is listed since the change, each with its reason, paged.
    const moves: { deviceId: string; reason: string; at: string }[] = [];
    let cursor: string | null = null;
    do {
      const page = await call('GET', `/api/v1/rings/moves?since=${before}&limit=500${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      moves.push(...(page.body.moves as typeof moves));
      cursor = page.body.nextCursor as string | null;
    } while (cursor !== null);
    // Devices of the removed rings were first unassigned (a move each), then placed. (The three simulated agents
    // heartbeat meanwhile, and with no dwell time a health change may move one of them too.)
    expect(moves.length).toBeGreaterThanOrEqual(ok.body.moves as number);
    expect(moves.length).toBeLessThanOrEqual((ok.body.moves as number) + 10);
    expect(moves.some((m) => /^ring (dev|stage|prod) was removed from the configuration$/.test(m.reason))).toBe(true);
    // dev-00000 sat in canary, a ring that stays: it leaves it because it is held.
    expect(moves.find((m) => m.deviceId === 'dev-00000')?.reason).toBe('held: excluded from every ring and rollout');
    expect(moves.some((m) => /^pinned to canary by rule "department = IT"$/.test(m.reason))).toBe(true);
    expect(moves.some((m) => /^representative policy/.test(m.reason))).toBe(true);
  });

  it('a manual override moves a device now and pins it; removing the pin frees it; history keeps both', async () => {
    const early = (await call('GET', '/api/v1/devices?ring=early&department=Sales&limit=1')).body.devices as { id: string }[];
    const id = early[0]?.id as string;
    const put = await call('PUT', `/api/v1/devices/${id}/ring`, { ring: 'broad', pinned: true, reason: 'vip laptop' });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ ring: 'broad', pin: { ring: 'broad', source: 'manual' }, moved: true, pendingMove: false });
    await call('POST', '/api/v1/rings/rebalance');
    expect((await call('GET', `/api/v1/devices/${id}`)).body.ring).toBe('broad');
    const history = await call('GET', `/api/v1/devices/${id}/ring-history`);
    expect((history.body.moves as { to: string; reason: string }[]).at(-1)).toMatchObject({ to: 'broad', reason: 'pinned by an operator: vip laptop' });
    const unpin = await call('PUT', `/api/v1/devices/${id}/ring`, { ring: null, reason: 'done' });
    expect(unpin.body.pin).toBeNull();
    for (const [path, body, status, code] of [
      ['/api/v1/devices/dev-00001/ring', { ring: 'moon', reason: 'x' }, 400, 'ORCH_UNKNOWN_RING'],
      ['/api/v1/devices/dev-00001/ring', { ring: 'broad' }, 400, 'ORCH_VALIDATION'],
      ['/api/v1/devices/dev-00050/ring', { ring: 'broad', reason: 'x' }, 409, 'ORCH_DEVICE_HELD'],
      ['/api/v1/devices/ghost/ring', { ring: 'broad', reason: 'x' }, 404, 'ORCH_DEVICE_NOT_FOUND'],
      ['/api/v1/devices', { devices: [{ id: 'bad id!' }] }, 400, 'ORCH_VALIDATION'],
      ['/api/v1/devices', { devices: [{ id: 'x1', metrics: { battery: 500, charging: false, cpu: 1, memory: 1, disk: 1 } }] }, 400, 'ORCH_VALIDATION'],
      ['/api/v1/devices', { devices: [{ id: 'x1' }, { id: 'x1' }] }, 400, 'ORCH_VALIDATION'],
    ] as const) {
      const res = await call(path.endsWith('/ring') ? 'PUT' : 'POST', path, body);
      expect(res.status, path).toBe(status);
      expect(res.body.code, path).toBe(code);
    }
  });

  it('keeps devices, rings, pins and the configuration across a restart', async () => {
    const rings = (await call('GET', '/api/v1/rings')).body;
    const device = (await call('GET', '/api/v1/devices/dev-00010')).body;
    await srv.restart();
    expect((await call('GET', '/api/v1/rings')).body).toEqual(rings);
    const again = (await call('GET', '/api/v1/devices/dev-00010')).body;
    expect({ ...again, status: 'x' }).toEqual({ ...device, status: 'x' });
  });
});

describe('hostile input on the fleet routes', () => {
  it('no random body or query gets a 5xx, every error has the error shape, and the fleet stays whole', async () => {
    const before = (await call('GET', '/api/v1/rings')).body;
    const ringArb = fc.record({ name: fc.oneof(fc.constantFrom('canary', 'dev', 'prod', 'unassigned', ''), fc.string()), share: fc.oneof(fc.double(), fc.constantFrom(0.5, 1)), min: fc.jsonValue(), max: fc.jsonValue() }, { requiredKeys: [] });
    const ringsBody = fc.record(
      {
        rings: fc.oneof(fc.array(ringArb, { maxLength: 20 }), fc.jsonValue()),
        pins: fc.oneof(fc.array(fc.record({ rule: fc.oneof(fc.string(), fc.constantFrom('department = IT', 'tag in (a, b)', 'site = "x" and model != y')), ring: fc.string() }), { maxLength: 5 }), fc.jsonValue()),
        holds: fc.oneof(fc.array(fc.string(), { maxLength: 5 }), fc.jsonValue()),
        policy: fc.jsonValue(),
        hysteresis: fc.jsonValue(),
        dwellMs: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    const devicesBody = fc.record({ devices: fc.oneof(fc.array(fc.record({ id: fc.oneof(fc.string(), fc.constantFrom('dev-00001', 'new-1')), site: fc.jsonValue(), tags: fc.jsonValue(), metrics: fc.jsonValue() }, { requiredKeys: [] }), { maxLength: 5 }), fc.jsonValue()) }, { requiredKeys: [] });
    const overrideBody = fc.record({ ring: fc.oneof(fc.constantFrom('canary', 'broad', null), fc.jsonValue()), pinned: fc.jsonValue(), reason: fc.oneof(fc.string(), fc.jsonValue()) }, { requiredKeys: [] });
    const request = fc.oneof(
      fc.tuple(fc.constant('PUT'), fc.constant('/api/v1/rings'), fc.oneof(ringsBody.map((b) => JSON.stringify(b)), fc.string())),
      fc.tuple(fc.constant('POST'), fc.constant('/api/v1/devices'), fc.oneof(devicesBody.map((b) => JSON.stringify(b)), fc.string())),
      fc.tuple(fc.constant('PUT'), fc.constantFrom('/api/v1/devices/dev-00002/ring', '/api/v1/devices/nope/ring'), overrideBody.map((b) => JSON.stringify(b))),
      fc.tuple(
        fc.constant('GET'),
        fc.tuple(fc.constantFrom('ring', 'status', 'healthBelow', 'site', 'sort', 'limit', 'cursor', 'x'), fc.string()).map(([k, v]) => `/api/v1/devices?${k}=${encodeURIComponent(v)}`),
        fc.constant(undefined),
      ),
      fc.tuple(fc.constant('GET'), fc.string().map((v) => `/api/v1/rings/moves?since=${encodeURIComponent(v)}`), fc.constant(undefined)),
    );
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(request, async ([method, path, body]) => {
        requests++;
        const res = await fetch(`${base()}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) });
        expect(res.status, `${method} ${path} ${body ?? ''}`).toBeLessThan(500);
        const json = (await res.json()) as Record<string, unknown>;
        if (res.status >= 400) {
          expect(typeof json.error).toBe('string');
          expect(typeof json.code).toBe('string');
        }
      }),
      { numRuns: 300, seed: 2027 },
    );
    expect(requests).toBe(300);
    // Whatever was accepted, the fleet is whole: every device counted once, the configuration valid.
    const after = (await call('GET', '/api/v1/rings')).body;
    const rings = after.rings as RingJson[];
    expect(rings.reduce((a, r) => a + r.size, 0) + (after.unassigned as number)).toBe(after.total);
    expect(after.total as number).toBeGreaterThanOrEqual(before.total as number);
    const shares = (after.config as { rings: { share: number }[] }).rings.reduce((a, r) => a + r.share, 0);
    expect(shares).toBeCloseTo(1, 6);
  });
});

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverPerFile } from '../support/in-process.js';
import { ROOT, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

/** The dashboard as it is in web/ now, built into a folder of this run (not the one `npm run build` made). */
const webDir = tempDir();
await build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'error', build: { outDir: webDir, emptyOutDir: true } });

const ADMIN = 'dashboard-admin-token-0123456789abcdef';
// A history point a second, so that a device's chart has points within the test.
const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '5', ADMIN_TOKEN: ADMIN, METRICS_HISTORY_INTERVAL: '1s' }, { dashboardDir: webDir });
const { call } = srv;

/** Debian's chromium, with the flags of DEVELOPERS.md; no browser is downloaded. */
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Screenshots of each view, for docs/dashboard.md (not committed). */
const SHOTS = join(ROOT, 'test-results', 'screenshots');

let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_FLAGS, headless: true });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
});

/** A browser tab signed in with `token` (kept in that tab's session only), at `path`. */
async function signedIn(token: string, path = '/'): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[0-9]/.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${srv.base()}${path}`);
  await page.getByTestId('login').waitFor();
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').waitFor();
  (page as Page & { errors: string[] }).errors = errors;
  return page;
}

async function token(role: 'viewer' | 'operator' | 'admin'): Promise<string> {
  const made = await call('POST', '/api/v1/tokens', { name: `dash-${role}-${Math.random().toString(36).slice(2, 8)}`, role });
  expect(made.status).toBe(201);
  return made.body.token as string;
}

const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(SHOTS, `${name}.jpg`), type: 'jpeg', quality: 70, fullPage: true });

describe('the dashboard in a real browser', () => {
  it('is served on the API port: pages with their own headers, files compressed and kept a year, every other path the API', async () => {
    const page = await fetch(`${srv.base()}/devices/any-device`, { headers: { 'accept-encoding': 'br, gzip' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-encoding')).toBe('br');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1] as string;
    expect(script).toMatch(/^\/assets\/index-[\w-]+\.js$/);
    const js = await fetch(`${srv.base()}${script}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('content-encoding')).toBe('gzip');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await js.text()).length).toBeGreaterThan(1000);
    for (const path of ['/no/such/page', '/api/v1/nope', '/assets/nope.js', '/devices/a/b']) {
      const res = await fetch(`${srv.base()}${path}`);
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({ path, status: 404, type: 'application/json; charset=utf-8' });
      expect(((await res.json()) as { code: string }).code).toBe('ORCH_NOT_FOUND');
    }
  });

  it("asks for a token, then the overview renders the seed's start-up fleet, and every view has its own URL", async () => {
    for (const type of ['health_check', 'process_data', 'monitor']) await call('POST', '/api/v1/tasks', { type, params: type === 'process_data' ? { data: [1, 2, 3] } : {} });
    const page = await signedIn(ADMIN);
    const overview = (await call('GET', '/api/v1/overview')).body as { devices: { total: number; online: number } };
    await expect.poll(async () => page.getByTestId('stat-total').locator('.stat-value').textContent()).toBe(String(overview.devices.total));
    expect(overview.devices.total).toBe(6); // five agents and the prototype's start-up asset
    await expect.poll(async () => page.getByTestId('stat-online').locator('.stat-value').textContent()).toBe('6');
    await expect.poll(async () => page.getByTestId('rings-table').locator('tbody tr').count()).toBe(4);
    await page.getByTestId('health-chart').locator('canvas').waitFor();
    expect(await page.getByTestId('live-status').textContent()).toContain('live');
    await shot(page, 'overview');
    // Each view at its own address, reached by the menu and by loading the address itself.
    for (const [label, path, testid, screenshot] of [
      ['Devices', '/devices', 'devices-table', true],
      ['Rings', '/rings', 'ring-sizes', true],
      ['Deployments', '/deployments', 'deployments-table', false],
      ['Tasks', '/tasks', 'tasks-table', true],
      ['Agents and security', '/security', 'audit-log', true],
    ] as const) {
      await page.getByRole('link', { name: label, exact: true }).click();
      await page.getByTestId(testid).waitFor();
      expect(new URL(page.url()).pathname).toBe(path);
      if (screenshot) await shot(page, path.slice(1));
    }
    await page.goto(`${srv.base()}/devices?sort=score`);
    // A reload keeps the session's token: no second sign-in within the tab.
    await page.getByTestId('devices-table').locator('tbody tr').first().waitFor();
    expect(await page.getByTestId('devices-table').locator('tbody tr').count()).toBe(6);
    const first = page.getByTestId('devices-table').locator('tbody tr a').first();
    const id = await first.textContent();
    await first.click();
    await page.getByTestId('health-factors').waitFor();
    expect(await page.locator('h1').textContent()).toBe(id);
    // Its metrics over time: a point a second here.
    await page.getByTestId('history-chart').locator('canvas').waitFor({ timeout: 5000 });
    await page.getByTestId('ring-history').locator('tbody tr').first().waitFor();
    await shot(page, 'device');
    expect((page as Page & { errors: string[] }).errors).toEqual([]);
  });

  it('shows a deployment started through the API progressing live, and its halt with the reason, without a reload', async () => {
    const fast = (ring: string) => ({ ring, rate: { maxPerMinute: 6000 }, soakMs: 60_000, gate: { minDevices: 1, observeMs: 300 } });
    const created = await call('POST', '/api/v1/deployments', { name: 'live 1.0', payload: { type: 'health_check', params: {} }, plan: { stages: ['dev', 'stage', 'prod'].map(fast) } });
    const id = created.body.id as string;
    const page = await signedIn(ADMIN, `/deployments/${id}`);
    await expect.poll(() => page.getByTestId('deployment-status').textContent()).toBe('scheduled');
    await page.evaluate(() => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true));
    expect((await call('POST', `/api/v1/deployments/${id}/start`)).status).toBe(200);
    await expect.poll(() => page.getByTestId('deployment-status').textContent(), { timeout: 5000 }).toBe('in progress');
    // Executions appear in the ring's bar as the agents run them.
    await expect.poll(() => page.getByTestId('progress-dev').locator('.bar-part').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    await shot(page, 'deployment');
    const halted = await call('POST', `/api/v1/deployments/${id}/halt`, { reason: 'the vendor recalled this build' });
    expect(halted.status).toBe(200);
    const t0 = Date.now();
    await expect.poll(() => page.getByTestId('halt-reason').textContent(), { timeout: 3000 }).toContain('the vendor recalled this build');
    // Within a second of the halt's answer: the event, batched for 250 ms, and the page's reload.
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await page.getByTestId('deployment-status').textContent()).toBe('halted');
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await shot(page, 'deployment-halted');
    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    await expect.poll(() => page.getByTestId(`status-${id}`).textContent()).toBe('halted');
    await shot(page, 'deployments');
    await call('POST', `/api/v1/deployments/${id}/abort`);
  });

  it('pauses a deployment from the dashboard', async () => {
    const created = await call('POST', '/api/v1/deployments', { name: 'pause me', payload: { type: 'health_check', params: {} }, plan: { stages: [{ ring: 'prod', soakMs: 3_600_000 }] }, start: true });
    const id = created.body.id as string;
    const page = await signedIn(await token('operator'), `/deployments/${id}`);
    await page.getByTestId('action-pause').click();
    await waitFor(async () => ((await call('GET', `/api/v1/deployments/${id}`)).body.status === 'paused' ? true : undefined), 5000);
    await expect.poll(() => page.getByTestId('deployment-status').textContent()).toBe('paused');
    // The actions follow the status: now it can be resumed, not paused.
    await page.getByTestId('action-resume').waitFor();
    expect(await page.getByTestId('action-pause').count()).toBe(0);
    // The audit log has who did it.
    const audit = (await call('GET', '/api/v1/audit?action=POST%20%2Fapi%2Fv1%2Fdeployments%2F%3Aid%2F%3Aaction')).body.entries as { target: string; role: string }[];
    expect(audit.some((e) => e.target === `${id}/pause` && e.role === 'operator')).toBe(true);
    await call('POST', `/api/v1/deployments/${id}/abort`);
  });

  it('shows a viewer no action buttons anywhere', async () => {
    const created = await call('POST', '/api/v1/deployments', { name: 'look only', payload: { type: 'health_check', params: {} }, plan: { stages: [{ ring: 'prod', soakMs: 3_600_000 }] }, start: true });
    const id = created.body.id as string;
    const page = await signedIn(await token('viewer'), `/deployments/${id}`);
    await expect.poll(() => page.getByTestId('deployment-status').textContent()).toBe('in progress');
    expect(await page.getByTestId('deployment-actions').locator('button').count()).toBe(0);
    expect(await page.getByTestId('ask-advice').count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Agents and security' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Tasks', exact: true }).click();
    await page.getByTestId('tasks-table').waitFor();
    expect(await page.getByTestId('submit-task').count()).toBe(0);
    await page.getByRole('link', { name: 'Rings', exact: true }).click();
    await page.getByTestId('ring-sizes').waitFor();
    expect(await page.getByTestId('edit-rings').count()).toBe(0);
    expect(await page.locator('main button').filter({ hasText: /Rebalance|Save|Pin|Move/ }).count()).toBe(0);
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByTestId('devices-table').locator('tbody tr a').first().click();
    await page.getByTestId('health-factors').waitFor();
    expect(await page.getByTestId('move-form').count()).toBe(0);
    await call('POST', `/api/v1/deployments/${id}/abort`);
  });

  it('creates a deployment from the form, its gate said in words and read by the advisor into the fields', async () => {
    const page = await signedIn(await token('operator'), '/deployments');
    await page.getByRole('link', { name: 'New deployment' }).click();
    await page.getByTestId('new-deployment').waitFor();
    await page.locator('input[name="name"]').fill('from the form');
    await page.getByRole('button', { name: 'Choose stages and gates' }).click();
    // One stage per ring to start with; keep the first (canary) only.
    for (let k = 0; k < 3; k++) await page.locator('.stage').last().getByRole('button', { name: 'Remove' }).click();
    const stage = page.locator('.stage').first();
    await stage.getByPlaceholder(/halt if battery drain/).fill('halt if battery drain rises more than 5% per hour, or if more than 2% fail');
    await stage.getByRole('button', { name: 'Read' }).click();
    await expect.poll(() => stage.getByPlaceholder('0–1').first().inputValue()).toBe('0.02');
    expect(await stage.locator('input[placeholder="0–1000"]').inputValue()).toBe('5');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByTestId('deployment-status').waitFor();
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').at(-1) as string);
    const created = (await call('GET', `/api/v1/deployments/${id}`)).body as { name: string; plan: { stages: { ring: string; gate: Record<string, number> }[] } };
    expect(created.name).toBe('from the form');
    expect(created.plan.stages.map((x) => x.ring)).toEqual(['canary']);
    expect(created.plan.stages[0]?.gate).toMatchObject({ maxFailureShare: 0.02, maxBatteryDrainRegression: 5 });
    await call('POST', `/api/v1/deployments/${id}/abort`);
  });

  it('stops listening while its tab is hidden, and resumes when it shows again', async () => {
    const streams = async (): Promise<number> => Number(/^orchestrator_event_streams (\d+)$/m.exec(await (await fetch(`${srv.base()}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text())?.[1]);
    const page = await signedIn(ADMIN, '/');
    await expect.poll(() => page.getByTestId('live-status').textContent()).toContain('live');
    const open = await streams();
    expect(open).toBeGreaterThanOrEqual(1);
    const setHidden = (hidden: boolean): Promise<void> =>
      page.evaluate((h) => {
        const doc = (globalThis as unknown as { document: { dispatchEvent(e: unknown): void } }).document;
        Object.defineProperty(doc, 'hidden', { value: h, configurable: true });
        Object.defineProperty(doc, 'visibilityState', { value: h ? 'hidden' : 'visible', configurable: true });
        doc.dispatchEvent(new (globalThis as unknown as { Event: new (t: string) => unknown }).Event('visibilitychange'));
      }, hidden);
    await setHidden(true);
    await expect.poll(streams).toBe(open - 1);
    expect(await page.getByTestId('live-status').textContent()).toContain('paused');
    // What happens while it is hidden is shown once it is visible again (resumed from its last event).
    const before = (await call('GET', '/api/v1/overview')).body as { tasks: { completed: number } };
    const task = await call('POST', '/api/v1/tasks', { type: 'health_check' });
    await waitFor(async () => ((await call('GET', `/api/v1/tasks/${String(task.body.id)}`)).body.status === 'completed' ? true : undefined));
    await setHidden(false);
    await expect.poll(streams).toBe(open);
    // The events it missed are replayed on resuming: the overview reloads (throttled to a second) without waiting for its 5 s re-read.
    const shown = Date.now();
    await expect
      .poll(() => page.getByTestId('queue-stats').locator('a[href="/tasks?status=completed"] .stat-value').textContent(), { timeout: 4000 })
      .toBe(String(before.tasks.completed + 1));
    expect(Date.now() - shown).toBeLessThan(4000);
  });

  it("shows the API's error for a bad ring configuration at the field, and changes nothing", async () => {
    const before = (await call('GET', '/api/v1/rings')).body.config;
    const page = await signedIn(ADMIN, '/rings');
    await page.getByTestId('edit-rings').click();
    const share = page.locator('input[name="rings[1].share"]');
    await share.fill('5');
    await page.getByTestId('save-rings').click();
    const field = page.locator('label.field.invalid', { has: share });
    await expect.poll(() => field.locator('.field-error').textContent()).toBe('must be a number from 0 to 1');
    await shot(page, 'rings-error');
    expect((await call('GET', '/api/v1/rings')).body.config).toEqual(before);
  });
});

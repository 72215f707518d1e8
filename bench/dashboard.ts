/**
 * npm run bench:dashboard
 *
 * The dashboard at a million devices, in a real browser (Debian's chromium through playwright-core):
 *   - the overview: time from navigation to the first full render (device counts, ring table and health
 *     chart drawn), on a cold browser cache and warm (median of BENCH_DASHBOARD_LOADS, default 5);
 *     goal: within 1 s;
 *   - the devices table: time from a click on "Next" to the next page shown, in registration order and
 *     worst health first (p50/p99 of 10 pages each); goal: under 200 ms;
 *   - the API reads behind them, over HTTP on loopback: GET /api/v1/overview and GET /api/v1/devices in each
 *     order, with and without filters, first pages and deep ones (p50/p99 of 20 each);
 *   - the production bundle's size: the files of dist/web/assets, raw and gzipped (goal: under 150 KB gzipped).
 * One orchestrator in this process (startServer, as bench:rings does), serving the dashboard from dist/web
 * (`npm run build`), with BENCH_DEVICES devices (default 1,000,000) imported in bulk. Prints one JSON line.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config/config.js';
import type { DeviceImport } from '../src/fleet/fleet.js';
import { startServer } from '../src/server.js';

const N = Number(process.env.BENCH_DEVICES ?? 1_000_000);
const LOADS = Number(process.env.BENCH_DASHBOARD_LOADS ?? 5);
const CHUNK = 50_000;
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const WEB = join(ROOT, 'dist/web');
const SITES = ['berlin', 'austin', 'tokyo', 'sao-paulo', 'sydney', 'toronto', 'paris', 'mumbai'];
const MODELS = ['x1-carbon', 't14', 'p1', 'macbook-pro', 'macbook-air', 'latitude-7440', 'elitebook-840', 'surface-7'];
const DEPTS = ['IT', 'Sales', 'Finance', 'Engineering', 'HR', 'Support'];
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function device(i: number, r: () => number): DeviceImport {
  return {
    id: `dev-${i.toString(36).padStart(5, '0')}`,
    site: SITES[Math.floor(r() * SITES.length)],
    // One model in a thousand devices: a sparse filter.
    model: r() < 0.001 ? 'rare-model' : MODELS[Math.floor(r() * MODELS.length)],
    department: DEPTS[Math.floor(r() * DEPTS.length)],
    metrics: { battery: 15 + r() * 85, charging: r() < 0.4, cpu: 5 + r() * 80, memory: 20 + r() * 68, disk: r() * 95 },
  };
}

/** The little of the DOM that the functions run in the page use (this file is compiled without the DOM's types). */
interface Doc {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);

async function timeGet(url: string, times = 20): Promise<{ p50: number; p99: number; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  for (let k = 0; k < times; k++) {
    const t0 = performance.now();
    const res = await fetch(url);
    const body = await res.arrayBuffer();
    ms.push(performance.now() - t0);
    if (!res.ok) throw new Error(`${url}: ${res.status} ${Buffer.from(body).toString()}`);
    bytes = body.byteLength;
  }
  ms.sort((a, b) => a - b);
  return { p50: round(percentile(ms, 50), 2), p99: round(percentile(ms, 99), 2), bytes };
}

/** The cursor of page `pages` + 1 of a device list, to time a deep page. */
async function deepCursor(base: string, query: string, pages: number): Promise<string> {
  let cursor = '';
  for (let k = 0; k < pages; k++) {
    const page = (await (await fetch(`${base}/api/v1/devices?${query}&limit=50${cursor ? `&cursor=${cursor}` : ''}`)).json()) as { nextCursor: string | null };
    if (page.nextCursor === null) break;
    cursor = page.nextCursor;
  }
  return cursor;
}

function bundle(): { files: number; rawKB: number; gzipKB: number } {
  const dir = join(WEB, 'assets');
  const files = readdirSync(dir).filter((f) => /\.(js|css)$/.test(f));
  let raw = 0;
  let gz = 0;
  for (const f of files) {
    const body = readFileSync(join(dir, f));
    raw += statSync(join(dir, f)).size;
    gz += gzipSync(body, { level: 9 }).length;
  }
  const html = readFileSync(join(WEB, 'index.html'));
  return { files: files.length + 1, rawKB: round((raw + html.length) / 1024), gzipKB: round((gz + gzipSync(html, { level: 9 }).length) / 1024) };
}

async function main(): Promise<void> {
  if (!existsSync(join(WEB, 'index.html'))) throw new Error(`no dashboard build in ${WEB}: run npm run build`);
  process.stderr.write(`bench:dashboard with ${N.toLocaleString('en')} devices\n`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-dashboard-'));
  const config = loadConfig({ PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'warn', DEFAULT_AGENTS: '2', REBALANCE_INTERVAL: '3600s' });
  const server = await startServer(config, { print: () => undefined, logger: pino({ level: 'warn' }) });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: FLAGS, headless: true });
  try {
    const r = rng(42);
    const t0 = performance.now();
    for (let from = 0; from < N; from += CHUNK) {
      await server.orchestrator.fleet.importDevices(Array.from({ length: Math.min(CHUNK, N - from) }, (_, k) => device(from + k, r)));
    }
    process.stderr.write(`  imported in ${round((performance.now() - t0) / 1000)} s\n`);
    const base = server.url;
    const total = server.orchestrator.fleet.size;

    // The overview, cold and warm: navigation to every part drawn.
    const overviewLoads: number[] = [];
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    for (let k = 0; k < LOADS; k++) {
      const page = await context.newPage();
      await page.goto(`${base}/`, { waitUntil: 'commit' });
      await page.waitForFunction(
        (n) => {
          const doc = (globalThis as unknown as { document: Doc }).document;
          return (
            doc.querySelector('[data-testid="stat-total"] .stat-value')?.textContent === n &&
            doc.querySelectorAll('[data-testid="rings-table"] tbody tr').length === 4 &&
            doc.querySelector('[data-testid="health-chart"] canvas') !== null
          );
        },
        total.toLocaleString('en'),
        { timeout: 30_000, polling: 'raf' },
      );
      overviewLoads.push(await page.evaluate(() => performance.now()));
      await page.close();
    }
    process.stderr.write(`  overview first full render: ${overviewLoads.map((x) => round(x)).join(', ')} ms\n`);

    // The devices table: a click on Next to the next page on screen.
    const paging = async (path: string): Promise<{ p50: number; p99: number }> => {
      const page = await context.newPage();
      await page.goto(`${base}${path}`);
      await page.locator('[data-testid="devices-table"] tbody tr a').first().waitFor();
      const ms: number[] = [];
      for (let k = 0; k < 10; k++) {
        const first = await page.locator('[data-testid="devices-table"] tbody tr a').first().textContent();
        const clicked = await page.evaluate(() => performance.now());
        await page.getByRole('button', { name: 'Next →' }).click();
        await page.waitForFunction((prev) => (globalThis as unknown as { document: Doc }).document.querySelector('[data-testid="devices-table"] tbody tr a')?.textContent !== prev, first, { polling: 'raf' });
        ms.push((await page.evaluate(() => performance.now())) - clicked);
      }
      await page.close();
      ms.sort((a, b) => a - b);
      return { p50: round(percentile(ms, 50)), p99: round(percentile(ms, 99)) };
    };
    const tablePaging = { byId: await paging('/devices'), worstFirst: await paging('/devices?sort=score'), bestInProd: await paging('/devices?sort=-score&ring=prod') };
    process.stderr.write(`  table paging: ${JSON.stringify(tablePaging)}\n`);

    const api = {
      overview: await timeGet(`${base}/api/v1/overview`),
      devicesById: await timeGet(`${base}/api/v1/devices?limit=50`),
      devicesById100: await timeGet(`${base}/api/v1/devices?limit=50&cursor=${await deepCursor(base, 'sort=id', 100)}`),
      devicesWorstFirst: await timeGet(`${base}/api/v1/devices?limit=50&sort=score`),
      devicesWorstFirst100: await timeGet(`${base}/api/v1/devices?limit=50&sort=score&cursor=${await deepCursor(base, 'sort=score', 100)}`),
      devicesBestFirst: await timeGet(`${base}/api/v1/devices?limit=50&sort=-score`),
      devicesBestInProd: await timeGet(`${base}/api/v1/devices?limit=50&sort=-score&ring=prod`),
      devicesBelow50WorstFirst: await timeGet(`${base}/api/v1/devices?limit=50&sort=score&healthBelow=50`),
      devicesSiteAndDept: await timeGet(`${base}/api/v1/devices?limit=50&site=tokyo&department=HR`),
      devicesRareModel: await timeGet(`${base}/api/v1/devices?limit=50&model=rare-model`),
      devicesRareModelWorstFirst: await timeGet(`${base}/api/v1/devices?limit=50&model=rare-model&sort=score`),
      rings: await timeGet(`${base}/api/v1/rings`),
    };
    const size = bundle();
    const cold = overviewLoads[0] as number;
    const warm = median(overviewLoads.slice(1));
    const slowestPage = Math.max(...Object.values(tablePaging).map((p) => p.p99));
    const summary = {
      bench: 'dashboard',
      node: process.version,
      devices: total,
      overviewFirstRenderMs: { cold: round(cold), warm: round(warm), all: overviewLoads.map((x) => round(x)) },
      tablePageMs: tablePaging,
      apiMs: api,
      bundle: size,
      goal: { overviewMs: 1000, tablePageMs: 200, bundleGzipKB: 150 },
      met: cold <= 1000 && slowestPage < 200 && size.gzipKB < 150,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    await context.close();
  } finally {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

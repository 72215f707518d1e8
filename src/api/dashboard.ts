import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { OrchestratorError } from '../domain/errors.js';
import { DASHBOARD_PAGES } from '../security/access.js';


/**
 * Headers of the dashboard's answers, in place of the API's (which allow nothing to run): its own scripts,
 * styles and API only, never framed.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
};

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer | null;
  br: Buffer | null;
}

/** Where `npm run build` puts the dashboard: dist/web under the package's root (found from this file, in src/ or dist/). */
export function dashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'web');
}

/** The built files in memory (they are small), each with its precompressed forms when the build made them. */
function loadAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  const assets = join(dir, 'assets');
  if (!existsSync(assets)) return out;
  for (const name of readdirSync(assets)) {
    if (name.endsWith('.gz') || name.endsWith('.br')) continue;
    const ext = name.slice(name.lastIndexOf('.'));
    const file = join(assets, name);
    const maybe = (suffix: string): Buffer | null => (existsSync(file + suffix) ? readFileSync(file + suffix) : null);
    out.set(name, { type: TYPES[ext] ?? 'application/octet-stream', body: readFileSync(file), gzip: maybe('.gz'), br: maybe('.br') });
  }
  return out;
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset, cache: string): FastifyReply {
  const accept = String(request.headers['accept-encoding'] ?? '');
  void reply.header('content-type', asset.type).header('cache-control', cache).header('vary', 'accept-encoding');
  if (asset.br && /\bbr\b/.test(accept)) return reply.header('content-encoding', 'br').send(asset.br);
  if (asset.gzip && /\bgzip\b/.test(accept)) return reply.header('content-encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.body);
}

/**
 * The operator's dashboard (web/, built by Vite into dist/web) on the API's port: its pages at their own
 * paths, its files under /assets/ (named by content, so kept for a year). Every other path stays the API's:
 * an unknown route is still its JSON 404. Nothing is read from disk after the start.
 */
export function dashboardRoutes(dir = dashboardDir()): FastifyPluginAsync {
  const indexFile = join(dir, 'index.html');
  const built = existsSync(indexFile);
  const page: Asset | null = built ? { type: 'text/html; charset=utf-8', body: readFileSync(indexFile), gzip: null, br: null } : null;
  if (page && existsSync(`${indexFile}.gz`)) page.gzip = readFileSync(`${indexFile}.gz`);
  if (page && existsSync(`${indexFile}.br`)) page.br = readFileSync(`${indexFile}.br`);
  const assets = loadAssets(dir);
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    for (const url of DASHBOARD_PAGES) {
      app.get(url, { schema: { hide: true }, config: { page: true } }, (request, reply) => {
        if (!page) throw new OrchestratorError('ORCH_DASHBOARD_NOT_BUILT', `the dashboard is not built: run \`npm run build\` (looked for ${indexFile})`);
        return send(request, reply, page, 'no-cache');
      });
    }
    app.get('/assets/:file', { schema: { hide: true, params: Type.Object({ file: Type.String({ maxLength: 200 }) }) }, config: { page: true } }, (request, reply) => {
      const asset = assets.get((request.params as { file: string }).file);
      if (!asset) throw new OrchestratorError('ORCH_NOT_FOUND', `no dashboard file ${(request.params as { file: string }).file}`);
      return send(request, reply, asset, 'public, max-age=31536000, immutable');
    });
  };
}

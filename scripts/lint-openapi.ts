/**
 * `npm run lint:openapi`: lints the OpenAPI document the app serves (GET /openapi.json)
 * with Redocly's recommended rules. The document is written to a temporary file and
 * `redocly lint` runs on it offline (telemetry and the update check off). Exits non-zero
 * when Redocly reports an error; warnings are shown and pass. Extra arguments go to
 * `redocly lint` (e.g. `-- --format=summary`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { startServer } from '../src/server.js';

/** The document GET /openapi.json serves, from an orchestrator started in this process as the tests start one (no agents, silent). */
async function documentText(dataDir: string): Promise<string> {
  const config = loadConfig({ PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'silent', DEFAULT_AGENTS: '0', ENROLL_TOKEN: 'off' });
  const server = await startServer(config, { print: () => undefined, logger: pino({ level: 'silent' }) });
  try {
    const res = await server.app.inject({ method: 'GET', url: '/openapi.json' });
    if (res.statusCode !== 200) throw new Error(`GET /openapi.json answered ${res.statusCode}: ${res.body}`);
    return JSON.stringify(JSON.parse(res.body), null, 2);
  } finally {
    await server.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'orchestrator-openapi-'));
try {
  const file = join(dir, 'openapi.json');
  writeFileSync(file, await documentText(join(dir, 'data')));
  const cli = createRequire(import.meta.url).resolve('@redocly/cli/bin/cli.js');
  const run = spawnSync(process.execPath, [cli, 'lint', '--extends=recommended', ...process.argv.slice(2), file], {
    stdio: 'inherit',
    // No telemetry and no update check: the lint never reaches the network (CI runs it offline).
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
  });
  if (run.error) throw run.error;
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

import { afterAll, beforeAll } from 'vitest';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import type { RunningServer, ServerDeps } from '../../src/server.js';
import { startServer } from '../../src/server.js';
import { documentedClient } from './openapi-check.js';
import { getJson, waitFor } from './server-process.js';
import { cleanupTempDirs, tempDir } from './tmp.js';

export interface InProcessServer {
  /** The server's URL (set once it started). */
  base(): string;
  server(): RunningServer;
  /** A JSON client whose every answer must be what the OpenAPI document says (else it throws). */
  call: ReturnType<typeof documentedClient>;
  /** The data folder. */
  dataDir: string;
  /** Stops the server and starts it again on the same data folder. */
  restart(): Promise<void>;
}

/**
 * One orchestrator in this process for a whole test file, on a temporary data folder, silent, on a free
 * port: started before the file's tests, once every agent it spawned is idle, and closed after them.
 */
export function serverPerFile(env: Record<string, string>, deps: Pick<ServerDeps, 'dashboardDir'> = {}): InProcessServer {
  let server: RunningServer | null = null;
  const dataDir = tempDir();
  // With ADMIN_TOKEN the API asks for a token: the harness's own calls carry it.
  const auth: Record<string, string> = env.ADMIN_TOKEN === undefined ? {} : { authorization: `Bearer ${env.ADMIN_TOKEN}` };
  const start = async (): Promise<void> => {
    const config = loadConfig({ PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...env });
    server = await startServer(config, { print: () => undefined, logger: pino({ level: 'silent' }), ...deps });
  };
  const running = (): RunningServer => {
    if (!server) throw new Error('the server has not started');
    return server;
  };
  beforeAll(async () => {
    await start();
    // The default agents and the prototype's start-up asset (one more) are up before the tests run.
    const agents = Number(env.DEFAULT_AGENTS ?? 2);
    const expected = agents === 0 ? 0 : agents + 1;
    await waitFor(async () => ((await getJson(`${running().url}/cluster_status`, auth)).body.idle_slaves === expected ? true : undefined));
  });
  afterAll(async () => {
    await server?.close();
    cleanupTempDirs();
  });
  return {
    base: () => running().url,
    dataDir,
    server: running,
    call: documentedClient(() => running().url, auth),
    async restart() {
      await running().close();
      await start();
    },
  };
}

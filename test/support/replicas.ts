import { afterEach } from 'vitest';
import type { ServerProcess } from './server-process.js';
import { getJson, runCli, waitFor } from './server-process.js';
import { TEST_DATABASE_URL } from './postgres.js';

/** The local PostgreSQL, with `schema` as the search path (each test's store in a schema of its own). */
export function databaseUrl(schema: string, base = TEST_DATABASE_URL): string {
  // %20, not URLSearchParams' '+': the driver decodes the URL with decodeURIComponent.
  return `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/**
 * A starter of `orchestrator serve` replicas on PostgreSQL for one test file (short leases: LEADER_LEASE=2s);
 * each resolves once its replica serves (as leader or follower). Every replica still running after a test is
 * resumed (if paused) and killed.
 */
export function replicasPerTest(): (schema: string, env?: Record<string, string>) => Promise<ServerProcess> {
  const running: ServerProcess[] = [];
  afterEach(async () => {
    for (const s of running.splice(0)) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGCONT');
        s.child.kill('SIGKILL');
        await s.exited;
      }
    }
  });
  return async (schema, env = {}) => {
    const run = runCli(['serve'], { PORT: '0', DATABASE_URL: databaseUrl(schema), LEADER_LEASE: '2s', DEFAULT_AGENTS: '0', ...env });
    const url = await waitFor(async () => /(?:HTTP API running at|HTTP API at) (http:\/\/[^\s)]+)/.exec(run.out())?.[1] ?? (run.child.exitCode !== null ? Promise.reject(new Error(`exited: ${run.err()}`)) : undefined), 20_000);
    const s: ServerProcess = { child: run.child, url, stdout: run.out, stderr: run.err, exited: run.exited };
    running.push(s);
    return s;
  };
}

export interface ReplicaView {
  role: string;
  leader: string | null;
  epoch: number | null;
}

/**
 * A replica's role as its /readyz says: 'leader' only once it serves as one ('beginning' while it loads the
 * state and answers 503), 'unreachable' in the moment it changes apps (a client retries).
 */
export async function replicaRole(url: string): Promise<ReplicaView> {
  try {
    const r = await getJson(`${url}/readyz`);
    const replica = r.body.replica as ReplicaView;
    return replica.role === 'leader' && r.status !== 200 ? { ...replica, role: 'beginning' } : replica;
  } catch {
    return { role: 'unreachable', leader: null, epoch: null };
  }
}

/** Resolves once the replica at `url` serves as leader. */
export async function untilLeads(url: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => ((await replicaRole(url)).role === 'leader' ? true : undefined), timeoutMs, 25);
}

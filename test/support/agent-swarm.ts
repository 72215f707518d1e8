/**
 * Many real network agents (src/agent/agent.ts, the code `orchestrator agent` runs) in one process, for tests
 * that need a fleet of them talking HTTP to a server: a thousand agent processes would not fit a test machine.
 * Each agent has its own state folder under --state (its identity, undelivered results) and the handler folder
 * --handlers; they report the same fixed metrics, so that no agent reads the machine a thousand times.
 *
 *   node --import tsx test/support/agent-swarm.ts --servers URL[,URL] --token T --count N --handlers DIR --state DIR
 *
 * Prints one JSON line `{"enrolled":[ids]}` once every agent has enrolled. Reads lines on stdin: `ids` prints
 * `{"ids":[...]}` (each agent's identity now, in the order they started); `stop` stops every agent and exits.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { NetworkAgent } from '../../src/agent/agent.js';
import type { DeviceFacts, MetricsSource } from '../../src/agent/system-metrics.js';
import type { Reading } from '../../src/domain/metrics.js';
import { silentLogger } from '../../src/util/logger.js';

const { values } = parseArgs({
  options: {
    servers: { type: 'string' },
    token: { type: 'string' },
    count: { type: 'string', default: '10' },
    handlers: { type: 'string' },
    state: { type: 'string' },
  },
});
if (values.servers === undefined || values.token === undefined || values.handlers === undefined || values.state === undefined) {
  process.stderr.write('agent-swarm: --servers, --token, --handlers and --state are required\n');
  process.exit(2);
}

class FixedMetrics implements MetricsSource {
  read(): Promise<Reading> {
    return Promise.resolve({ battery: null, charging: null, cpu: 10, memory: 20, disk: 30 });
  }

  facts(): Promise<DeviceFacts> {
    return Promise.resolve({ model: 'swarm', manufacturer: 'test', osName: 'Linux' });
  }
}

const servers = values.servers.split(',');
const metrics = new FixedMetrics();
const agents: NetworkAgent[] = [];
const count = Number(values.count);
for (let i = 0; i < count; i++) {
  const stateDir = join(values.state, `agent-${i}`);
  mkdirSync(stateDir, { recursive: true });
  agents.push(new NetworkAgent({ servers, enrollToken: values.token, handlersDir: values.handlers, stateDir, metrics, log: silentLogger, maxBackoffMs: 2000 }));
}
// Fifty at a time: a fleet coming up, not a thousand enrollments in one instant.
for (let i = 0; i < agents.length; i += 50) await Promise.all(agents.slice(i, i + 50).map((a) => a.start()));
process.stdout.write(`${JSON.stringify({ enrolled: agents.map((a) => a.agentId) })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'ids') process.stdout.write(`${JSON.stringify({ ids: agents.map((a) => a.agentId) })}\n`);
  if (line === 'stop') {
    await Promise.all(agents.map((a) => a.stop()));
    process.exit(0);
  }
}

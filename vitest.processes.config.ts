import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The process tests: every test file that starts a real child process (orchestrator, agent, CLI) or
 * runs the agent protocol. `npm test` runs them on the Node that runs it, with the rest; `npm run
 * test:node -- 22` (scripts/test-node.sh, which CI runs for Node 22 and 24) runs only these on another
 * Node. A new test file that starts a child process belongs here: test/e2e/node-runtime.test.ts fails
 * while one is missing.
 */
export const processTests: readonly string[] = [
  'test/e2e/node-runtime.test.ts',
  'test/e2e/server-process.test.ts',
  'test/e2e/queue-durability.test.ts',
  'test/e2e/network-agents.test.ts',
  'test/e2e/agent-protocol.test.ts',
  'test/e2e/security.test.ts',
  'test/integration/rollout-sim.test.ts',
  'test/e2e/startup.test.ts',
  'test/e2e/backup.test.ts',
  'test/e2e/storage-faults.test.ts',
  'test/e2e/assignments.test.ts',
  'test/e2e/stall.test.ts',
  'test/unit/dir-lock.test.ts',
  'test/e2e/agent-handlers.test.ts',
  'test/integration/fake-model-servers.test.ts',
  'test/e2e/prometheus.test.ts',
  'test/e2e/replicas.test.ts',
  'test/e2e/lambda.test.ts',
  'test/e2e/lambda-package.test.ts',
  'test/e2e/agent-package.test.ts',
];

/**
 * Tests that start child processes but whose subject is not the Node runtime: replicas failing over with a
 * fleet at work, a partition in network namespaces, the operator's CLI against a server, the examples. The Node that runs `npm test` runs them; they are not run
 * again on every other Node (they are the longest, and would test the same thing again).
 */
export const onePlatformTests: readonly string[] = [
  'test/e2e/failover.test.ts',
  'test/e2e/partition.test.ts',
  'test/e2e/cli.test.ts',
  'test/e2e/examples.test.ts',
];

export default defineConfig({ ...base, test: { ...base.test, include: [...processTests] } });

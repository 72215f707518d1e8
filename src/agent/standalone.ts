/*
 * The entry of the standalone agent package (`aws-orchestrator-agent`, command `orchestrator-agent`):
 * scripts/build-agent-package.mjs bundles this file, the agent and its pure-JS dependencies into one file that
 * installs with plain `npm install` (no better-sqlite3, no server). It parses the command line, nothing else.
 */
import { readFileSync } from 'node:fs';
import { agentCommand } from './command.js';

/** Set by the package build (esbuild `define`) to the package's version; absent when run from the sources. */
declare const __AGENT_PACKAGE_VERSION__: string | undefined;

function packageVersion(): string {
  if (typeof __AGENT_PACKAGE_VERSION__ === 'string') return __AGENT_PACKAGE_VERSION__;
  // From src/agent/ (tsx) or dist/agent/ (tsc): the repository's package.json.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

const program = agentCommand('orchestrator-agent')
  .version(packageVersion(), '-V, --version', 'print the version of the agent')
  // Usage errors (a missing or unknown option) exit 2, as every refusal of a bad setting does; help and version 0.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`orchestrator-agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

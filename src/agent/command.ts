import { Command, Option } from 'commander';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { describeFsError, DirLockedError, lockDir } from '../util/dir-lock.js';
import { NetworkAgent } from './agent.js';
import { SystemMetrics } from './system-metrics.js';

interface AgentOptions {
  server: string;
  enrollToken: string;
  handlers: string;
  stateDir: string;
  logLevel: string;
}

/**
 * The agent's command line: `orchestrator agent` in the full install, and the whole program of the standalone
 * agent package (`orchestrator-agent`), which has neither the server nor better-sqlite3. `name` is the
 * command's name as its user types it.
 */
export function agentCommand(name: string): Command {
  return new Command(name)
    .description('run an agent on this machine: enroll with an orchestrator, report real metrics, run tasks')
    .requiredOption('--server <urls>', 'the orchestrator, e.g. http://10.0.0.5:8000; replicas as URL,URL (the agent moves to the next when one fails)')
    // From the environment too: a command line is readable by every user of the machine (ps), the environment is not.
    .addOption(new Option('--enroll-token <token>', 'the enrollment token the orchestrator printed at start, or a stored one').env('ORCH_ENROLL_TOKEN').makeOptionMandatory())
    .option('--handlers <dir>', 'folder of task handler executables (one file per task type)', './handlers')
    .option('--state-dir <dir>', 'folder for the agent identity and undelivered results', './agent-state')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .action(runAgent);
}

async function runAgent(opts: AgentOptions): Promise<void> {
  const servers: string[] = [];
  for (const part of opts.server.split(',')) {
    try {
      const u = new URL(part.trim());
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
      servers.push(u.origin);
    } catch {
      process.stderr.write(`--server: must be an http(s) URL, or several separated by commas (got "${part}")\n`);
      process.exit(2);
    }
  }
  const server = servers.join(',');
  // One agent per state dir, taken before anything else: two would share one identity and both run every task.
  if (opts.stateDir.trim() === '') {
    process.stderr.write('--state-dir: must not be empty\n');
    process.exit(2);
  }
  const stateDir = resolve(opts.stateDir);
  try {
    // Private to the agent's user when the agent makes it (its credential is kept there); an existing one keeps its mode.
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    lockDir(stateDir, 'agent.lock', 'orchestrator agent');
  } catch (err) {
    process.stderr.write(
      err instanceof DirLockedError
        ? `--state-dir: ${stateDir} is in use by another agent (pid ${err.holder.pid}${err.checked ? '' : ` on ${err.holder.host}`}, since ${err.holder.since}): stop it first, or give this one another --state-dir${err.checked ? '' : `; if it no longer runs, delete ${err.file}`}\n`
        : `--state-dir: cannot write in ${stateDir} (${describeFsError(err)}): give this user write access to it, or choose another --state-dir\n`,
    );
    process.exit(2);
  }
  const log = pino({ level: opts.logLevel, base: { service: 'agent' } }, pino.destination(2));
  const agent = new NetworkAgent({ servers, enrollToken: opts.enrollToken, handlersDir: opts.handlers, stateDir, metrics: new SystemMetrics(), log });
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping');
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  try {
    await agent.start();
    // Stopped (SIGTERM, SIGINT) before any orchestrator answered: not enrolled, and the stop handler exits.
    if (agent.agentId === null) return;
    process.stdout.write(`Agent ${agent.agentId} enrolled with ${server}; task types: ${agent.capabilities().join(', ')}\n`);
  } catch (err) {
    process.stderr.write(`enrollment refused: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(3);
  }
}

#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import type { ConfigFlags } from '../config/config.js';
import { loadConfig, SETTINGS } from '../config/config.js';
import { agentCommand } from '../agent/command.js';
import { EXIT } from './client/errors.js';
import { exit, report } from './client/options.js';
import { registerAdvise } from './commands/advise.js';
import { registerDeploy } from './commands/deploy.js';
import { registerFleet } from './commands/fleet.js';
import { registerStatus } from './commands/status.js';
import { registerTasks } from './commands/tasks.js';
import { registerTokens } from './commands/tokens.js';
import { failStart } from './fail.js';
import { registerLocal } from './local.js';

/*
 * The `orchestrator` command (docs/cli.md). The server, the simulator and the store are loaded only by the
 * commands that need them, so that a client command (`status`, `deploy watch`, …) starts in a fraction of a
 * second and never loads the native SQLite module.
 */

// A reader that stops reading (`orchestrator devices --all | head`) is not an error: stop quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

async function serve(flags: ConfigFlags): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, flags);
  } catch (err) {
    failStart(err);
  }
  const { pino } = await import('pino');
  const { startServer } = await import('../server.js');
  const logger = pino({ level: config.logLevel, base: { service: 'orchestrator' } }, pino.destination(2));
  let server;
  try {
    server = await startServer(config, { logger });
  } catch (err) {
    failStart(err, logger);
  }
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`${signal} received, shutting down...\n`);
    server.close().then(
      () => {
        process.stdout.write('Orchestrator stopped.\n');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/** The version of this install (package.json, two folders up from src/cli or dist/cli). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const program = new Command()
  .name('orchestrator')
  .description('AWS Orchestrator: a fleet orchestrator with health-driven deployment rings (docs/cli.md)')
  .version(version(), '-V, --version', 'print the version')
  .showHelpAfterError('(add --help for usage)')
  // Usage errors exit 2 (commander's own default is 1); --help and --version exit 0.
  .exitOverride();

const serveCommand = program.command('serve').description('run the orchestrator and its HTTP API');
for (const s of SETTINGS) {
  serveCommand.addOption(new Option(`${s.flag} <value>`, `${s.description} (env ${s.env}, default ${s.default})`));
}
serveCommand.action(async (opts: Record<string, string | undefined>) => {
  const flags: ConfigFlags = {};
  for (const s of SETTINGS) {
    const camel = s.flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    const v = opts[camel];
    if (v !== undefined) flags[s.key] = v;
  }
  await serve(flags);
});

registerStatus(program);
registerFleet(program);
registerTasks(program);
registerDeploy(program);
registerAdvise(program);
registerTokens(program);

program
  .command('simulate')
  .description('run a staged rollout against simulated devices on a virtual clock and report its outcome')
  .requiredOption('--scenario <file>', 'scenario JSON (see scenarios/)')
  .option('--devices <n>', 'devices in the simulated fleet', '10000')
  .option('--json', 'print the report as one JSON line')
  .action(async (opts: { scenario: string; devices: string; json?: boolean }) => {
    const devices = Number(opts.devices);
    if (!Number.isInteger(devices) || devices < 1 || devices > 1_000_000) {
      process.stderr.write('--devices: must be an integer from 1 to 1000000\n');
      process.exit(2);
    }
    const { parseScenario, simulate } = await import('../sim/rollout-sim.js');
    let scenario;
    try {
      scenario = parseScenario(JSON.parse(readFileSync(opts.scenario, 'utf8')));
    } catch (err) {
      process.stderr.write(`--scenario: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    }
    const tty = process.stderr.isTTY;
    const result = await simulate(scenario, {
      devices,
      onProgress: (p) => {
        const width = 30;
        const filled = Math.round((p.done / p.total) * width);
        const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round((p.done / p.total) * 100)}% updated · ring ${p.ring} (${p.stage + 1}/${p.stages}) · virtual ${formatDuration(p.virtualMs)}`;
        process.stderr.write(tty ? `\r${line}` : `${line}\n`);
      },
    });
    if (tty) process.stderr.write('\n');
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const lines = [
      `scenario: ${result.scenario} (${result.bad ? 'a bad release' : 'a good release'}), ${result.devices} devices`,
      `outcome: ${result.outcome}${result.haltReason ? ` — ${result.haltReason}` : ''}`,
      `time (virtual): ${formatDuration(result.virtualMs)}`,
      `updated per ring: ${Object.entries(result.updatedPerRing).map(([r, n]) => `${r} ${n}`).join(', ')}`,
      `${result.bad ? 'blast radius' : 'devices reached'}: ${result.exposed} devices (${(result.exposedShare * 100).toFixed(2)}% of the fleet)`,
      `false halt: ${result.falseHalt ? 'yes' : 'no'}`,
      `simulated in ${(result.wallMs / 1000).toFixed(1)} s`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  });

// Its usage errors exit 2 as well (the standalone agent's do).
program.addCommand(agentCommand('agent').exitOverride());

registerLocal(program);

function formatDuration(ms: number): string {
  const m = Math.floor(ms / 60_000);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

program.parseAsync(process.argv).catch(async (err: unknown) => {
  if (err instanceof CommanderError) {
    // Commander has written its message (or the help, or the version) already.
    // --help and --version exit 0; a usage error (or a group named without its command) exits 2.
    const done = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0;
    await exit(done ? EXIT.ok : EXIT.usage);
  }
  await exit(report(err));
});

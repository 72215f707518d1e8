#!/usr/bin/env node
import { Command, Option } from 'commander';
import type { ConfigFlags } from '../config/config.js';
import { ConfigError, loadConfig, SETTINGS } from '../config/config.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { agentCommand } from '../agent/command.js';
import { databasePath, startServer } from '../server.js';
import { ROLES } from '../domain/security.js';
import type { Role } from '../domain/security.js';
import { createApiToken } from '../security/guard.js';
import { BackupTargetError, backupDatabase } from '../store/sqlite/backup.js';
import { openStore as openAdapter, storeTarget } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { StoreOpenError } from '../store/store.js';
import { parseScenario, simulate } from '../sim/rollout-sim.js';

/**
 * Ends a failed start with one line on stderr. What the operator can fix (a setting, the database
 * file) exits 2 and says what to do; anything else is a bug: exit 1, with its stack in the log.
 */
function failStart(err: unknown, log?: PinoLogger, what = 'Start-up'): never {
  const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ');
  if (err instanceof ConfigError) {
    process.stderr.write(`Configuration error: ${oneLine(err.message)}\n`);
    process.exit(2);
  }
  if (err instanceof StoreOpenError) {
    process.stderr.write(`Database error: ${oneLine(err.message)}\n`);
    process.exit(2);
  }
  log?.fatal({ err }, `${what.toLowerCase()} failed`);
  log?.flush();
  process.stderr.write(`${what} failed: ${oneLine(err instanceof Error ? err.message : String(err))}${log ? ' (the stack is in the log)' : ''}\n`);
  process.exit(1);
}

async function serve(flags: ConfigFlags): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, flags);
  } catch (err) {
    failStart(err);
  }
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

const program = new Command()
  .name('orchestrator')
  .description('AWS Orchestrator: a fleet orchestrator with health-driven deployment rings');

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

program.addCommand(agentCommand('agent'));

/** The orchestrator's store (DATABASE_URL, or the SQLite file of DATA_DIR or --data-dir), for the token commands. */
async function openStore(dataDir: string | undefined): Promise<Store> {
  let config;
  try {
    config = loadConfig(process.env, dataDir === undefined ? {} : { dataDir });
  } catch (err) {
    failStart(err);
  }
  // No lock: these commands write to the database of a running orchestrator on purpose (SQLite serializes the writes).
  try {
    return await openAdapter(storeTarget(config));
  } catch (err) {
    failStart(err);
  }
}

const tokenCommand = program
  .command('token')
  .description("operators' API tokens, written straight to the orchestrator's database (it may be running); see docs/security.md");

tokenCommand
  .command('create')
  .description('create an API token and print it (it is shown this once: only its hash is kept)')
  .requiredOption('--role <role>', ROLES.join(', '))
  .requiredOption('--name <name>', 'who or what holds it, e.g. ci or alice')
  .option('--data-dir <dir>', 'the orchestrator\'s data dir (env DATA_DIR, default ./data)')
  .action(async (opts: { role: string; name: string; dataDir?: string }) => {
    if (!(ROLES as readonly string[]).includes(opts.role)) {
      process.stderr.write(`--role: must be one of ${ROLES.join(', ')} (got "${opts.role}")\n`);
      process.exit(2);
    }
    if (!/^[A-Za-z0-9 ._@:/-]{1,100}$/.test(opts.name)) {
      process.stderr.write('--name: 1 to 100 characters of letters, digits, space and ._@:/-\n');
      process.exit(2);
    }
    const store = await openStore(opts.dataDir);
    const { token, text } = await createApiToken(store, { name: opts.name, role: opts.role as Role, createdBy: 'cli', now: Date.now() });
    await store.close();
    process.stdout.write(`${text}\n`);
    process.stderr.write(`Created ${opts.role} token ${token.id} for ${opts.name}. It is shown only now; send it as "Authorization: Bearer <token>".\n`);
  });

tokenCommand
  .command('list')
  .description('list API tokens (never their secrets)')
  .option('--data-dir <dir>', 'the orchestrator\'s data dir (env DATA_DIR, default ./data)')
  .action(async (opts: { dataDir?: string }) => {
    const store = await openStore(opts.dataDir);
    const tokens = await store.listApiTokens();
    await store.close();
    for (const t of tokens) {
      process.stdout.write(`${t.id}  ${t.role.padEnd(8)}  ${t.name}  created ${new Date(t.createdAt).toISOString()} by ${t.createdBy}${t.revokedAt === null ? '' : `  revoked ${new Date(t.revokedAt).toISOString()}`}\n`);
    }
  });

tokenCommand
  .command('revoke <id>')
  .description('revoke an API token at once (a running orchestrator refuses it from its next request)')
  .option('--data-dir <dir>', 'the orchestrator\'s data dir (env DATA_DIR, default ./data)')
  .action(async (id: string, opts: { dataDir?: string }) => {
    const store = await openStore(opts.dataDir);
    const revoked = await store.revokeApiToken(id, Date.now());
    const known = revoked || (await store.getApiToken(id)) !== null;
    await store.close();
    if (!known) {
      process.stderr.write(`no API token ${id}\n`);
      process.exit(1);
    }
    process.stdout.write(revoked ? `revoked ${id}\n` : `${id} was already revoked\n`);
  });

program
  .command('backup')
  .description("copy the orchestrator's database to a new file, consistently, whether it runs or not (SQLite's online backup); see docs/operations.md")
  .requiredOption('--to <file>', 'the copy to write; must not exist')
  .option('--data-dir <dir>', 'the orchestrator\'s data dir (env DATA_DIR, default ./data)')
  .action(async (opts: { to: string; dataDir?: string }) => {
    let config;
    try {
      config = loadConfig(process.env, opts.dataDir === undefined ? {} : { dataDir: opts.dataDir });
    } catch (err) {
      failStart(err);
    }
    if (opts.to.trim() === '') {
      process.stderr.write('--to: must not be empty\n');
      process.exit(2);
    }
    if (config.databaseUrl !== '') {
      process.stderr.write('DATABASE_URL is set: the state is in PostgreSQL, which this SQLite copy cannot read; back it up with pg_dump or base backups (docs/operations.md)\n');
      process.exit(2);
    }
    const source = databasePath(config);
    const target = resolve(opts.to);
    let result;
    try {
      // No lock: a backup reads beside a running orchestrator, which is what the online backup is for.
      result = await backupDatabase(source, target);
    } catch (err) {
      if (err instanceof BackupTargetError) {
        process.stderr.write(`--to: ${err.message}\n`);
        process.exit(2);
      }
      failStart(err, undefined, 'Backup');
    }
    process.stdout.write(`Backed up ${source} to ${target}: ${result.bytes} bytes, schema version ${result.schemaVersion}, quick_check ok\n`);
  });

function formatDuration(ms: number): string {
  const m = Math.floor(ms / 60_000);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

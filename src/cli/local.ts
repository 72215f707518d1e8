import type { Command } from 'commander';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { loadConfig } from '../config/config.js';
import type { AuditEntry, Role } from '../domain/security.js';
import type { Store } from '../store/store.js';
import type { StoreTarget } from '../store/open-store.js';
import { redactUrl } from '../util/redact-url.js';
import { CliError, EXIT, usage } from './client/errors.js';
import { choice, cliActor, exit } from './client/options.js';
import { apiTokenTable, Output } from './client/output.js';
import { failStart } from './fail.js';

/*
 * The local commands: they open the orchestrator's database themselves (the SQLite file of DATA_DIR, or
 * DATABASE_URL), also while it runs, and never create one by mistake: a command run in the wrong folder says
 * where it looked and how to point it, instead of making a token in a new database that no orchestrator reads.
 * What they change is in the audit log, as the API's actions are, with the actor `cli:<os user>`.
 * The store and its native module are loaded only when one of them runs.
 */

const ROLES = ['viewer', 'operator', 'admin'] as const;

/**
 * A local command's action: its refusals are one line on stderr as they have always been (`--to: …`,
 * `Database error: …`, without the client commands' `error: ` prefix), with their exit code.
 */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: number = EXIT.ok;
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      code = err instanceof CliError ? err.exitCode : EXIT.failed;
    }
    await exit(code);
  };
}
const DATA_DIR_HELP = "the orchestrator's data dir (env DATA_DIR, default ./data; DATABASE_URL for PostgreSQL)";

/** Where the state is, in words, and where that setting came from. */
function describeTarget(target: StoreTarget, config: Config, dataDirFlag: string | undefined): string {
  if (target.adapter === 'postgres') return `in the PostgreSQL database at ${redactUrl(config.databaseUrl)} (DATABASE_URL)`;
  const given = dataDirFlag ?? process.env.DATA_DIR;
  const from = dataDirFlag !== undefined ? `--data-dir ${dataDirFlag}` : given !== undefined ? `DATA_DIR=${given}` : 'the default data dir ./data';
  const relative = given === undefined || !isAbsolute(given) ? `, in ${process.cwd()}` : '';
  return `at ${resolve(config.dataDir, 'orchestrator.db')} (${from}${relative})`;
}

/**
 * Opens the orchestrator's existing store, or refuses (exit 2) saying where it looked and how to point the
 * command elsewhere. `init`: create it when missing (a token made before the orchestrator's first start).
 */
async function openExisting(dataDirFlag: string | undefined, options: { init?: boolean } = {}): Promise<{ store: Store; created: boolean; where: string; what: string }> {
  let config: Config;
  try {
    config = loadConfig(process.env, dataDirFlag === undefined ? {} : { dataDir: dataDirFlag });
  } catch (err) {
    failStart(err);
  }
  const { openStore, storeExists, storeTarget } = await import('../store/open-store.js');
  const target = storeTarget(config);
  const where = describeTarget(target, config, dataDirFlag);
  const what = target.adapter === 'postgres' ? "orchestrator's schema" : 'database';
  let exists: boolean;
  try {
    exists = await storeExists(target);
  } catch (err) {
    failStart(err);
  }
  if (!exists && options.init !== true) {
    process.stderr.write(
      `Database error: no ${what === 'database' ? 'orchestrator database' : "orchestrator's schema"} ${where}. Point this command at the orchestrator's data: --data-dir DIR or DATA_DIR for its SQLite folder, DATABASE_URL for PostgreSQL` +
        `${options.init === false ? '; or add --init to make a new database, for an orchestrator that has not started yet' : ''}\n`,
    );
    process.exit(EXIT.usage);
  }
  // No lock: these commands write to the database of a running orchestrator on purpose (SQLite serializes the writes).
  try {
    return { store: await openStore(target), created: !exists, where, what };
  } catch (err) {
    failStart(err);
  }
}

/** Records a local command's action in the audit log, as the API records its own. */
async function audit(store: Store, entry: { action: string; target: string | null; status: number }): Promise<void> {
  const outcome: AuditEntry['outcome'] = entry.status < 400 ? 'ok' : entry.status < 500 ? 'refused' : 'failed';
  await store.appendAudit({ at: Date.now(), actor: cliActor(), actorTokenId: null, role: 'admin', action: entry.action, target: entry.target, outcome, status: entry.status, address: hostname() });
}

/** `token create|list|revoke` and `backup`. */
export function registerLocal(program: Command): void {
  const token = program
    .command('token')
    .description("operators' API tokens, written straight to the orchestrator's database (it may be running): for the first admin token; `tokens` does the same through the API. See docs/security.md");

  token
    .command('create')
    .description('create an API token and print it (it is shown this once: only its hash is kept)')
    .requiredOption('--role <role>', ROLES.join(', '))
    .requiredOption('--name <name>', 'who or what holds it, e.g. ci or alice')
    .option('--data-dir <dir>', DATA_DIR_HELP)
    .option('--init', "create the database if there is none yet (a token made before the orchestrator's first start, e.g. for HOST=0.0.0.0)")
    .option('--json', 'print the token as JSON')
    .action(
      action(async (opts: { role: string; name: string; dataDir?: string; init?: boolean; json?: boolean }) => {
        const role = choice('--role', opts.role, ROLES) as Role;
        if (!/^[A-Za-z0-9 ._@:/-]{1,100}$/.test(opts.name)) throw usage('--name: 1 to 100 characters of letters, digits, space and ._@:/-');
        const { store, created, where, what } = await openExisting(opts.dataDir, { init: opts.init === true });
        const { createApiToken } = await import('../security/guard.js');
        try {
          if (created) process.stderr.write(`Created a new ${what} ${where}.\n`);
          const { token: made, text } = await createApiToken(store, { name: opts.name, role, createdBy: cliActor(), now: Date.now() });
          await audit(store, { action: 'CLI token create', target: made.id, status: 201 });
          const out = new Output(opts.json === true);
          if (out.json) out.jsonLine({ ...jsonToken(made), token: text });
          else {
            out.line(text);
            out.note(`Created ${role} token ${made.id} for ${opts.name}. It is shown only now; send it as "Authorization: Bearer <token>" (ORCH_TOKEN for the client commands).`);
          }
        } finally {
          await store.close();
        }
      }),
    );

  token
    .command('list')
    .description('list API tokens (never their secrets)')
    .option('--data-dir <dir>', DATA_DIR_HELP)
    .option('--json', 'print them as JSON')
    .action(
      action(async (opts: { dataDir?: string; json?: boolean }) => {
        const { store } = await openExisting(opts.dataDir);
        let tokens;
        try {
          tokens = await store.listApiTokens();
        } finally {
          await store.close();
        }
        const out = new Output(opts.json === true);
        if (out.json) {
          out.jsonLine({ tokens: tokens.map(jsonToken) });
          return;
        }
        if (tokens.length === 0) {
          out.note('no API tokens');
          return;
        }
        const now = Date.now();
        out.lines(apiTokenTable(tokens, now));
      }),
    );

  token
    .command('revoke <id>')
    .description('revoke an API token at once (a running orchestrator refuses it from its next request)')
    .option('--data-dir <dir>', DATA_DIR_HELP)
    .action(
      action(async (id: string, opts: { dataDir?: string }) => {
        const { store } = await openExisting(opts.dataDir);
        try {
          const revoked = await store.revokeApiToken(id, Date.now());
          const known = revoked || (await store.getApiToken(id)) !== null;
          await audit(store, { action: 'CLI token revoke', target: id.slice(0, 300), status: known ? 200 : 404 });
          if (!known) throw new CliError(`no API token ${id}`, EXIT.notFound);
          process.stdout.write(revoked ? `revoked ${id}\n` : `${id} was already revoked\n`);
        } finally {
          await store.close();
        }
      }),
    );

  program
    .command('backup')
    .description("copy the orchestrator's database to a new file, consistently, whether it runs or not (SQLite's online backup); see docs/operations.md")
    .requiredOption('--to <file>', 'the copy to write; must not exist')
    .option('--data-dir <dir>', "the orchestrator's data dir (env DATA_DIR, default ./data)")
    .action(
      action(async (opts: { to: string; dataDir?: string }) => {
        let config: Config;
        try {
          config = loadConfig(process.env, opts.dataDir === undefined ? {} : { dataDir: opts.dataDir });
        } catch (err) {
          failStart(err);
        }
        if (opts.to.trim() === '') throw usage('--to: must not be empty');
        if (config.databaseUrl !== '') {
          throw usage('DATABASE_URL is set: the state is in PostgreSQL, which this SQLite copy cannot read; back it up with pg_dump or base backups (docs/operations.md)');
        }
        // Refuses, as the token commands do, when there is no database where it looks.
        const { store } = await openExisting(opts.dataDir);
        const { sqliteFile } = await import('../store/open-store.js');
        const { BackupTargetError, backupDatabase } = await import('../store/sqlite/backup.js');
        const source = sqliteFile(config.dataDir);
        const target = resolve(opts.to);
        try {
          let result;
          try {
            // No lock: a backup reads beside a running orchestrator, which is what the online backup is for.
            result = await backupDatabase(source, target);
          } catch (err) {
            if (err instanceof BackupTargetError) throw usage(`--to: ${err.message}`);
            await audit(store, { action: 'CLI backup', target, status: 500 }).catch(() => undefined);
            failStart(err, undefined, 'Backup');
          }
          await audit(store, { action: 'CLI backup', target, status: 201 });
          process.stdout.write(`Backed up ${source} to ${target}: ${result.bytes} bytes, schema version ${result.schemaVersion}, quick_check ok\n`);
        } finally {
          await store.close();
        }
      }),
    );
}

function jsonToken(t: { id: string; name: string; role: string; createdAt: number; createdBy: string; revokedAt: number | null }) {
  return { id: t.id, name: t.name, role: t.role, createdAt: new Date(t.createdAt).toISOString(), createdBy: t.createdBy, revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString() };
}

#!/usr/bin/env node
import { Command, Option } from 'commander';
import type { ConfigFlags } from '../config/config.js';
import { ConfigError, loadConfig, SETTINGS } from '../config/config.js';
import { startServer } from '../server.js';

async function serve(flags: ConfigFlags): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const server = await startServer(config);
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

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

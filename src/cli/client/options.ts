import type { Command } from 'commander';
import { userInfo } from 'node:os';
import { CliError, EXIT, usage } from './errors.js';
import { Api, DEFAULT_SERVER, parseServers } from './http.js';
import { Output } from './output.js';

/** The options every client command takes (read with optsWithGlobals, so that a group's and its commands' merge). */
export interface ClientFlags {
  server?: string;
  token?: string;
  json?: boolean;
}

/** Adds `--server`, `--token` and `--json` to a command that talks to a running orchestrator. */
export function clientOptions(cmd: Command): Command {
  return cmd
    .option('--server <urls>', `the orchestrator (env ORCH_SERVER, default ${DEFAULT_SERVER}); replicas as URL,URL: the next is tried when one cannot be reached or does not lead`)
    .option('--token <token>', 'an API token (env ORCH_TOKEN; the environment keeps it out of the process list)')
    .option('--json', 'print JSON for scripts (one document; watch commands print one JSON object per line)');
}

/** What a client command's action works with: the API, and where and how to print. */
export interface Client {
  api: Api;
  out: Output;
}

export function clientOf(cmd: Command): Client {
  const flags = cmd.optsWithGlobals<ClientFlags>();
  const servers = parseServers(flags.server ?? process.env.ORCH_SERVER ?? DEFAULT_SERVER);
  const raw = flags.token ?? process.env.ORCH_TOKEN ?? '';
  const token = raw.trim();
  if (flags.token !== undefined && token === '') throw usage('--token: must not be empty');
  if (/\s/.test(token)) throw usage('--token: a token has no spaces (ORCH_TOKEN or --token)');
  return { api: new Api({ servers, token: token === '' ? null : token }), out: new Output(flags.json === true) };
}

/**
 * Runs a command's action: its errors become one line on stderr (and their details, one per line) and its
 * exit code; anything unexpected is exit 1 with its message, never a stack. Output is flushed before exiting.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: number;
    try {
      code = (await fn(...args)) ?? EXIT.ok;
    } catch (err) {
      code = report(err);
    }
    await exit(code);
  };
}

/** Writes an error as the command line reports it and returns its exit code. */
export function report(err: unknown): number {
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n${err.details.map((d) => `  ${d}\n`).join('')}`);
    return err.exitCode;
  }
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.failed;
}

/** Exits once stdout and stderr have taken everything written to them. */
export async function exit(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
  process.exit(code);
}

/** An integer option in a range, or a usage error naming it. */
export function intOption(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) throw usage(`${name}: must be an integer from ${min} to ${max} (got "${raw}")`);
  return Number(raw);
}

/** A duration option: a plain number of seconds, or with `ms`, `s`, `m`, `h` or `d`; in ms. */
export function durationOption(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) throw usage(`${name}: must be a duration such as 30, 30s, 500ms, 5m, 2h or 7d (got "${raw}")`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * unit);
}

/** One of a closed set of values, or a usage error naming the option. */
export function choice<T extends string>(name: string, raw: string | undefined, values: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!(values as readonly string[]).includes(raw)) throw usage(`${name}: must be one of ${values.join(', ')} (got "${raw}")`);
  return raw as T;
}

/** Who runs this command, as the audit log names a local command's actor: `cli:<os user>`. */
export function cliActor(): string {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = process.env.USER ?? process.env.USERNAME ?? `uid ${process.getuid?.() ?? '?'}`;
  }
  return `cli:${name}`.slice(0, 100);
}

export { CliError, EXIT, usage };

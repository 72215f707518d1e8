import type { Logger as PinoLogger } from 'pino';
import { ConfigError } from '../config/config.js';
import { StoreOpenError } from '../store/store.js';

/**
 * Ends a failed start with one line on stderr. What the operator can fix (a setting, the database
 * file) exits 2 and says what to do; anything else is a bug: exit 1, with its stack in the log.
 */
export function failStart(err: unknown, log?: PinoLogger, what = 'Start-up'): never {
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

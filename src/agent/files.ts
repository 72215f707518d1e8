import { renameSync, writeFileSync } from 'node:fs';

/**
 * Writes a file whole or not at all: a crash leaves the old content or the new, never half of it. Readable by
 * the agent's user only: the state dir holds the agent's credential and its tasks' results.
 */
export function writeAtomically(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

import { renameSync, writeFileSync } from 'node:fs';

/** Writes a file whole or not at all: a crash leaves the old content or the new, never half of it. */
export function writeAtomically(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

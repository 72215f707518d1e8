import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

/**
 * A small tmpfs of its own (root only: the tests run as root here and in CI), so that a test can fill the
 * disk under a real process and free it again. `unmount()` removes it.
 */
export function mountTmpfs(sizeMiB: number): { dir: string; fill: () => number; free: () => void; unmount: () => void } {
  const dir = tempDir('orch-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a tmpfs and must run as root (mount -t tmpfs failed: ${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  const filler = join(dir, 'filler');
  return {
    dir,
    /** Writes zeros until the file system is full; returns the bytes written. */
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(64 * 1024);
      let written = 0;
      try {
        for (;;) {
          try {
            written += writeSync(fd, chunk);
          } catch (err) {
            if ((err as { code?: string }).code === 'ENOSPC') {
              // The last pages: smaller writes until not one byte fits.
              for (let size = 32 * 1024; size >= 1; size >>= 1) {
                try {
                  for (;;) written += writeSync(fd, chunk.subarray(0, size));
                } catch {
                  // full at this size
                }
              }
              return written;
            }
            throw err;
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    },
  };
}

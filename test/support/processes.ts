import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** Whether a process runs. A killed orphan can stay a zombie where PID 1 does not reap (containers): it runs no more. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The pids whose parent is `pid` (Linux: /proc; elsewhere none). */
export function childrenOf(pid: number): number[] {
  if (!existsSync('/proc/self/stat')) return [];
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** SIGKILLs each pid, whatever is left of it. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

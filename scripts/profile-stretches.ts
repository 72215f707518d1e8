/**
 * npx tsx scripts/profile-stretches.ts PROFILE.cpuprofile [fromSeconds] [toSeconds]
 *
 * Where an event loop was busy without a break, from a V8 CPU profile (`node --cpu-prof`; for the
 * orchestrator of `bench:agents`, BENCH_PROF=DIR). A latency tail comes from long stretches of work
 * (garbage collection, a long synchronous task), not from averages: this lists how busy the loop was in the
 * window, the time spent collecting garbage, how many stretches of uninterrupted work were longer than 5, 10,
 * 20, 50, 100 and 200 ms and how long they lasted in all, and for the longest ones what ran in them.
 * Seconds count from the start of the profile.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface Stretch {
  startUs: number;
  endUs: number;
  samples: [id: number, us: number][];
}

function main(): void {
  // Piped into head: the reader went away, and that is the end.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const [file, fromArg, toArg] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: npx tsx scripts/profile-stretches.ts PROFILE.cpuprofile [fromSeconds] [toSeconds]\n');
    process.exit(2);
  }
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const from = Number(fromArg ?? 0) * 1e6;
  const to = toArg === undefined ? Infinity : Number(toArg) * 1e6;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const named = (id: number, fn: string): boolean => byId.get(id)?.callFrame.functionName === fn;

  const stretches: Stretch[] = [];
  let current: Stretch | null = null;
  let window = 0;
  let busy = 0;
  let gc = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const at = t - p.startTime;
    if (at < from || at > to) continue;
    const id = p.samples[i] as number;
    const dt = p.timeDeltas[i + 1] ?? 0;
    window += dt;
    if (named(id, '(idle)')) {
      if (current) stretches.push(current);
      current = null;
      continue;
    }
    busy += dt;
    if (named(id, '(garbage collector)')) gc += dt;
    current ??= { startUs: t, endUs: t, samples: [] };
    current.endUs = t + dt;
    current.samples.push([id, dt]);
  }
  if (current) stretches.push(current);

  const ms = (s: Stretch): number => (s.endUs - s.startUs) / 1000;
  const out = {
    windowSeconds: Math.round(window / 1e5) / 10,
    busyPercent: Math.round((1000 * busy) / Math.max(1, window)) / 10,
    gcMs: Math.round(gc / 1000),
    stretches: stretches.length,
    longer: Object.fromEntries(
      [5, 10, 20, 50, 100, 200].map((limit) => {
        const long = stretches.filter((s) => ms(s) >= limit);
        return [`${limit}ms`, { count: long.length, totalMs: Math.round(long.reduce((a, s) => a + ms(s), 0)) }];
      }),
    ),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);

  // What ran in the longest stretches: the first frames of each sample's stack, by time.
  const frame = (id: number): string => {
    const c = byId.get(id)?.callFrame;
    return c === undefined ? '?' : `${c.functionName || '(anonymous)'} ${c.url.split('/').slice(-2).join('/')}:${c.lineNumber + 1}`;
  };
  for (const s of [...stretches].sort((a, b) => ms(b) - ms(a)).slice(0, 5)) {
    const paths = new Map<string, number>();
    for (const [id, us] of s.samples) {
      const stack: string[] = [];
      for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) stack.push(frame(x));
      const key = stack.reverse().slice(1, 5).join(' > ');
      paths.set(key, (paths.get(key) ?? 0) + us);
    }
    process.stdout.write(`\n${Math.round(ms(s))} ms at ${Math.round((s.startUs - p.startTime) / 1e6)} s:\n`);
    for (const [path, us] of [...paths].sort((a, b) => b[1] - a[1]).slice(0, 5)) process.stdout.write(`  ${String(Math.round(us / 1000)).padStart(5)} ms  ${path}\n`);
  }
}

main();

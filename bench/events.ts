/**
 * npm run bench:events
 *
 * What open event streams (`GET /api/v1/events`, the dashboard's live feed) cost the orchestrator. One
 * orchestrator from the compiled build (`node dist/cli/main.js serve`, as `npm start` runs it) in a child
 * process, with BENCH_EVENTS_AGENTS simulated agents (default 200, heartbeats every second) and tasks
 * submitted over the API in batches at BENCH_EVENTS_RATE per second (default 400); every task emits about
 * four events (submitted, started, attempt ended, completed). Alternating phases of BENCH_EVENTS_SECONDS
 * (default 20) with 0 and with BENCH_EVENTS_STREAMS open streams (default 100, read by this process; every
 * kind, or BENCH_EVENTS_KINDS), BENCH_EVENTS_ROUNDS times (default 3). Per phase: the server's CPU (from its own /metrics),
 * the tasks completed per second, the server's resident memory; with streams: events delivered per stream
 * per second, bytes per second, and the delay from an event's `at` to its arrival here (p50, p99).
 * Prints one JSON line with the medians over rounds and the ratios (streams / none).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SseParser } from '../src/util/sse-parser.js';

const AGENTS = Number(process.env.BENCH_EVENTS_AGENTS ?? 200);
const RATE = Number(process.env.BENCH_EVENTS_RATE ?? 400);
const SECONDS = Number(process.env.BENCH_EVENTS_SECONDS ?? 20);
const STREAMS = Number(process.env.BENCH_EVENTS_STREAMS ?? 100);
const ROUNDS = Number(process.env.BENCH_EVENTS_ROUNDS ?? 3);
/** The streams' `kinds` filter ('' for every kind). */
const KINDS = process.env.BENCH_EVENTS_KINDS ?? '';
const ROOT = fileURLToPath(new URL('../', import.meta.url));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const percentile = (sorted: number[], p: number): number => (sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number));
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

interface Stream {
  events: number;
  bytes: number;
  delays: number[];
  close(): void;
}

async function openStream(url: string): Promise<Stream> {
  const controller = new AbortController();
  const res = await fetch(`${url}/api/v1/events${KINDS === '' ? '' : `?kinds=${encodeURIComponent(KINDS)}`}`, { signal: controller.signal, headers: { accept: 'text/event-stream' } });
  if (!res.ok || !res.body) throw new Error(`stream: ${res.status}`);
  const s: Stream = { events: 0, bytes: 0, delays: [], close: () => controller.abort() };
  const parser = new SseParser((e) => {
    s.events++;
    // One delay in 20 is kept (the clock is this machine's, shared with the server).
    if (s.events % 20 === 1) s.delays.push(Date.now() - (JSON.parse(e.data) as { at: number }).at);
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        s.bytes += value.length;
        parser.push(value);
      }
    } catch {
      // closed
    }
  })();
  return s;
}

interface Phase {
  streams: number;
  cpuPercent: number;
  rssMB: number;
  tasksCompletedPerSec: number;
  submitErrors: number;
  eventsPerStreamPerSec?: number;
  bytesPerStreamPerSec?: number;
  deliveryDelayMs?: { p50: number; p99: number };
}

async function phase(url: string, streams: number): Promise<Phase> {
  const open = await Promise.all(Array.from({ length: streams }, () => openStream(url)));
  await sleep(1000);
  const cpu0 = await metric(url, 'process_cpu_seconds_total');
  const done0 = await metric(url, 'orchestrator_tasks{status="completed"}');
  const t0 = Date.now();
  let submitErrors = 0;
  const batch = Math.max(1, Math.round(RATE / 10));
  const posts: Promise<void>[] = [];
  for (let n = 0; Date.now() - t0 < SECONDS * 1000; n++) {
    const due = t0 + n * 100;
    if (due > Date.now()) await sleep(due - Date.now());
    posts.push(
      fetch(`${url}/api/v1/tasks/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tasks: Array.from({ length: batch }, () => ({ type: 'health_check' })) }),
      }).then(
        async (res) => {
          await res.arrayBuffer();
          if (res.status !== 201) submitErrors++;
        },
        () => {
          submitErrors++;
        },
      ),
    );
  }
  await Promise.all(posts);
  const elapsed = (Date.now() - t0) / 1000;
  const cpu1 = await metric(url, 'process_cpu_seconds_total');
  const done1 = await metric(url, 'orchestrator_tasks{status="completed"}');
  const rss = await metric(url, 'process_resident_memory_bytes');
  for (const s of open) s.close();
  // Let the queue drain before the next phase.
  for (let i = 0; i < 60; i++) {
    if ((await metric(url, 'orchestrator_tasks{status="pending"}')) === 0) break;
    await sleep(500);
  }
  const out: Phase = {
    streams,
    cpuPercent: round(((cpu1 - cpu0) / elapsed) * 100),
    rssMB: Math.round(rss / 2 ** 20),
    tasksCompletedPerSec: Math.round((done1 - done0) / elapsed),
    submitErrors,
  };
  if (streams > 0) {
    const delays = open.flatMap((s) => s.delays).sort((a, b) => a - b);
    out.eventsPerStreamPerSec = Math.round(open.reduce((n, s) => n + s.events, 0) / streams / elapsed);
    out.bytesPerStreamPerSec = Math.round(open.reduce((n, s) => n + s.bytes, 0) / streams / elapsed);
    out.deliveryDelayMs = { p50: percentile(delays, 50), p99: percentile(delays, 99) };
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-events-'));
  const child = spawn(process.execPath, ['--max-semi-space-size=64', join(ROOT, 'dist/cli/main.js'), 'serve'], {
    env: { ...process.env, PORT: '0', DATA_DIR: dir, DEFAULT_AGENTS: String(AGENTS), HEARTBEAT_INTERVAL: '1s', AGENT_TIMEOUT: '10s', LOG_LEVEL: 'warn', AGENT_CONCURRENCY: '4' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /HTTP API running at (http:\/\/\S+)/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`the server exited (${code}): ${out}`)));
    });
    process.stderr.write(`bench:events: ${AGENTS} simulated agents, ${RATE} tasks/s, phases of ${SECONDS} s with 0 and ${STREAMS} streams, ${ROUNDS} rounds, ${url}\n`);
    await sleep(3000);
    const none: Phase[] = [];
    const some: Phase[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which comes first, so that a drift of the machine does not favour one.
      const order = r % 2 === 0 ? [0, STREAMS] : [STREAMS, 0];
      for (const n of order) {
        const p = await phase(url, n);
        (n === 0 ? none : some).push(p);
        process.stderr.write(`  round ${r + 1}, ${n} streams: ${JSON.stringify(p)}\n`);
      }
    }
    const med = (xs: Phase[], f: (p: Phase) => number): number => round(median(xs.map(f)));
    const summary = {
      bench: 'events',
      node: process.version,
      agents: AGENTS,
      taskRate: RATE,
      seconds: SECONDS,
      rounds: ROUNDS,
      streams: STREAMS,
      kinds: KINDS === '' ? 'every kind' : KINDS,
      none: { cpuPercent: med(none, (p) => p.cpuPercent), rssMB: med(none, (p) => p.rssMB), tasksCompletedPerSec: med(none, (p) => p.tasksCompletedPerSec) },
      withStreams: {
        cpuPercent: med(some, (p) => p.cpuPercent),
        rssMB: med(some, (p) => p.rssMB),
        tasksCompletedPerSec: med(some, (p) => p.tasksCompletedPerSec),
        eventsPerStreamPerSec: med(some, (p) => p.eventsPerStreamPerSec ?? 0),
        bytesPerStreamPerSec: med(some, (p) => p.bytesPerStreamPerSec ?? 0),
        deliveryDelayMs: { p50: med(some, (p) => p.deliveryDelayMs?.p50 ?? 0), p99: med(some, (p) => p.deliveryDelayMs?.p99 ?? 0) },
      },
      ratios: {} as Record<string, number>,
      runs: { none, withStreams: some },
    };
    summary.ratios = {
      cpu: round(summary.withStreams.cpuPercent / summary.none.cpuPercent, 2),
      cpuPointsPerStream: round((summary.withStreams.cpuPercent - summary.none.cpuPercent) / STREAMS, 3),
      throughput: round(summary.withStreams.tasksCompletedPerSec / summary.none.tasksCompletedPerSec, 2),
      rssMBExtra: round(summary.withStreams.rssMB - summary.none.rssMB),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => {
      child.once('exit', r);
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

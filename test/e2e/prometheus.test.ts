import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverPerFile } from '../support/in-process.js';
import { ROOT, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '2' });

/** Debian's prometheus package (.ci/run installs it when it is missing). */
const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function devices(n: number) {
  return Array.from({ length: n }, (_, i) => ({ id: `prom-${i}`, site: i % 2 ? 'lisbon' : 'porto', model: 'x1', metrics: { battery: 80, charging: false, cpu: 20 + (i % 50), memory: 40, disk: 50 } }));
}

describe('GET /metrics (Prometheus)', () => {
  it("exposes the process' metrics and the fleet's, the queue's and the deployments', with no label naming a device", async () => {
    expect((await srv.call('POST', '/api/v1/devices', { devices: devices(100) })).status).toBe(201);
    const task = await srv.call('POST', '/api/v1/tasks', { type: 'health_check' });
    await waitFor(async () => ((await srv.call('GET', `/api/v1/tasks/${String(task.body.id)}`)).body.status === 'completed' ? true : undefined));
    const res = await fetch(`${srv.base()}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of [
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
      'orchestrator_devices',
      'orchestrator_devices_missing',
      'orchestrator_ring_health_score',
      'orchestrator_heartbeats_total',
      'orchestrator_tasks',
      'orchestrator_task_duration_seconds_bucket',
      'orchestrator_deployment_info',
      'orchestrator_gate_evaluations_total',
      'orchestrator_ring_moves_total',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name.replace(/_bucket$/, '')} `, 'm'));
    }
    // 100 imported devices (offline: no agent) and the 3 of the start-up fleet (online), over the rings.
    const sample = (re: RegExp): number[] => [...text.matchAll(re)].map((m) => Number(m[1]));
    const offline = sample(/^orchestrator_devices\{ring="[^"]*",connectivity="offline"\} (\d+)$/gm).reduce((a, b) => a + b, 0);
    const online = sample(/^orchestrator_devices\{ring="[^"]*",connectivity="online"\} (\d+)$/gm).reduce((a, b) => a + b, 0);
    expect({ offline, online }).toEqual({ offline: 100, online: 3 });
    expect(sample(/^orchestrator_tasks\{status="completed"\} (\d+)$/gm)[0]).toBeGreaterThanOrEqual(1);
    expect(sample(/^orchestrator_task_duration_seconds_count\{type="health_check",outcome="completed"\} (\d+)$/gm)[0]).toBeGreaterThanOrEqual(1);
    expect(sample(/^orchestrator_heartbeats_total (\d+)$/gm)[0]).toBeGreaterThan(0);
    // The imported devices were placed in rings (counted from when the server's metrics began), each move by a cause of the fixed set.
    const reasons = [...text.matchAll(/^orchestrator_ring_moves_total\{reason="([a-z_]+)"\} (\d+)$/gm)];
    expect(reasons.reduce((n, m) => n + Number(m[2]), 0)).toBeGreaterThanOrEqual(100);
    for (const m of reasons) expect(['placement', 'rebalance', 'health', 'swap', 'representative', 'held', 'pin_rule', 'operator', 'configuration', 'other']).toContain(m[1]);
    // No device's id in any label.
    expect(text).not.toMatch(/prom-\d+/);
  });

  it('is scraped by a real Prometheus, and a fleet metric reads back through its query API', async () => {
    expect(PROMETHEUS, 'the prometheus binary (apt-get install prometheus; .ci/run does it)').toBeDefined();
    const dir = tempDir();
    const port = await freePort();
    const target = new URL(srv.base()).host;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: orchestrator\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const child = spawn(PROMETHEUS as string, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[] | undefined> => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
          if (!res.ok) return undefined;
          const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
          return body.data.result.length > 0 ? body.data.result : undefined;
        } catch {
          return undefined;
        }
      };
      const total = await waitFor(() => query('sum(orchestrator_devices{connectivity!="decommissioned"})'), 30_000, 250).catch((err: unknown) => {
        throw new Error(`Prometheus never had the metric: ${String(err)}\n${log.slice(-2000)}`);
      });
      expect(Number(total[0]?.value[1])).toBe(103);
      const up = await query('up{job="orchestrator"}');
      expect(up?.[0]?.value[1]).toBe('1');
      const byRing = await query('orchestrator_devices{connectivity="offline"}');
      expect(new Set(byRing?.map((r) => r.metric.ring))).toEqual(new Set(['canary', 'dev', 'stage', 'prod', 'unassigned']));
      // Every query of the Grafana dashboard in docs/ is valid PromQL over metrics this server exposes.
      const grafana = JSON.parse(readFileSync(join(ROOT, 'docs/grafana/orchestrator.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
      const exposed = await (await fetch(`${srv.base()}/metrics`)).text();
      for (const panel of grafana.panels) {
        for (const { expr } of panel.targets) {
          const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`);
          expect({ panel: panel.title, status: res.status }).toEqual({ panel: panel.title, status: 200 });
          const names = [...expr.matchAll(/\b((?:orchestrator|process|nodejs)_[a-z0-9_]+)/g)].map((m) => (m[1] as string).replace(/_bucket$/, ''));
          for (const name of names) expect(exposed, `${panel.title}: ${name}`).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
        }
      }
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }, 60_000);
});

import type { JSX } from 'preact';
import { api } from '../api';
import { Chart } from '../chart';
import { duration, num, pct, score, when } from '../format';
import { useResource } from '../hooks';
import { Link } from '../router';
import type { Overview } from '../types';
import { Badge, Bar, Card, ErrorNote, Loading, Page, Stat, Table } from '../ui';
import { executionParts } from './deployments';

const BANDS = Array.from({ length: 20 }, (_, i) => i * 5 + 2.5);

/** The fleet at a glance: devices online, offline and missing, health, rings, the queue, deployments and halts. */
export function OverviewView(): JSX.Element {
  // Health changes with every heartbeat, which no event announces: read again every 5 s as well.
  const r = useResource((signal) => api<Overview>('/api/v1/overview', { signal }), [], ['agent', 'task', 'rings', 'deployment', 'storage'], 1000, 5000);
  const o = r.data;
  if (!o) return <Page title="Overview">{r.error ? <ErrorNote error={r.error} /> : <Loading />}</Page>;
  const d = o.devices;
  const tasks = o.tasks;
  return (
    <Page title="Overview">
      <ErrorNote error={r.error} />
      <div class="stats" data-testid="fleet-stats">
        <Stat label="devices" value={d.total} testid="stat-total" />
        <Stat label="online" value={d.online} tone="good" testid="stat-online" />
        <Stat label="offline" value={d.offline} tone={d.offline > 0 ? 'warn' : undefined} testid="stat-offline" />
        <Stat label={`missing (silent > ${duration(d.missingAfterSeconds * 1000)})`} value={d.missing} tone={d.missing > 0 ? 'bad' : undefined} testid="stat-missing" />
        <Stat label="failing the health rule" value={d.unhealthy} tone={d.unhealthy > 0 ? 'warn' : undefined} />
        <Stat label="not yet scored" value={d.unscored} />
      </div>
      <div class="grid two">
        <Card title="Health distribution">
          <Chart kind="bars" x={BANDS} ys={[d.health]} series={[{ label: 'devices', color: '#4f9dff' }]} height={200} xLabels={(v) => `${Math.round(v)}`} testid="health-chart" />
          <p class="muted">Devices by health score (0–100), in bands of 5 points.</p>
        </Card>
        <Card title="Task queue">
          <div class="stats small" data-testid="queue-stats">
            {Object.entries(tasks).map(([status, n]) => (
              <Link key={status} href={`/tasks?status=${status}`}>
                <Stat label={status.replace('_', ' ')} value={n} tone={status === 'dead' && n > 0 ? 'bad' : undefined} />
              </Link>
            ))}
          </div>
        </Card>
      </div>
      <Card title="Rings">
        <Table
          testid="rings-table"
          rows={o.rings}
          keyOf={(g) => g.name}
          columns={[
            { label: 'Ring', render: (g) => <Link href={`/devices?ring=${g.name}`}>{g.name}</Link> },
            { label: 'Size / target', render: (g) => `${num(g.size)} / ${num(g.target)}`, class: 'num' },
            {
              label: 'Against its target',
              render: (g) => (
                <Bar
                  total={Math.max(g.size, g.target)}
                  parts={[
                    { value: g.online, class: 'ok', label: 'online' },
                    { value: g.size - g.online, class: 'warn', label: 'offline' },
                    { value: Math.max(0, g.target - g.size), class: 'gap', label: 'below target' },
                  ]}
                />
              ),
            },
            { label: 'Online', render: (g) => pct(g.online, g.size), class: 'num' },
            { label: 'p10 / p50 / p90', render: (g) => `${score(g.p10)} / ${score(g.p50)} / ${score(g.p90)}`, class: 'num' },
            { label: 'Failing rule', render: (g) => num(g.unhealthy), class: 'num' },
          ]}
        />
        <p class="muted">{num(o.unassigned)} devices in no ring (unassigned or held).</p>
      </Card>
      <div class="grid two">
        <Card title="Active deployments">
          <Table
            testid="active-deployments"
            rows={o.deployments}
            keyOf={(x) => x.id}
            empty="No deployment is running."
            columns={[
              { label: 'Deployment', render: (x) => <Link href={`/deployments/${encodeURIComponent(x.id)}`}>{x.name}</Link> },
              { label: 'Status', render: (x) => <Badge value={x.status} /> },
              { label: 'Ring', render: (x) => x.stage?.ring ?? '–' },
              { label: 'Progress', render: (x) => <Bar total={x.progress.devices} parts={executionParts(x.progress.counts)} /> },
            ]}
          />
        </Card>
        <Card title="Recent halts">
          <Table
            testid="recent-halts"
            rows={o.halts}
            keyOf={(x) => x.id}
            empty="No recent deployment was halted."
            columns={[
              { label: 'Deployment', render: (x) => <Link href={`/deployments/${encodeURIComponent(x.id)}`}>{x.name}</Link> },
              { label: 'Status', render: (x) => <Badge value={x.status} /> },
              { label: 'Why', render: (x) => <span class="reason">{x.haltReason}</span> },
              { label: 'When', render: (x) => when(x.endedAt ?? x.startedAt) },
            ]}
          />
        </Card>
      </div>
    </Page>
  );
}

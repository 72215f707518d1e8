import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, put, query } from '../api';
import { Chart } from '../chart';
import { num, score, when } from '../format';
import { useResource } from '../hooks';
import { Link, setQuery, useLocation } from '../router';
import { useCan } from '../session';
import type { DeviceDetail, DeviceSummary, Execution, RingMove, Task } from '../types';
import { Action, Badge, Card, ErrorNote, Loading, Page, Pager, Table } from '../ui';

const FILTERS = ['ring', 'status', 'healthBelow', 'site', 'department', 'model'] as const;

/** Every device, paged through the server (any fleet size), filtered and sorted there. */
export function DevicesView(): JSX.Element {
  const { query: q } = useLocation();
  const filter = Object.fromEntries(FILTERS.map((f) => [f, q.get(f) ?? undefined]));
  const sort = q.get('sort') ?? 'id';
  const cursors = q.get('pages')?.split(',').filter(Boolean) ?? [];
  const cursor = cursors.at(-1);
  const key = JSON.stringify([filter, sort, cursor]);
  const rings = useResource((signal) => api<{ rings: { name: string }[] }>('/api/v1/rings', { signal }), []);
  const r = useResource(
    (signal) => api<{ devices: DeviceSummary[]; nextCursor: string | null }>(`/api/v1/devices${query({ ...filter, sort, limit: 50, cursor })}`, { signal }),
    [key],
    ['agent', 'rings'],
    2000,
  );
  const [draft, setDraft] = useState<Record<string, string>>({});
  const value = (f: string): string => draft[f] ?? q.get(f) ?? '';
  const apply = (e: Event): void => {
    e.preventDefault();
    setQuery({ ...Object.fromEntries(FILTERS.map((f) => [f, value(f)])), pages: undefined });
    setDraft({});
  };
  return (
    <Page title="Devices">
      <form class="filters" onSubmit={apply} data-testid="device-filters">
        <select value={value('ring')} onChange={(e) => setDraft({ ...draft, ring: (e.target as HTMLSelectElement).value })} aria-label="ring">
          <option value="">any ring</option>
          {(rings.data?.rings ?? []).map((g) => (
            <option key={g.name} value={g.name}>
              {g.name}
            </option>
          ))}
          <option value="unassigned">unassigned</option>
        </select>
        <select value={value('status')} onChange={(e) => setDraft({ ...draft, status: (e.target as HTMLSelectElement).value })} aria-label="connectivity">
          <option value="">any connectivity</option>
          <option value="online">online</option>
          <option value="offline">offline</option>
          <option value="decommissioned">decommissioned</option>
        </select>
        <input placeholder="health below" inputMode="decimal" value={value('healthBelow')} onInput={(e) => setDraft({ ...draft, healthBelow: (e.target as HTMLInputElement).value })} aria-label="health below" />
        <input placeholder="site" value={value('site')} onInput={(e) => setDraft({ ...draft, site: (e.target as HTMLInputElement).value })} aria-label="site" />
        <input placeholder="department" value={value('department')} onInput={(e) => setDraft({ ...draft, department: (e.target as HTMLInputElement).value })} aria-label="department" />
        <input placeholder="model" value={value('model')} onInput={(e) => setDraft({ ...draft, model: (e.target as HTMLInputElement).value })} aria-label="model" />
        <select value={sort} onChange={(e) => setQuery({ sort: (e.target as HTMLSelectElement).value, pages: undefined })} aria-label="sort">
          <option value="id">registration order</option>
          <option value="score">worst health first</option>
          <option value="-score">best health first</option>
        </select>
        <button type="submit">Filter</button>
      </form>
      <ErrorNote error={r.error} />
      {r.data ? (
        <>
          <Table
            testid="devices-table"
            rows={r.data.devices}
            keyOf={(d) => d.id}
            empty="No device matches."
            columns={[
              { label: 'Device', render: (d) => <Link href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</Link> },
              { label: 'Ring', render: (d) => `${d.ring}${d.pinned ? ' (pinned)' : ''}${d.held ? ' (held)' : ''}` },
              { label: 'Connectivity', render: (d) => <Badge value={d.status} /> },
              { label: 'Score', render: (d) => score(d.score), class: 'num' },
              { label: 'Health rule', render: (d) => (d.healthy === null ? '–' : d.healthy ? 'passes' : 'fails') },
              { label: 'Site', render: (d) => d.site ?? '–' },
              { label: 'Department', render: (d) => d.department ?? '–' },
              { label: 'Model', render: (d) => d.model ?? '–' },
            ]}
          />
          <Pager cursors={cursors} next={r.data.nextCursor} onPage={(c) => setQuery({ pages: c.join(',') })} />
        </>
      ) : r.error ? null : (
        <Loading />
      )}
    </Page>
  );
}

function MoveForm(props: { device: DeviceDetail; rings: string[]; onDone: () => void }): JSX.Element | null {
  const can = useCan('operator');
  const [ring, setRing] = useState(props.device.pin?.ring ?? props.device.ring);
  const [pinned, setPinned] = useState(true);
  const [reason, setReason] = useState('');
  if (!can) return null;
  return (
    <div class="row" data-testid="move-form">
      <select value={ring} onChange={(e) => setRing((e.target as HTMLSelectElement).value)} aria-label="ring">
        {props.rings.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
      <label class="check">
        <input type="checkbox" checked={pinned} onChange={(e) => setPinned((e.target as HTMLInputElement).checked)} /> pin it there
      </label>
      <input placeholder="reason (required)" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} aria-label="reason" />
      <Action role="operator" label={pinned ? 'Pin' : 'Move'} kind="primary" run={() => put(`/api/v1/devices/${encodeURIComponent(props.device.id)}/ring`, { ring, pinned, reason }).then(props.onDone)} />
      {props.device.pin ? (
        <Action role="operator" label="Unpin" run={() => put(`/api/v1/devices/${encodeURIComponent(props.device.id)}/ring`, { ring: null, reason: reason || 'unpinned from the dashboard' }).then(props.onDone)} />
      ) : null}
    </div>
  );
}

interface HistoryPoint {
  at: string;
  battery: number | null;
  cpu: number;
  memory: number;
  disk: number;
  score: number | null;
}

export function DeviceView(props: { id: string }): JSX.Element {
  const base = `/api/v1/devices/${encodeURIComponent(props.id)}`;
  // A device's metrics change with every heartbeat, which no event announces: read again every 10 s, its history every minute.
  const r = useResource((signal) => api<DeviceDetail>(base, { signal }), [props.id], ['agent', 'ring', 'rings'], 2000, 10_000);
  const history = useResource((signal) => api<{ points: HistoryPoint[] }>(`${base}/history?limit=1000`, { signal }), [props.id], [], 0, 60_000);
  const moves = useResource((signal) => api<{ moves: RingMove[] }>(`${base}/ring-history`, { signal }), [props.id], ['ring'], 2000);
  const tasks = useResource((signal) => api<{ tasks: Task[] }>(`/api/v1/tasks${query({ agentId: props.id, limit: 20 })}`, { signal }), [props.id], ['task'], 2000);
  const executions = useResource((signal) => api<{ executions: Execution[] }>(`${base}/executions?limit=20`, { signal }), [props.id], ['deployment'], 2000);
  const rings = useResource((signal) => api<{ rings: { name: string }[] }>('/api/v1/rings', { signal }), []);
  const d = r.data;
  if (!d) return <Page title={props.id}>{r.error ? <ErrorNote error={r.error} /> : <Loading />}</Page>;
  const points = history.data?.points ?? [];
  const x = points.map((p) => new Date(p.at).getTime() / 1000);
  return (
    <Page title={d.id}>
      <div class="summary-line" data-testid="device-summary">
        <Badge value={d.status} />
        <span>
          ring <strong>{d.ring}</strong>
          {d.pin ? ` (pinned by ${d.pin.source})` : ''}
          {d.held ? ' (held)' : ''}
        </span>
        <span>
          score <strong data-testid="device-score">{score(d.health?.score ?? d.score)}</strong>
        </span>
        <span class="muted">
          {[d.site, d.department, d.manufacturer, d.model, d.osName].filter(Boolean).join(' · ')}
        </span>
      </div>
      <Card title="Ring">
        <MoveForm device={d} rings={rings.data?.rings.map((g) => g.name) ?? []} onDone={r.reload} />
      </Card>
      <div class="grid two">
        <Card title="Health score, factor by factor">
          {d.health ? (
            <Table
              testid="health-factors"
              rows={d.health.factors}
              keyOf={(f) => f.factor}
              columns={[
                { label: 'Factor', render: (f) => f.factor },
                { label: 'Value', render: (f) => (Number.isInteger(f.value) ? f.value : f.value.toFixed(1)), class: 'num' },
                { label: 'Weight', render: (f) => f.weight, class: 'num' },
                { label: 'Points', render: (f) => f.contribution.toFixed(1), class: 'num' },
              ]}
            />
          ) : (
            <p class="muted">No metrics yet.</p>
          )}
        </Card>
        <Card title="Metrics">
          {d.metrics ? (
            <dl class="figures">
              <div>
                <dt>battery</dt>
                <dd>{d.metrics.battery === null ? 'none' : `${d.metrics.battery}%${d.metrics.charging ? ' (charging)' : ''}`}</dd>
              </div>
              <div>
                <dt>cpu</dt>
                <dd>{d.metrics.cpu}%</dd>
              </div>
              <div>
                <dt>memory</dt>
                <dd>{d.metrics.memory}%</dd>
              </div>
              <div>
                <dt>disk</dt>
                <dd>{d.metrics.disk}%</dd>
              </div>
              <div>
                <dt>drain</dt>
                <dd>{d.metrics.batteryDrainPerHour} %/h</dd>
              </div>
              <div>
                <dt>cpu trend</dt>
                <dd>{d.metrics.cpuTrendPerHour} /h</dd>
              </div>
              <div>
                <dt>sampled</dt>
                <dd>{when(d.metrics.sampledAt)}</dd>
              </div>
            </dl>
          ) : (
            <p class="muted">No metrics yet.</p>
          )}
        </Card>
      </div>
      <Card title="Metrics over time">
        {points.length > 1 ? (
          <Chart
            kind="lines"
            x={x}
            ys={[points.map((p) => p.cpu), points.map((p) => p.memory), points.map((p) => p.battery), points.map((p) => p.disk), points.map((p) => p.score)]}
            series={[
              { label: 'cpu %', color: '#f5a623' },
              { label: 'memory %', color: '#b57bff' },
              { label: 'battery %', color: '#3fb950' },
              { label: 'disk %', color: '#8b949e' },
              { label: 'score', color: '#4f9dff', scale: 'score' },
            ]}
            testid="history-chart"
          />
        ) : (
          <p class="muted">Fewer than two points of history yet ({num(points.length)}): one is kept every few minutes.</p>
        )}
      </Card>
      <Card title="Ring history">
        <Table
          testid="ring-history"
          rows={[...(moves.data?.moves ?? [])].reverse()}
          keyOf={(m) => String(m.id)}
          empty="Never moved."
          columns={[
            { label: 'When', render: (m) => when(m.at) },
            { label: 'From', render: (m) => m.from },
            { label: 'To', render: (m) => m.to },
            { label: 'Why', render: (m) => <span class="reason">{m.reason}</span> },
          ]}
        />
      </Card>
      <div class="grid two">
        <Card title="Tasks">
          <Table
            rows={tasks.data?.tasks ?? []}
            keyOf={(t) => t.id}
            empty="No task ran here."
            columns={[
              { label: 'Task', render: (t) => <Link href={`/tasks/${encodeURIComponent(t.id)}`}>{t.id.slice(0, 8)}</Link> },
              { label: 'Type', render: (t) => t.type },
              { label: 'Status', render: (t) => <Badge value={t.status} /> },
              { label: 'Created', render: (t) => when(t.createdAt) },
            ]}
          />
        </Card>
        <Card title="Deployment executions">
          <Table
            rows={executions.data?.executions ?? []}
            keyOf={(e) => `${e.deploymentId}`}
            empty="In no deployment yet."
            columns={[
              { label: 'Deployment', render: (e) => <Link href={`/deployments/${encodeURIComponent(e.deploymentId ?? '')}`}>{e.deploymentId}</Link> },
              { label: 'State', render: (e) => <Badge value={e.state} /> },
              { label: 'Why', render: (e) => <span class="reason">{e.reason ?? ''}</span> },
              { label: 'Ended', render: (e) => when(e.endedAt) },
            ]}
          />
        </Card>
      </div>
    </Page>
  );
}

import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, post, query } from '../api';
import { when } from '../format';
import { useResource } from '../hooks';
import { Link, navigate, setQuery, useLocation } from '../router';
import { useCan } from '../session';
import type { Task } from '../types';
import { Action, Badge, Card, ErrorNote, Loading, Page, Pager, Table } from '../ui';

const STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'dead', 'cancelled', 'expired'];
const TYPES = ['process_data', 'health_check', 'deploy', 'analyze_risk', 'monitor'];

function SubmitForm(): JSX.Element | null {
  const can = useCan('operator');
  const [type, setType] = useState('health_check');
  const [params, setParams] = useState('{}');
  const [priority, setPriority] = useState('0');
  const [agentId, setAgentId] = useState('');
  const [error, setError] = useState<unknown>(null);
  if (!can) return null;
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    let p: unknown;
    try {
      p = JSON.parse(params || '{}');
    } catch {
      setError(new Error('The parameters are not JSON.'));
      return;
    }
    try {
      const task = await post<{ id: string }>('/api/v1/tasks', { type, params: p, priority: Number(priority), ...(agentId ? { target: { agentId } } : {}) });
      navigate(`/tasks/${encodeURIComponent(task.id)}`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Card title="Submit a task">
      <form class="row wrap" onSubmit={(e) => void submit(e)} data-testid="submit-task">
        <select value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)} aria-label="type">
          {TYPES.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        <input value={params} onInput={(e) => setParams((e.target as HTMLInputElement).value)} aria-label="parameters (JSON)" placeholder="parameters (JSON)" class="grow" />
        <input value={priority} onInput={(e) => setPriority((e.target as HTMLInputElement).value)} aria-label="priority" inputMode="numeric" size={5} />
        <input value={agentId} onInput={(e) => setAgentId((e.target as HTMLInputElement).value)} aria-label="agent (optional)" placeholder="agent (optional)" />
        <button type="submit" class="primary">
          Submit
        </button>
      </form>
      <ErrorNote error={error} />
    </Card>
  );
}

export function TasksView(): JSX.Element {
  const { query: q } = useLocation();
  const status = q.get('status') ?? '';
  const type = q.get('type') ?? '';
  const agentId = q.get('agentId') ?? '';
  const cursors = q.get('pages')?.split(',').filter(Boolean) ?? [];
  const cursor = cursors.at(-1);
  const r = useResource(
    (signal) => api<{ tasks: Task[]; nextCursor: string | null }>(`/api/v1/tasks${query({ status, type, agentId, limit: 50, cursor })}`, { signal }),
    [status, type, agentId, cursor],
    ['task'],
    1000,
  );
  return (
    <Page title="Tasks">
      <SubmitForm />
      <div class="filters" data-testid="task-filters">
        <select value={status} onChange={(e) => setQuery({ status: (e.target as HTMLSelectElement).value, pages: undefined })} aria-label="status">
          <option value="">any status</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select value={type} onChange={(e) => setQuery({ type: (e.target as HTMLSelectElement).value, pages: undefined })} aria-label="type">
          <option value="">any type</option>
          {TYPES.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        <input placeholder="agent" value={agentId} onChange={(e) => setQuery({ agentId: (e.target as HTMLInputElement).value, pages: undefined })} aria-label="agent" />
      </div>
      <ErrorNote error={r.error} />
      {r.data ? (
        <>
          <Table
            testid="tasks-table"
            rows={r.data.tasks}
            keyOf={(t) => t.id}
            empty="No task matches."
            columns={[
              { label: 'Task', render: (t) => <Link href={`/tasks/${encodeURIComponent(t.id)}`}>{t.id.slice(0, 8)}</Link> },
              { label: 'Type', render: (t) => t.type },
              { label: 'Status', render: (t) => <Badge value={t.status} /> },
              { label: 'Priority', render: (t) => t.priority, class: 'num' },
              { label: 'Agent', render: (t) => t.agentId ?? '–' },
              { label: 'Attempts', render: (t) => `${t.attempts} / ${t.attempts + t.attemptsLeft}`, class: 'num' },
              { label: 'Created', render: (t) => when(t.createdAt) },
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

export function TaskView(props: { id: string }): JSX.Element {
  const path = `/api/v1/tasks/${encodeURIComponent(props.id)}`;
  const r = useResource((signal) => api<Task>(path, { signal }), [props.id], ['task'], 500);
  const t = r.data;
  if (!t) return <Page title="Task">{r.error ? <ErrorNote error={r.error} /> : <Loading />}</Page>;
  const open = t.status === 'pending' || t.status === 'in_progress';
  return (
    <Page
      title={`Task ${t.id.slice(0, 8)}`}
      actions={
        <>
          {open ? <Action role="operator" label="Cancel" kind="danger" confirm="Cancel this task?" run={() => post(`${path}/cancel`, {}).then(r.reload)} testid="cancel-task" /> : null}
          {!open && t.status !== 'completed' ? <Action role="operator" label="Retry" kind="primary" run={() => post(`${path}/retry`, {}).then(r.reload)} testid="retry-task" /> : null}
        </>
      }
    >
      <div class="summary-line">
        <Badge value={t.status} testid="task-status" />
        <code>{t.id}</code>
        <span>
          {t.type} · priority {t.priority}
        </span>
        {t.agentId ? (
          <span>
            on <Link href={`/devices/${encodeURIComponent(t.agentId)}`}>{t.agentId}</Link>
          </span>
        ) : null}
      </div>
      {t.error ? <div class="halt">{t.error}</div> : null}
      <div class="grid two">
        <Card title="Parameters">
          <pre class="config">{JSON.stringify(t.params, null, 2)}</pre>
        </Card>
        <Card title="Result">
          <pre class="config">{t.result === null ? '–' : JSON.stringify(t.result, null, 2)}</pre>
        </Card>
      </div>
      <Card title="Attempts">
        <Table
          testid="attempts"
          rows={t.attemptHistory ?? []}
          keyOf={(a) => String(a.attempt)}
          empty="Not started yet."
          columns={[
            { label: 'Attempt', render: (a) => a.attempt, class: 'num' },
            { label: 'Agent', render: (a) => a.agentId },
            { label: 'Started', render: (a) => when(a.startedAt) },
            { label: 'Ended', render: (a) => when(a.endedAt) },
            { label: 'Outcome', render: (a) => (a.outcome ? <Badge value={a.outcome} /> : 'running') },
            { label: 'Error', render: (a) => a.error ?? '' },
          ]}
        />
      </Card>
      <p class="muted">
        Created {when(t.createdAt)} · started {when(t.startedAt)} · ended {when(t.completedAt)}
      </p>
    </Page>
  );
}

import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, post, query } from '../api';
import { when } from '../format';
import { useResource } from '../hooks';
import { Link, navigate, setQuery, useLocation } from '../router';
import type { Advice, DeploymentDetail, DeploymentSummary, ExecutionCounts, GateEvaluation } from '../types';
import { useCan } from '../session';
import { Action, Badge, Bar, Card, ErrorNote, errorsByPlace, Loading, Page, Pager, Table } from '../ui';

/** Execution counts as the parts of a progress bar. */
export function executionParts(c: ExecutionCounts): { value: number; class: string; label: string }[] {
  const n = (k: string): number => c[k] ?? 0;
  return [
    { value: n('succeeded'), class: 'ok', label: 'succeeded' },
    { value: n('in_progress'), class: 'run', label: 'in progress' },
    { value: n('queued'), class: 'wait', label: 'queued' },
    { value: n('failed') + n('timed_out') + n('rejected'), class: 'bad', label: 'failed, timed out or rejected' },
    { value: n('rolled_back') + n('cancelled') + n('skipped'), class: 'gap', label: 'rolled back, cancelled or skipped' },
  ];
}

const ACTIONS: { action: string; label: string; from: string[]; kind?: 'primary' | 'danger'; confirm?: string }[] = [
  { action: 'start', label: 'Start', from: ['scheduled'], kind: 'primary' },
  { action: 'pause', label: 'Pause', from: ['in_progress'] },
  { action: 'resume', label: 'Resume', from: ['paused'], kind: 'primary' },
  { action: 'promote', label: 'Promote', from: ['in_progress', 'paused'], confirm: "Promote past the current ring's gate?" },
  { action: 'acknowledge', label: 'Acknowledge and resume', from: ['halted'], confirm: "Resume past the gate's halt?" },
  { action: 'abort', label: 'Abort', from: ['scheduled', 'in_progress', 'paused', 'halted'], kind: 'danger', confirm: 'Abort this deployment?' },
  { action: 'rollback', label: 'Roll back', from: ['in_progress', 'paused', 'halted', 'completed', 'cancelled'], kind: 'danger', confirm: 'Roll back every updated device?' },
];

export function DeploymentsView(): JSX.Element {
  const { query: q } = useLocation();
  const cursors = q.get('pages')?.split(',').filter(Boolean) ?? [];
  const cursor = cursors.at(-1);
  const r = useResource((signal) => api<{ deployments: DeploymentSummary[]; nextCursor: string | null }>(`/api/v1/deployments${query({ limit: 50, cursor })}`, { signal }), [cursor], ['deployment'], 1000);
  const operator = useCan('operator');
  return (
    <Page
      title="Deployments"
      actions={
        operator ? (
          <Link href="/deployments/new" class="button primary">
            New deployment
          </Link>
        ) : null
      }
    >
      <ErrorNote error={r.error} />
      {r.data ? (
        <>
          <Table
            testid="deployments-table"
            rows={r.data.deployments}
            keyOf={(d) => d.id}
            empty="No deployments yet."
            columns={[
              { label: 'Deployment', render: (d) => <Link href={`/deployments/${encodeURIComponent(d.id)}`}>{d.name}</Link> },
              { label: 'Id', render: (d) => <code>{d.id}</code> },
              { label: 'Status', render: (d) => <Badge value={d.status} testid={`status-${d.id}`} /> },
              { label: 'Ring', render: (d) => (d.stage ? `${d.stage.ring ?? '–'} (${d.stage.phase})` : d.kind) },
              { label: 'Why stopped', render: (d) => <span class="reason">{d.haltReason ?? d.pauseReason ?? ''}</span> },
              { label: 'Created', render: (d) => when(d.createdAt) },
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

function Figures(props: { figures: Record<string, number> }): JSX.Element {
  return (
    <dl class="figures">
      {Object.entries(props.figures).map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{Number.isInteger(v) ? v : v.toFixed(3)}</dd>
        </div>
      ))}
    </dl>
  );
}

/** Whether applying a decision would change a deployment in this status (a halt of a halted one would not). */
function changes(decision: string | null, status: string): boolean {
  if (decision === null || decision === 'continue') return false;
  if (decision === 'halt') return status === 'in_progress' || status === 'paused';
  if (decision === 'pause') return status === 'in_progress';
  if (decision === 'rollback') return !['rolled_back', 'scheduled'].includes(status);
  return true;
}

function AdviceCard(props: { deploymentId: string; status: string }): JSX.Element {
  const subject = `deployment:${props.deploymentId}`;
  const r = useResource((signal) => api<{ advice: Advice[] }>(`/api/v1/advice${query({ subject, limit: 1 })}`, { signal }), [subject], ['advice'], 500);
  const a = r.data?.advice[0] ?? null;
  return (
    <Card title="The advisor" id="advice">
      <ErrorNote error={r.error} />
      {a ? (
        <div class="advice" data-testid="advice">
          <p>
            <Badge value={a.decision ?? a.risk} /> <strong>{a.summary}</strong>
          </p>
          <p class="muted">
            {a.provider.name}
            {a.provider.model ? ` (${a.provider.model})` : ''} · {a.trigger} · {when(a.createdAt)}
            {a.applied ? ` · applied by ${a.applied.by} ${when(a.applied.at)}` : ''}
          </p>
          {a.applied === null && changes(a.decision, props.status) ? (
            <Action role="operator" label={`Apply: ${a.decision}`} kind="primary" testid="apply-advice" run={() => post(`/api/v1/advice/${a.id}/apply`).then(r.reload)} />
          ) : null}
        </div>
      ) : (
        <p class="muted">No advice on this deployment yet.</p>
      )}
      <Action role="operator" label="Ask the advisor" testid="ask-advice" run={() => post('/api/v1/advice', { subject: { deployment: props.deploymentId } }).then(r.reload)} />
    </Card>
  );
}

export function DeploymentView(props: { id: string }): JSX.Element {
  const [state, setState] = useState('');
  const path = `/api/v1/deployments/${encodeURIComponent(props.id)}`;
  const r = useResource((signal) => api<DeploymentDetail>(`${path}${query({ limit: 200, state })}`, { signal }), [props.id, state], ['deployment', 'advice'], 500);
  const impact = useResource(
    (signal) => api<{ devices: { deviceId: string; ring: string; cpuDelta: number; memoryDelta: number; drainDelta: number; score: number }[] }>(`${path}/impact?limit=10`, { signal }),
    [props.id],
    ['deployment'],
    2000,
  );
  const d = r.data;
  if (!d) return <Page title="Deployment">{r.error ? <ErrorNote error={r.error} /> : <Loading />}</Page>;
  const act = (action: string) => () => post(`${path}/${action}`, {}).then(r.reload);
  return (
    <Page
      title={d.name}
      actions={
        <div class="actions" data-testid="deployment-actions">
          {ACTIONS.filter((a) => a.from.includes(d.status)).map((a) => (
            <Action key={a.action} role="operator" label={a.label} kind={a.kind} confirm={a.confirm} run={act(a.action)} testid={`action-${a.action}`} />
          ))}
        </div>
      }
    >
      <ErrorNote error={r.error} />
      <div class="summary-line">
        <Badge value={d.status} testid="deployment-status" />
        <code>{d.id}</code>
        {d.stage ? (
          <span>
            ring <strong>{d.stage.ring}</strong> · {d.stage.phase}
            {d.stage.soakUntil ? ` until ${when(d.stage.soakUntil)}` : ''}
          </span>
        ) : null}
        <span class="muted">
          {d.plan.payload.type} · created {when(d.createdAt)}
        </span>
      </div>
      {d.haltReason ? (
        <div class="halt" role="status" data-testid="halt-reason">
          <strong>{d.status === 'halted' ? 'Halted' : 'Stopped'}:</strong> {d.haltReason}
          {d.haltAdvice ? <p class="muted">The advisor: {d.haltAdvice.summary}</p> : null}
        </div>
      ) : null}
      <Card title="Progress by ring">
        <Table
          testid="ring-progress"
          rows={d.progress.rings}
          keyOf={(x) => String(x.stage)}
          columns={[
            { label: 'Stage', render: (x) => x.stage + 1, class: 'num' },
            { label: 'Ring', render: (x) => x.ring },
            { label: 'Devices', render: (x) => x.devices, class: 'num' },
            { label: 'Progress', render: (x) => <Bar total={x.devices} parts={executionParts(x.counts)} testid={`progress-${x.ring}`} /> },
            { label: 'Succeeded', render: (x) => x.counts.succeeded ?? 0, class: 'num' },
            { label: 'Failed', render: (x) => (x.counts.failed ?? 0) + (x.counts.timed_out ?? 0), class: 'num' },
            { label: 'Gate', render: (x) => (x.lastEvaluation ? <Badge value={x.lastEvaluation.verdict} /> : x.reached ? 'not judged yet' : 'not reached') },
          ]}
        />
      </Card>
      <AdviceCard deploymentId={d.id} status={d.status} />
      <Card title="Gate evaluations">
        <Table<GateEvaluation>
          testid="gate-evaluations"
          rows={[...d.evaluations].reverse()}
          keyOf={(e) => `${e.at}-${e.ring}-${e.verdict}`}
          empty="No gate has been evaluated yet."
          columns={[
            { label: 'When', render: (e) => when(e.at) },
            { label: 'Ring', render: (e) => e.ring },
            { label: 'Verdict', render: (e) => <Badge value={e.verdict} /> },
            { label: 'Why', render: (e) => <span class="reason">{e.reason}</span> },
            { label: 'Measurements', render: (e) => <Figures figures={e.figures} /> },
          ]}
        />
      </Card>
      <Card title="Impact ranking">
        <p class="muted">The devices this release hurt most: change in CPU, memory and battery drain after the update.</p>
        <Table
          testid="impact-ranking"
          rows={impact.data?.devices ?? []}
          keyOf={(x) => x.deviceId}
          empty="No device has been observed after its update yet."
          columns={[
            { label: 'Device', render: (x) => <Link href={`/devices/${encodeURIComponent(x.deviceId)}`}>{x.deviceId}</Link> },
            { label: 'Ring', render: (x) => x.ring },
            { label: 'CPU Δ', render: (x) => x.cpuDelta.toFixed(1), class: 'num' },
            { label: 'Memory Δ', render: (x) => x.memoryDelta.toFixed(1), class: 'num' },
            { label: 'Drain Δ (%/h)', render: (x) => x.drainDelta.toFixed(1), class: 'num' },
            { label: 'Impact', render: (x) => x.score.toFixed(2), class: 'num' },
          ]}
        />
      </Card>
      <Card title={`Executions (${d.executionsTotal})`}>
        <label class="inline">
          State{' '}
          <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {['queued', 'in_progress', 'succeeded', 'failed', 'timed_out', 'rejected', 'skipped', 'cancelled', 'rolled_back'].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <Table
          testid="executions"
          rows={d.executions}
          keyOf={(e) => e.deviceId}
          columns={[
            { label: 'Device', render: (e) => <Link href={`/devices/${encodeURIComponent(e.deviceId)}`}>{e.deviceId}</Link> },
            { label: 'Ring', render: (e) => e.ring ?? '–' },
            { label: 'State', render: (e) => <Badge value={e.state} /> },
            { label: 'Why', render: (e) => <span class="reason">{e.reason ?? ''}</span> },
            { label: 'Task', render: (e) => (e.taskId ? <Link href={`/tasks/${encodeURIComponent(e.taskId)}`}>{e.taskId.slice(0, 8)}</Link> : '–') },
            { label: 'Ended', render: (e) => when(e.endedAt) },
          ]}
        />
        {d.executionsTotal > d.executions.length ? <p class="muted">Showing the first {d.executions.length}.</p> : null}
      </Card>
    </Page>
  );
}

interface StageForm {
  ring: string;
  soakMinutes: string;
  gate: Record<string, number>;
  words: string;
}

const GATE_FIELDS: { key: string; label: string; hint: string }[] = [
  { key: 'maxFailureShare', label: 'Max failure share', hint: '0–1' },
  { key: 'maxTimeoutShare', label: 'Max timeout share', hint: '0–1' },
  { key: 'maxCpuRegression', label: 'Max CPU rise (points)', hint: '0–100' },
  { key: 'maxMemoryRegression', label: 'Max memory rise (points)', hint: '0–100' },
  { key: 'maxBatteryDrainRegression', label: 'Max drain rise (%/h)', hint: '0–1000' },
  { key: 'minDevices', label: 'Min devices', hint: 'at least 1' },
];

/** A form for a staged deployment: payload, stages with their gates (typed, or said in words to the advisor), windows. */
export function NewDeploymentView(): JSX.Element {
  const rings = useResource((signal) => api<{ rings: { name: string }[] }>('/api/v1/rings', { signal }), []);
  const [name, setName] = useState('');
  const [type, setType] = useState('deploy');
  const [params, setParams] = useState('{\n  "version": "1.0.0"\n}');
  const [custom, setCustom] = useState(false);
  const [stages, setStages] = useState<StageForm[]>([]);
  const [windows, setWindows] = useState('');
  const [autoRollback, setAutoRollback] = useState(true);
  const [start, setStart] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [parsed, setParsed] = useState<Record<number, string>>({});
  const ringNames = rings.data?.rings.map((r) => r.name) ?? [];

  const placeErrors = errorsByPlace(error);
  const errAt = (place: string): string | undefined => placeErrors.get(place);

  const useCustom = (): void => {
    setCustom(true);
    if (stages.length === 0) setStages(ringNames.map((ring) => ({ ring, soakMinutes: '10', gate: {}, words: '' })));
  };
  const setStage = (i: number, change: Partial<StageForm>): void => setStages((s) => s.map((x, k) => (k === i ? { ...x, ...change } : x)));

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    let parsedParams: unknown;
    try {
      parsedParams = params.trim() === '' ? {} : JSON.parse(params);
    } catch {
      setError({ message: 'The parameters are not JSON.', errors: ['payload.params: must be JSON'] });
      return;
    }
    const body: Record<string, unknown> = { name, payload: { type, params: parsedParams }, autoRollback, start };
    if (custom) {
      body.plan = {
        stages: stages.map((s) => ({ ring: s.ring, soakMs: Math.round(Number(s.soakMinutes) * 60_000), ...(Object.keys(s.gate).length > 0 ? { gate: s.gate } : {}) })),
      };
    }
    if (windows.trim() !== '') {
      // "1-5 22:00-06:00": days (0 = Sunday) and a UTC time range, one per line.
      body.maintenanceWindows = windows
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          const [days = '', times = ''] = l.trim().split(/\s+/);
          const [a = 0, b = a] = days.split('-').map(Number);
          const [startAt = '', end = ''] = times.split('-');
          return { days: Array.from({ length: Math.max(0, b - a + 1) }, (_, k) => a + k), start: startAt, end };
        });
    }
    setBusy(true);
    try {
      const created = await post<{ id: string }>('/api/v1/deployments', body);
      navigate(`/deployments/${encodeURIComponent(created.id)}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const readWords = async (i: number): Promise<void> => {
    const s = stages[i];
    if (!s || s.words.trim() === '') return;
    try {
      const out = await post<{ gate: Record<string, number>; understood: { phrase: string; as: string }[]; notUnderstood: { phrase: string; why: string }[] }>('/api/v1/gating/parse', { text: s.words });
      setStage(i, { gate: { ...s.gate, ...out.gate } });
      const said = [
        ...out.understood.map((u) => `understood "${u.phrase}" as ${u.as}`),
        ...out.notUnderstood.map((u) => `not understood "${u.phrase}": ${u.why}`),
      ];
      setParsed((p) => ({ ...p, [i]: said.join('; ') }));
    } catch (err) {
      setParsed((p) => ({ ...p, [i]: (err as Error).message }));
    }
  };

  return (
    <Page title="New deployment">
      <form class="form" onSubmit={(e) => void submit(e)} data-testid="new-deployment">
        <label class="field">
          <span class="field-label">Name</span>
          <input value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required name="name" />
          {errAt('name') ? <span class="field-error">{errAt('name')}</span> : null}
        </label>
        <div class="row">
          <label class="field">
            <span class="field-label">Payload</span>
            <select value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)} name="type">
              {['deploy', 'process_data', 'health_check', 'analyze_risk', 'monitor'].map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
          <label class="field grow">
            <span class="field-label">Parameters (JSON)</span>
            <textarea rows={3} value={params} onInput={(e) => setParams((e.target as HTMLTextAreaElement).value)} name="params" />
            {errAt('payload.params') ? <span class="field-error">{errAt('payload.params')}</span> : null}
          </label>
        </div>
        <fieldset>
          <legend>Stages</legend>
          {!custom ? (
            <p>
              One stage per ring, in ring order ({ringNames.join(', ') || '…'}), with the default gates.{' '}
              <button type="button" onClick={useCustom}>
                Choose stages and gates
              </button>
            </p>
          ) : (
            stages.map((s, i) => (
              <div class="stage" key={i}>
                <div class="row">
                  <label class="field">
                    <span class="field-label">Ring</span>
                    <select value={s.ring} onChange={(e) => setStage(i, { ring: (e.target as HTMLSelectElement).value })}>
                      {ringNames.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                    {errAt(`plan.stages[${i}].ring`) ? <span class="field-error">{errAt(`plan.stages[${i}].ring`)}</span> : null}
                  </label>
                  <label class="field">
                    <span class="field-label">Soak (minutes)</span>
                    <input type="number" min="0" step="any" value={s.soakMinutes} onInput={(e) => setStage(i, { soakMinutes: (e.target as HTMLInputElement).value })} />
                  </label>
                  <button type="button" class="danger" onClick={() => setStages((all) => all.filter((_, k) => k !== i))}>
                    Remove
                  </button>
                </div>
                <div class="row wrap">
                  {GATE_FIELDS.map((f) => (
                    <label class="field small" key={f.key}>
                      <span class="field-label">{f.label}</span>
                      <input
                        type="number"
                        step="any"
                        placeholder={f.hint}
                        value={s.gate[f.key] ?? ''}
                        onInput={(e) => {
                          const v = (e.target as HTMLInputElement).value;
                          const gate = { ...s.gate };
                          if (v === '') delete gate[f.key];
                          else gate[f.key] = Number(v);
                          setStage(i, { gate });
                        }}
                      />
                      {errAt(`plan.stages[${i}].gate.${f.key}`) ? <span class="field-error">{errAt(`plan.stages[${i}].gate.${f.key}`)}</span> : null}
                    </label>
                  ))}
                </div>
                <div class="row">
                  <label class="field grow">
                    <span class="field-label">Gate in words (the advisor reads it into the fields above)</span>
                    <input
                      placeholder="halt if battery drain rises more than 5% per hour, or if more than 2% fail"
                      value={s.words}
                      onInput={(e) => setStage(i, { words: (e.target as HTMLInputElement).value })}
                    />
                  </label>
                  <button type="button" onClick={() => void readWords(i)}>
                    Read
                  </button>
                </div>
                {parsed[i] ? <p class="muted">{parsed[i]}</p> : null}
              </div>
            ))
          )}
          {custom ? (
            <button type="button" onClick={() => setStages((s) => [...s, { ring: ringNames[0] ?? '', soakMinutes: '10', gate: {}, words: '' }])}>
              Add a stage
            </button>
          ) : null}
        </fieldset>
        <label class="field">
          <span class="field-label">Maintenance windows</span>
          <textarea rows={2} placeholder={'1-5 22:00-06:00   (days 0 = Sunday to 6, UTC; one per line; empty: any time)'} value={windows} onInput={(e) => setWindows((e.target as HTMLTextAreaElement).value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={autoRollback} onChange={(e) => setAutoRollback((e.target as HTMLInputElement).checked)} /> Roll back automatically when a gate fails
        </label>
        <label class="check">
          <input type="checkbox" checked={start} onChange={(e) => setStart((e.target as HTMLInputElement).checked)} /> Start at once
        </label>
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy}>
          Create
        </button>
      </form>
    </Page>
  );
}

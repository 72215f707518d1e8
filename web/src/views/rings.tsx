import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, post, put, query } from '../api';
import { num, score, when } from '../format';
import { useResource } from '../hooks';
import { Link } from '../router';
import { useCan } from '../session';
import type { RingMove } from '../types';
import { Action, Bar, Card, ErrorNote, errorsByPlace, Field, Loading, Page, Table } from '../ui';

interface RingConfigRing {
  name: string;
  share: number;
  min?: number;
  max?: number;
  allowUnhealthy?: boolean;
}

interface RingConfig {
  rings: RingConfigRing[];
  pins: { rule: string; ring: string }[];
  holds: string[];
  policy: string;
  hysteresis: number;
  dwellMs: number;
}

interface RingsAnswer {
  policy: string;
  rings: { name: string; share: number; target: number; size: number; online: number; health: { p10: number | null; p50: number | null; p90: number | null; unhealthy: number; unknown: number }; bySite: Record<string, number>; byModel: Record<string, number> }[];
  unassigned: number;
  held: number;
  total: number;
  config: RingConfig;
}

function top(counts: Record<string, number>, n = 4): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${num(v)}`)
    .join(', ');
}

/** The ring configuration as a form (admins): each field shows the API's error for its place. */
function RingEditor(props: { config: RingConfig; onSaved: () => void }): JSX.Element {
  const [rings, setRings] = useState<RingConfigRing[]>(props.config.rings.map((r) => ({ ...r })));
  const [policy, setPolicy] = useState(props.config.policy);
  const [hysteresis, setHysteresis] = useState(String(props.config.hysteresis));
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const places = errorsByPlace(error);
  const setRing = (i: number, change: Partial<RingConfigRing>): void => setRings((all) => all.map((r, k) => (k === i ? { ...r, ...change } : r)));
  const numberOf = (v: string): number | undefined => (v.trim() === '' ? undefined : Number(v));
  const save = async (): Promise<void> => {
    setError(null);
    setSaved(null);
    const doc = {
      ...props.config,
      policy,
      hysteresis: Number(hysteresis),
      rings: rings.map((r) => {
        const out: Record<string, unknown> = { name: r.name, share: r.share };
        if (r.min !== undefined) out.min = r.min;
        if (r.max !== undefined) out.max = r.max;
        if (r.allowUnhealthy !== undefined) out.allowUnhealthy = r.allowUnhealthy;
        return out;
      }),
    };
    try {
      const out = await put<{ moves: number }>('/api/v1/rings', doc);
      setSaved(`Saved; ${num(out.moves)} devices moved.`);
      props.onSaved();
    } catch (err) {
      // Shown here, in full and at the fields, rather than beside the button.
      setError(err);
    }
  };
  return (
    <div data-testid="ring-editor">
      {rings.map((r, i) => (
        <div class="row wrap top" key={i}>
          <Field label="Name" error={places.get(`rings[${i}].name`)}>
            <input value={r.name} name={`rings[${i}].name`} onInput={(e) => setRing(i, { name: (e.target as HTMLInputElement).value })} />
          </Field>
          <Field label="Share (0–1)" error={places.get(`rings[${i}].share`) ?? places.get(`rings[${i}]`)}>
            <input value={String(r.share)} name={`rings[${i}].share`} inputMode="decimal" onInput={(e) => setRing(i, { share: Number((e.target as HTMLInputElement).value) })} />
          </Field>
          <Field label="Min" error={places.get(`rings[${i}].min`)}>
            <input value={r.min ?? ''} name={`rings[${i}].min`} inputMode="numeric" onInput={(e) => setRing(i, { min: numberOf((e.target as HTMLInputElement).value) })} />
          </Field>
          <Field label="Max" error={places.get(`rings[${i}].max`)}>
            <input value={r.max ?? ''} name={`rings[${i}].max`} inputMode="numeric" onInput={(e) => setRing(i, { max: numberOf((e.target as HTMLInputElement).value) })} />
          </Field>
          <button type="button" class="danger" onClick={() => setRings((all) => all.filter((_, k) => k !== i))}>
            Remove
          </button>
        </div>
      ))}
      <div class="row wrap">
        <button type="button" onClick={() => setRings((all) => [...all, { name: `ring${all.length + 1}`, share: 0 }])}>
          Add a ring
        </button>
        <Field label="Policy" error={places.get('policy')}>
          <select value={policy} onChange={(e) => setPolicy((e.target as HTMLSelectElement).value)}>
            {['health', 'representative'].map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Hysteresis (points)" error={places.get('hysteresis')}>
          <input value={hysteresis} inputMode="decimal" onInput={(e) => setHysteresis((e.target as HTMLInputElement).value)} />
        </Field>
      </div>
      {places.get('rings') ? <p class="field-error">{places.get('rings')}</p> : null}
      <ErrorNote error={error} />
      {saved ? <p class="ok-note">{saved}</p> : null}
      <Action role="admin" label="Save the configuration" kind="primary" testid="save-rings" run={save} />
    </div>
  );
}

export function RingsView(): JSX.Element {
  const r = useResource((signal) => api<RingsAnswer>('/api/v1/rings', { signal }), [], ['rings', 'agent'], 2000);
  const since = Date.now() - 3_600_000;
  const moves = useResource((signal) => api<{ moves: RingMove[] }>(`/api/v1/rings/moves${query({ since, limit: 200 })}`, { signal }), [], ['ring', 'rings'], 2000);
  const admin = useCan('admin');
  const [editing, setEditing] = useState(false);
  const g = r.data;
  if (!g) return <Page title="Rings">{r.error ? <ErrorNote error={r.error} /> : <Loading />}</Page>;
  return (
    <Page title="Rings" actions={<Action role="operator" label="Rebalance now" run={() => post('/api/v1/rings/rebalance', {}).then(r.reload)} />}>
      <ErrorNote error={r.error} />
      <p class="muted">
        Policy <strong>{g.policy}</strong> · {num(g.total)} devices · {num(g.unassigned)} unassigned · {num(g.held)} held
      </p>
      <Card title="Sizes and health">
        <Table
          testid="ring-sizes"
          rows={g.rings}
          keyOf={(x) => x.name}
          columns={[
            { label: 'Ring', render: (x) => <Link href={`/devices?ring=${x.name}`}>{x.name}</Link> },
            { label: 'Share', render: (x) => `${Math.round(x.share * 1000) / 10}%`, class: 'num' },
            { label: 'Size / target', render: (x) => `${num(x.size)} / ${num(x.target)}`, class: 'num' },
            { label: '', render: (x) => <Bar total={Math.max(x.size, x.target)} parts={[{ value: x.online, class: 'ok', label: 'online' }, { value: x.size - x.online, class: 'warn', label: 'offline' }, { value: Math.max(0, x.target - x.size), class: 'gap', label: 'below target' }]} /> },
            { label: 'p10 / p50 / p90', render: (x) => `${score(x.health.p10)} / ${score(x.health.p50)} / ${score(x.health.p90)}`, class: 'num' },
            { label: 'Failing rule', render: (x) => num(x.health.unhealthy), class: 'num' },
            { label: 'Sites', render: (x) => top(x.bySite) },
            { label: 'Models', render: (x) => top(x.byModel) },
          ]}
        />
      </Card>
      <Card title="Configuration">
        {admin && editing ? (
          <RingEditor config={g.config} onSaved={r.reload} />
        ) : (
          <>
            <pre class="config">{JSON.stringify(g.config, null, 2)}</pre>
            {admin ? (
              <button type="button" onClick={() => setEditing(true)} data-testid="edit-rings">
                Edit
              </button>
            ) : null}
          </>
        )}
      </Card>
      <Card title="Moves in the last hour">
        <Table
          testid="recent-moves"
          rows={[...(moves.data?.moves ?? [])].reverse()}
          keyOf={(m) => String(m.id)}
          empty="No device moved in the last hour."
          columns={[
            { label: 'When', render: (m) => when(m.at) },
            { label: 'Device', render: (m) => <Link href={`/devices/${encodeURIComponent(m.deviceId)}`}>{m.deviceId}</Link> },
            { label: 'From', render: (m) => m.from },
            { label: 'To', render: (m) => m.to },
            { label: 'Why', render: (m) => <span class="reason">{m.reason}</span> },
          ]}
        />
      </Card>
    </Page>
  );
}

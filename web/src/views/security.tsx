import type { JSX } from 'preact';
import { useContext, useState } from 'preact/hooks';
import { api, del, post, query } from '../api';
import { when } from '../format';
import { useResource } from '../hooks';
import { setQuery, useLocation } from '../router';
import { WhoContext } from '../session';
import { Action, Badge, Card, ErrorNote, Page, Pager, Table } from '../ui';

interface Token {
  id: string;
  name: string;
  role?: string;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  maxUses?: number | null;
  uses?: number;
  expiresAt?: string | null;
  requireApproval?: boolean;
}

interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  role: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number;
  address: string | null;
}

interface PendingAgent {
  slave_id: string;
  registered_at: string | null;
  device_info: { name?: string } | null;
}

/** A secret shown once, right after it was made. */
function Secret(props: { value: string | null }): JSX.Element | null {
  if (!props.value) return null;
  return (
    <p class="ok-note" data-testid="new-secret">
      Copy it now; it is not shown again: <code>{props.value}</code>
    </p>
  );
}

function ApiTokens(): JSX.Element {
  const who = useContext(WhoContext);
  const r = useResource((signal) => api<{ tokens: Token[] }>('/api/v1/tokens', { signal }), []);
  const [name, setName] = useState('');
  const [role, setRole] = useState('viewer');
  const [secret, setSecret] = useState<string | null>(null);
  return (
    <Card title="API tokens">
      <ErrorNote error={r.error} />
      <div class="row">
        <input placeholder="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} aria-label="token name" />
        <select value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)} aria-label="role">
          <option value="viewer">viewer</option>
          <option value="operator">operator</option>
          <option value="admin">admin</option>
        </select>
        <Action role="admin" label="Create" kind="primary" run={() => post<{ token: string }>('/api/v1/tokens', { name, role }).then((t) => { setSecret(t.token); r.reload(); })} />
      </div>
      <Secret value={secret} />
      <Table
        rows={r.data?.tokens ?? []}
        keyOf={(t) => t.id}
        empty={who.open ? 'No API token yet: the API is open on this machine.' : 'No API token stored (ADMIN_TOKEN comes from the environment and is not listed).'}
        columns={[
          { label: 'Name', render: (t) => t.name },
          { label: 'Role', render: (t) => t.role ?? '' },
          { label: 'Created', render: (t) => `${when(t.createdAt)} by ${t.createdBy}` },
          { label: '', render: (t) => (t.revokedAt ? `revoked ${when(t.revokedAt)}` : <Action role="admin" label="Revoke" kind="danger" confirm={`Revoke ${t.name}?`} run={() => del(`/api/v1/tokens/${t.id}`).then(r.reload)} />) },
        ]}
      />
    </Card>
  );
}

function EnrollmentTokens(): JSX.Element {
  const r = useResource((signal) => api<{ tokens: Token[] }>('/api/v1/enrollment-tokens', { signal }), []);
  const [name, setName] = useState('');
  const [maxUses, setMaxUses] = useState('');
  const [approval, setApproval] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  return (
    <Card title="Enrollment tokens">
      <ErrorNote error={r.error} />
      <div class="row">
        <input placeholder="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} aria-label="enrollment token name" />
        <input placeholder="max uses" value={maxUses} inputMode="numeric" onInput={(e) => setMaxUses((e.target as HTMLInputElement).value)} aria-label="max uses" />
        <label class="check">
          <input type="checkbox" checked={approval} onChange={(e) => setApproval((e.target as HTMLInputElement).checked)} /> agents wait for approval
        </label>
        <Action
          role="admin"
          label="Create"
          kind="primary"
          run={() =>
            post<{ token: string }>('/api/v1/enrollment-tokens', { name, ...(maxUses ? { maxUses: Number(maxUses) } : {}), requireApproval: approval }).then((t) => {
              setSecret(t.token);
              r.reload();
            })
          }
        />
      </div>
      <Secret value={secret} />
      <Table
        rows={r.data?.tokens ?? []}
        keyOf={(t) => t.id}
        empty="No enrollment token."
        columns={[
          { label: 'Name', render: (t) => t.name },
          { label: 'Uses', render: (t) => `${t.uses ?? 0}${t.maxUses ? ` / ${t.maxUses}` : ''}`, class: 'num' },
          { label: 'Expires', render: (t) => when(t.expiresAt) },
          { label: 'Approval', render: (t) => (t.requireApproval ? 'required' : 'no') },
          { label: '', render: (t) => (t.revokedAt ? `revoked ${when(t.revokedAt)}` : <Action role="admin" label="Revoke" kind="danger" confirm={`Revoke ${t.name}?`} run={() => del(`/api/v1/enrollment-tokens/${t.id}`).then(r.reload)} />) },
        ]}
      />
    </Card>
  );
}

function PendingAgents(): JSX.Element {
  const r = useResource((signal) => api<{ agents: PendingAgent[] }>('/api/v1/agents?approval=pending', { signal }), [], ['agent'], 1000);
  return (
    <Card title="Agents waiting for approval">
      <ErrorNote error={r.error} />
      <Table
        testid="pending-agents"
        rows={r.data?.agents ?? []}
        keyOf={(a) => a.slave_id}
        empty="No agent is waiting."
        columns={[
          { label: 'Agent', render: (a) => a.slave_id },
          { label: 'Device', render: (a) => a.device_info?.name ?? '–' },
          { label: 'Enrolled', render: (a) => when(a.registered_at) },
          { label: '', render: (a) => <Action role="admin" label="Approve" kind="primary" run={() => post(`/api/v1/agents/${encodeURIComponent(a.slave_id)}/approve`, {}).then(r.reload)} /> },
        ]}
      />
    </Card>
  );
}

function AuditLog(): JSX.Element {
  const { query: q } = useLocation();
  const cursors = q.get('audit')?.split(',').filter(Boolean) ?? [];
  const cursor = cursors.at(-1);
  const actor = q.get('actor') ?? '';
  const r = useResource((signal) => api<{ entries: AuditEntry[]; nextCursor: string | null }>(`/api/v1/audit${query({ limit: 50, cursor, actor })}`, { signal }), [cursor, actor]);
  return (
    <Card title="Audit log">
      <ErrorNote error={r.error} />
      <input placeholder="actor" value={actor} onChange={(e) => setQuery({ actor: (e.target as HTMLInputElement).value, audit: undefined })} aria-label="actor" />
      <Table
        testid="audit-log"
        rows={r.data?.entries ?? []}
        keyOf={(e) => String(e.id)}
        columns={[
          { label: 'When', render: (e) => when(e.at) },
          { label: 'Actor', render: (e) => `${e.actor}${e.role ? ` (${e.role})` : ''}` },
          { label: 'Action', render: (e) => <code>{e.action}</code> },
          { label: 'Target', render: (e) => e.target ?? '' },
          { label: 'Outcome', render: (e) => <Badge value={e.outcome} /> },
          { label: 'Status', render: (e) => e.status, class: 'num' },
          { label: 'From', render: (e) => e.address ?? '' },
        ]}
      />
      <Pager cursors={cursors} next={r.data?.nextCursor ?? null} onPage={(c) => setQuery({ audit: c.join(',') })} />
    </Card>
  );
}

/** Agents pending approval, enrollment tokens, API tokens and the audit log (admins). */
export function SecurityView(): JSX.Element {
  return (
    <Page title="Agents and security">
      <PendingAgents />
      <EnrollmentTokens />
      <ApiTokens />
      <AuditLog />
    </Page>
  );
}

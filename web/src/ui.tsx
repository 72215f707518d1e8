import type { ComponentChildren, JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError } from './api';
import { num } from './format';
import type { Role } from './session';
import { useCan } from './session';

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }): JSX.Element {
  return (
    <section class="page">
      <header class="page-head">
        <h1>{props.title}</h1>
        {props.actions ? <div class="actions">{props.actions}</div> : null}
      </header>
      {props.children}
    </section>
  );
}

export function Card(props: { title?: string; children: ComponentChildren; class?: string; id?: string }): JSX.Element {
  return (
    <div class={`card ${props.class ?? ''}`} id={props.id}>
      {props.title ? <h2>{props.title}</h2> : null}
      {props.children}
    </div>
  );
}

export function Stat(props: { label: string; value: number | string; tone?: 'good' | 'warn' | 'bad' | undefined; hint?: string; testid?: string }): JSX.Element {
  return (
    <div class={`stat ${props.tone ?? ''}`} title={props.hint} data-testid={props.testid}>
      <div class="stat-value">{typeof props.value === 'number' ? num(props.value) : props.value}</div>
      <div class="stat-label">{props.label}</div>
    </div>
  );
}

/** An error from the API, in its words and with its code. */
export function ErrorNote(props: { error: unknown }): JSX.Element | null {
  if (props.error === null || props.error === undefined) return null;
  const e = props.error as Error;
  const code = e instanceof ApiError ? e.code : null;
  return (
    <div class="error" role="alert">
      {e.message}
      {code ? <code class="code">{code}</code> : null}
      {e instanceof ApiError && e.errors.length > 1 ? (
        <ul>
          {e.errors.map((x) => (
            <li key={x}>{x}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Loading(): JSX.Element {
  return <div class="loading">Loading…</div>;
}

/** A bar of parts (executions by state, a ring's size against its target). */
export function Bar(props: { parts: { value: number; class: string; label: string }[]; total: number; testid?: string }): JSX.Element {
  const total = Math.max(props.total, 1);
  return (
    <div class="bar" data-testid={props.testid} title={props.parts.map((p) => `${p.label}: ${num(p.value)}`).join(', ')}>
      {props.parts.map((p) =>
        p.value > 0 ? <span key={p.label} class={`bar-part ${p.class}`} style={{ width: `${(p.value / total) * 100}%` }} /> : null,
      )}
    </div>
  );
}

export function Badge(props: { value: string; testid?: string }): JSX.Element {
  return (
    <span class={`badge badge-${props.value.replace(/[^a-z_]/g, '')}`} data-testid={props.testid}>
      {props.value.replace(/_/g, ' ')}
    </span>
  );
}

/**
 * A button for an action that needs `role`: absent for a session without it. It shows the API's error beside
 * it when the action is refused, and is disabled while the action runs.
 */
export function Action(props: {
  role: Role;
  label: string;
  run: () => Promise<unknown>;
  confirm?: string;
  kind?: 'primary' | 'danger';
  disabled?: boolean;
  testid?: string;
}): JSX.Element | null {
  const can = useCan(props.role);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!can) return null;
  return (
    <span class="action">
      <button
        type="button"
        class={props.kind ?? ''}
        disabled={busy || props.disabled}
        data-testid={props.testid}
        onClick={() => {
          if (props.confirm && !window.confirm(props.confirm)) return;
          setBusy(true);
          setError(null);
          props.run().then(
            () => setBusy(false),
            (err: unknown) => {
              setBusy(false);
              setError(err);
            },
          );
        }}
      >
        {props.label}
      </button>
      {error ? <ErrorNote error={error} /> : null}
    </span>
  );
}

export interface Column<T> {
  label: string;
  render: (row: T) => ComponentChildren;
  class?: string;
}

export function Table<T>(props: { rows: T[]; columns: Column<T>[]; keyOf: (row: T) => string; empty?: string; testid?: string }): JSX.Element {
  return (
    <div class="table-wrap">
      <table data-testid={props.testid}>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c.label} class={c.class}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.length === 0 ? (
            <tr>
              <td colSpan={props.columns.length} class="empty">
                {props.empty ?? 'Nothing here.'}
              </td>
            </tr>
          ) : (
            props.rows.map((row) => (
              <tr key={props.keyOf(row)}>
                {props.columns.map((c) => (
                  <td key={c.label} class={c.class}>
                    {c.render(row)}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

/** Cursor paging: the cursors of the pages before this one are kept, so Back works without the server's help. */
export function Pager(props: { cursors: string[]; next: string | null; onPage: (cursors: string[]) => void }): JSX.Element {
  const { cursors, next, onPage } = props;
  return (
    <div class="pager">
      <button type="button" disabled={cursors.length === 0} onClick={() => onPage(cursors.slice(0, -1))}>
        ← Previous
      </button>
      <span>Page {cursors.length + 1}</span>
      <button type="button" disabled={next === null} onClick={() => next !== null && onPage([...cursors, next])}>
        Next →
      </button>
    </div>
  );
}

/** A labelled form field, with the API's error for it (matched by its place, e.g. `rings[1].share`). */
export function Field(props: { label: string; error?: string | undefined; children: ComponentChildren; hint?: string }): JSX.Element {
  return (
    <label class={`field ${props.error ? 'invalid' : ''}`}>
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint ? <span class="hint">{props.hint}</span> : null}
      {props.error ? (
        <span class="field-error" role="alert">
          {props.error}
        </span>
      ) : null}
    </label>
  );
}

/** An error's `errors` ("place: problem", as the API lists them, or a form's own) by place. */
export function errorsByPlace(err: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const errors = err instanceof ApiError ? err.errors : ((err as { errors?: unknown } | null)?.errors ?? []);
  if (!Array.isArray(errors)) return out;
  for (const e of errors as string[]) {
    const colon = e.indexOf(': ');
    if (colon > 0) out.set(e.slice(0, colon), e.slice(colon + 2));
  }
  return out;
}

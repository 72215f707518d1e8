import type { JSX } from 'preact';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, session } from './api';
import { live, type LiveStatus } from './live';
import { Link, match, useLocation } from './router';
import type { Who } from './session';
import { WhoContext } from './session';
import './style.css';
import { DeploymentsView, DeploymentView, NewDeploymentView } from './views/deployments';
import { DevicesView, DeviceView } from './views/devices';
import { OverviewView } from './views/overview';
import { RingsView } from './views/rings';
import { SecurityView } from './views/security';
import { TasksView, TaskView } from './views/tasks';

const NAV = [
  { href: '/', label: 'Overview' },
  { href: '/devices', label: 'Devices' },
  { href: '/rings', label: 'Rings' },
  { href: '/deployments', label: 'Deployments' },
  { href: '/tasks', label: 'Tasks' },
  { href: '/security', label: 'Agents and security', admin: true },
];

function Routes(props: { path: string; who: Who }): JSX.Element {
  const p = props.path;
  let m: Record<string, string> | null;
  if (p === '/' || p === '') return <OverviewView />;
  if (match('/devices', p)) return <DevicesView />;
  if ((m = match('/devices/:id', p))) return <DeviceView id={m.id as string} />;
  if (match('/rings', p)) return <RingsView />;
  if (match('/deployments', p)) return <DeploymentsView />;
  if (match('/deployments/new', p)) return <NewDeploymentView />;
  if ((m = match('/deployments/:id', p))) return <DeploymentView id={m.id as string} />;
  if (match('/tasks', p)) return <TasksView />;
  if ((m = match('/tasks/:id', p))) return <TaskView id={m.id as string} />;
  if (match('/security', p)) return props.who.role === 'admin' ? <SecurityView /> : <p class="error">Only an admin's token sees this page.</p>;
  return <p class="error">No such page.</p>;
}

/** Asks for an API token: kept for this tab's session only. */
function Login(props: { error: string | null; onToken: (t: string) => void }): JSX.Element {
  const [token, setToken] = useState('');
  return (
    <div class="login">
      <form
        class="card"
        data-testid="login"
        onSubmit={(e) => {
          e.preventDefault();
          props.onToken(token.trim());
        }}
      >
        <h1>AWS Orchestrator</h1>
        <p>This orchestrator asks for an API token. It is kept for this browser tab only.</p>
        <input type="password" autoComplete="off" placeholder="API token" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} aria-label="API token" autoFocus />
        {props.error ? (
          <p class="error" role="alert">
            {props.error}
          </p>
        ) : null}
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </div>
  );
}

function LiveBadge(): JSX.Element {
  const [status, setStatus] = useState<LiveStatus>(live.status);
  useEffect(() => live.onStatus(setStatus), []);
  return (
    <span class={`live live-${status}`} data-testid="live-status" title="The event stream: views update as the orchestrator changes">
      {status === 'live' ? '● live' : status === 'paused' ? '❚❚ paused' : status === 'offline' ? '○ reconnecting' : status === 'idle' ? '○ idle' : '○ connecting'}
    </span>
  );
}

function App(): JSX.Element {
  const { path } = useLocation();
  const [who, setWho] = useState<Who | null>(null);
  const [needToken, setNeedToken] = useState(false);
  const [loginError, setLoginError] = useState<string | null>(null);

  const check = (): void => {
    api<Who>('/api/v1/whoami').then(
      (w) => {
        setWho(w);
        setNeedToken(false);
        setLoginError(null);
      },
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) {
          if (session.token) setLoginError(err.message);
          session.token = null;
          setNeedToken(true);
        } else setLoginError((err as Error).message);
      },
    );
  };
  useEffect(() => {
    check();
    return session.onUnauthorized(() => {
      session.token = null;
      setWho(null);
      setNeedToken(true);
    });
  }, []);

  if (needToken) {
    return (
      <Login
        error={loginError}
        onToken={(t) => {
          session.token = t;
          live.restart();
          check();
        }}
      />
    );
  }
  if (!who) return <div class="loading">{loginError ?? 'Connecting…'}</div>;
  return (
    <WhoContext.Provider value={who}>
      <div class="shell">
        <nav class="nav">
          <div class="brand">AWS Orchestrator</div>
          {NAV.filter((n) => !n.admin || who.role === 'admin').map((n) => (
            <Link key={n.href} href={n.href} class={(n.href === '/' ? path === '/' : path.startsWith(n.href)) ? 'active' : ''}>
              {n.label}
            </Link>
          ))}
          <div class="spacer" />
          <LiveBadge />
          <span class="who" data-testid="who">
            {who.open ? 'open (this machine)' : `${who.actor} · ${who.role}`}
          </span>
          {!who.open ? (
            <button
              type="button"
              onClick={() => {
                session.token = null;
                location.reload();
              }}
            >
              Sign out
            </button>
          ) : null}
        </nav>
        <main>
          <Routes path={path} who={who} />
        </main>
      </div>
    </WhoContext.Provider>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);

import { describe, expect, it } from 'vitest';
import { EventJournal, parseKinds } from '../../src/api/event-journal.js';
import type { OrchestratorEvents } from '../../src/domain/events.js';
import { TypedEventBus } from '../../src/util/event-bus.js';
import type { ServerSentEvent } from '../../src/util/sse-parser.js';
import { SseParser } from '../../src/util/sse-parser.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A subscriber that parses what it is sent, as a client would. */
function client(kinds: Parameters<typeof parseKinds>[0] = undefined, options: { refuseAfter?: number } = {}) {
  const events: ServerSentEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  let writes = 0;
  let ended = false;
  const parsed = parseKinds(kinds);
  if (parsed !== null && 'error' in parsed) throw new Error(parsed.error);
  return {
    events,
    get writes() {
      return writes;
    },
    get ended() {
      return ended;
    },
    sub: {
      kinds: parsed,
      write(chunk: string) {
        writes++;
        parser.push(chunk);
        return options.refuseAfter === undefined || writes <= options.refuseAfter;
      },
      end() {
        ended = true;
      },
    },
  };
}

describe('the event stream journal', () => {
  it('records only while a stream is open (and for a while after), so an unwatched fleet pays nothing', async () => {
    const bus = new TypedEventBus<OrchestratorEvents>();
    const journal = new EventJournal({ events: bus, now: () => 1000, retainMs: 20 });
    bus.emit('agent.online', { agentId: 'before' });
    expect(journal.recording).toBe(false);
    expect(journal.lastId()).toBeNull();
    const c = client();
    const off = journal.subscribe(c.sub, undefined);
    expect(journal.recording).toBe(true);
    bus.emit('agent.online', { agentId: 'a' });
    await turn();
    expect(c.events.map((e) => [e.event, JSON.parse(e.data) as unknown])).toEqual([['agent.online', { at: 1000, agentId: 'a' }]]);
    off();
    // Still recording for a while: a client that reconnects at once resumes.
    bus.emit('agent.offline', { agentId: 'a', silentMs: 5 });
    expect(journal.recording).toBe(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(journal.recording).toBe(false);
    // Resuming across the gap where nothing was recorded is a reset, not a silent loss.
    const late = client();
    journal.subscribe(late.sub, c.events[0]?.id);
    await turn();
    expect(late.events.map((e) => e.event)).toEqual(['reset']);
    journal.close();
    expect(late.ended).toBe(true);
  });

  it('batches a burst into one write per stream per turn, and filters by kind and family', async () => {
    const bus = new TypedEventBus<OrchestratorEvents>();
    const journal = new EventJournal({ events: bus, now: () => 5 });
    const all = client();
    const deployments = client('deployment,agent.removed');
    journal.subscribe(all.sub, undefined);
    journal.subscribe(deployments.sub, undefined);
    await turn();
    const writesBefore = all.writes;
    for (let i = 0; i < 100; i++) bus.emit('agent.online', { agentId: `a${i}` });
    bus.emit('deployment.changed', { deploymentId: 'd', status: 'paused', action: 'pause' });
    bus.emit('agent.removed', { agentId: 'x' });
    await turn();
    expect(all.writes - writesBefore).toBe(1);
    expect(all.events).toHaveLength(102);
    expect(deployments.events.map((e) => e.event)).toEqual(['deployment.changed', 'agent.removed']);
    expect(parseKinds('nope')).toEqual({ error: expect.stringContaining('"nope"') as unknown });
    journal.close();
  });

  it('keeps task events as the task was when they happened, without its parameters or result', async () => {
    const bus = new TypedEventBus<OrchestratorEvents>();
    const journal = new EventJournal({ events: bus, now: () => 5 });
    const c = client('task');
    journal.subscribe(c.sub, undefined);
    const task = { id: 't1', type: 'deploy', status: 'pending', priority: 1, attempts: 0, assignedTo: null, error: null, createdAt: 1, startedAt: null, completedAt: null, parameters: { secret: 's' }, result: { big: 'r' } };
    bus.emit('task.submitted', { task } as unknown as OrchestratorEvents['task.submitted']);
    task.status = 'in_progress';
    await turn();
    const data = JSON.parse(c.events[0]?.data ?? '{}') as { task: Record<string, unknown> };
    expect(data.task).toEqual({ id: 't1', type: 'deploy', status: 'pending', priority: 1, attempts: 0, agentId: null, error: null, createdAt: 1, startedAt: null, completedAt: null });
    journal.close();
  });

  it('replays from a Last-Event-ID within the buffer; past it, and for more at once than it holds, a reset', async () => {
    const bus = new TypedEventBus<OrchestratorEvents>();
    const journal = new EventJournal({ events: bus, now: () => 5, capacity: 100 });
    const keep = client();
    journal.subscribe(keep.sub, undefined);
    for (let i = 0; i < 10; i++) bus.emit('agent.online', { agentId: `a${i}` });
    await turn();
    const fifth = keep.events[4]?.id as string;
    const resumed = client();
    journal.subscribe(resumed.sub, fifth);
    await turn();
    expect(resumed.events.map((e) => (JSON.parse(e.data) as { agentId: string }).agentId)).toEqual(['a5', 'a6', 'a7', 'a8', 'a9']);
    // 150 more: the fifth has left the buffer of 100.
    for (let i = 10; i < 160; i++) bus.emit('agent.online', { agentId: `a${i}` });
    await turn();
    const tooOld = client();
    journal.subscribe(tooOld.sub, fifth);
    await turn();
    expect(tooOld.events[0]?.event).toBe('reset');
    // A rebalance that moves more devices at once than the buffer holds: one reset instead of a flood.
    const burst = client('ring');
    journal.subscribe(burst.sub, undefined);
    for (let i = 0; i < 250; i++) bus.emit('ring.moved', { move: { agentId: `d${i}`, from: 'dev', to: 'prod', reason: 'health', at: 1 } });
    await turn();
    expect(burst.events.map((e) => e.event)).toEqual(['reset']);
    // The next event after the burst is sent as usual.
    bus.emit('ring.moved', { move: { agentId: 'after', from: 'dev', to: 'prod', reason: 'health', at: 2 } });
    await turn();
    expect(burst.events.map((e) => e.event)).toEqual(['reset', 'ring.moved']);
    journal.close();
  });

  it('drops a stream whose client reads too slowly (its write refused), and keeps the others', async () => {
    const bus = new TypedEventBus<OrchestratorEvents>();
    const journal = new EventJournal({ events: bus, now: () => 5 });
    const slow = client(undefined, { refuseAfter: 1 });
    const ok = client();
    journal.subscribe(slow.sub, undefined);
    journal.subscribe(ok.sub, undefined);
    await turn();
    bus.emit('agent.online', { agentId: 'a' });
    await turn();
    expect(slow.ended).toBe(true);
    expect(journal.size).toBe(1);
    bus.emit('agent.online', { agentId: 'b' });
    await turn();
    expect(ok.events.map((e) => (JSON.parse(e.data) as { agentId: string }).agentId)).toEqual(['a', 'b']);
    journal.close();
  });
});

describe('the SSE parser', () => {
  it('follows the standard: line ends of every kind across chunks, comments, multi-line data, ids carried over', () => {
    const out: ServerSentEvent[] = [];
    const p = new SseParser((e) => out.push(e));
    p.push(': hello\r\nretry: 1500\r\nid: 1\r\nevent: a\r\ndata: x\r');
    p.push('\ndata: y\n\ndata:z\r\rid\n');
    p.push('event: b\ndata: {"k":1}\n');
    p.push('\nevent: empty\n\n');
    expect(out).toEqual([
      { event: 'a', data: 'x\ny', id: '1' },
      { event: 'message', data: 'z', id: '1' },
      { event: 'b', data: '{"k":1}', id: '' },
    ]);
    expect(p.retryMs).toBe(1500);
    expect(p.id).toBe('');
  });
});

import { describe, expect, it } from 'vitest';
import type { AnyEnvelope } from '../../src/protocol/envelope.js';
import { MESSAGE_TYPES } from '../../src/protocol/envelope.js';
import { localWire } from '../../src/protocol/local-link.js';
import { ReliableEndpoint } from '../../src/protocol/reliable-endpoint.js';
import { FakeClock } from '../../src/util/clock.js';
import { seededRng } from '../../src/domain/random.js';

function pair(clock: FakeClock, drop: (e: AnyEnvelope) => boolean) {
  const gotA: AnyEnvelope[] = [];
  const gotB: AnyEnvelope[] = [];
  const a: ReliableEndpoint = new ReliableEndpoint({
    id: 'master',
    peerId: 'agent',
    clock,
    wire: localWire((e) => b.receive(e), { drop }),
    onMessage: (e) => {
      gotA.push(e);
    },
  });
  const b: ReliableEndpoint = new ReliableEndpoint({
    id: 'agent',
    peerId: 'master',
    clock,
    wire: localWire((e) => a.receive(e), { drop }),
    onMessage: (e) => {
      gotB.push(e);
    },
  });
  return { a, b, gotA, gotB };
}

describe('reliable endpoint', () => {
  it('carries the seed envelope fields and types', async () => {
    const clock = new FakeClock();
    const { a, gotB } = pair(clock, () => false);
    a.send('ring_assignment', { ring: 'canary', reason: 'test' });
    await clock.advance(10);
    expect(gotB).toHaveLength(1);
    const env = gotB[0] as AnyEnvelope;
    expect(Object.keys(env).sort()).toEqual(['message_id', 'message_type', 'payload', 'receiver_id', 'sender_id', 'timestamp']);
    expect(env).toMatchObject({ message_type: 'ring_assignment', sender_id: 'master', receiver_id: 'agent', timestamp: new Date(clock.now() - 10).toISOString() });
    expect(MESSAGE_TYPES).toHaveLength(11);
  });

  it('what crosses an in-process link is frozen, so neither side can change what the other sees', async () => {
    const clock = new FakeClock();
    const { a, gotB } = pair(clock, () => false);
    const params = { data: [1, 2], nested: { k: 'v' } };
    a.send('task_assignment', { task_id: 't', task_type: 'process_data', parameters: params, attempt: 1, timeout_ms: 1000 });
    await clock.advance(10);
    const got = gotB[0] as AnyEnvelope & { message_type: 'task_assignment' };
    expect(() => {
      (got.payload.parameters as { data: number[] }).data.push(3);
    }).toThrow(TypeError);
    expect(() => {
      (got.payload.parameters.nested as { k: string }).k = 'changed';
    }).toThrow(TypeError);
    expect(params).toEqual({ data: [1, 2], nested: { k: 'v' } });
  });

  it('retransmits until acknowledged and processes each message once, though the link loses half of everything', async () => {
    const clock = new FakeClock();
    const rng = seededRng(7);
    const { a, b, gotB } = pair(clock, () => rng() < 0.5);
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) ids.add(a.send('modify_metrics', { reason: `m${i}`, adjustments: [] }));
    // Retransmission backs off to every 10 s; five minutes gives each message about 30 tries.
    await clock.advance(300_000);
    expect(gotB.map((e) => e.message_id).sort()).toEqual([...ids].sort());
    expect(a.unacknowledged).toBe(0);
    expect(a.stats.retransmitted).toBeGreaterThan(0);
    // Lost acknowledgements made the sender repeat messages that had arrived: seen and dropped as duplicates.
    expect(b.stats.duplicates).toBeGreaterThan(0);
    expect(b.stats.received).toBe(50);
  });

  it('acknowledges a message only once its handler has finished, and reprocesses it if the handler failed', async () => {
    const clock = new FakeClock();
    let fail = true;
    let release: () => void = () => undefined;
    const handled: string[] = [];
    const a: ReliableEndpoint = new ReliableEndpoint({ id: 'm', peerId: 'x', clock, wire: localWire((e) => b.receive(e)), onMessage: () => undefined });
    const b: ReliableEndpoint = new ReliableEndpoint({
      id: 'x',
      peerId: 'm',
      clock,
      wire: localWire((e) => a.receive(e)),
      onMessage: (e) => {
        handled.push(e.message_id);
        if (fail) {
          fail = false;
          return Promise.reject(new Error('disk full'));
        }
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    const id = a.send('shutdown', { reason: 'x' });
    await clock.advance(10);
    expect(handled).toEqual([id]);
    expect(a.unacknowledged).toBe(1);
    // Retransmitted after the failure: handled again, and held until the handler finishes.
    await clock.advance(1000);
    expect(handled).toEqual([id, id]);
    await clock.advance(5000);
    expect(handled).toEqual([id, id]);
    expect(a.unacknowledged).toBe(1);
    release();
    await clock.advance(10);
    expect(a.unacknowledged).toBe(0);
  });

  it('counts what was never acknowledged as dropped when closed', async () => {
    const clock = new FakeClock();
    const { a } = pair(clock, () => true);
    a.send('shutdown', { reason: 'x' });
    a.send('shutdown', { reason: 'y' });
    a.send('heartbeat', { seq: 1, metrics: { battery: 1, charging: false, cpu: 1, memory: 1, disk: 1 }, running_tasks: [] }, { reliable: false });
    await clock.advance(5000);
    expect(a.unacknowledged).toBe(2);
    a.close();
    expect(a.stats).toMatchObject({ sent: 3, dropped: 2 });
    expect(clock.pendingTimers()).toBe(0);
  });
});

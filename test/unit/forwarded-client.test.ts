import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { forwardedHeader, requestClient } from '../../src/api/forwarder.js';

describe("a forwarded request's client", () => {
  const key = randomBytes(32);

  it('is the socket when the request was not forwarded', () => {
    expect(requestClient(undefined, '10.0.0.9', key)).toEqual({ address: '10.0.0.9', remote: false });
  });

  it("is the follower's word when signed with the replicas' key: its client's address, local or not", () => {
    expect(requestClient(forwardedHeader(key, 'host-1-ab', '192.0.2.7', false), '10.0.0.2', key)).toEqual({ address: '192.0.2.7', remote: true });
    expect(requestClient(forwardedHeader(key, 'host-1-ab', '127.0.0.1', true), '127.0.0.1', key)).toEqual({ address: '127.0.0.1', remote: false });
    expect(requestClient(forwardedHeader(key, 'host-1-ab', '2001:db8::7', false), '10.0.0.2', key)).toEqual({ address: '2001:db8::7', remote: true });
  });

  it('is the socket, remote, when the word is forged, altered, signed with another key, or when there is no key', () => {
    const signed = forwardedHeader(key, 'host-1-ab', '192.0.2.7', true);
    const altered = signed.replace('192.0.2.7', '192.0.2.8');
    for (const [header, k] of [
      [altered, key],
      [forwardedHeader(randomBytes(32), 'host-1-ab', '192.0.2.7', true), key],
      ['intruder;for=192.0.2.7;local;sig=', key],
      ['intruder;for=192.0.2.7;sig=AAAA', key],
      [signed, null],
    ] as const) {
      expect(requestClient(header, '10.0.0.2', k), header).toEqual({ address: '10.0.0.2', remote: true });
    }
  });

  it('keeps the older unsigned word: `;local` from a follower on loopback', () => {
    expect(requestClient('host-1-ab;local', '127.0.0.1', null)).toEqual({ address: '127.0.0.1', remote: false });
    expect(requestClient('host-1-ab', '127.0.0.1', key)).toEqual({ address: '127.0.0.1', remote: true });
  });
});

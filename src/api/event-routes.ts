import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { EVENT_KINDS } from '../domain/events.js';
import { OrchestratorError } from '../domain/errors.js';
import type { EventJournal } from './event-journal.js';
import { parseKinds } from './event-journal.js';
import { errors } from './openapi.js';
import { HSTS, SECURITY_HEADERS } from './security-hooks.js';

/** A stream whose client has not read this much is closed (the client resumes from its last id). */
const MAX_UNREAD = 4 * 1024 * 1024;

const Query = Type.Object(
  {
    kinds: Type.Optional(
      Type.String({
        maxLength: 2000,
        description: `comma-separated event kinds or families (the part before the dot: ${[...new Set(EVENT_KINDS.map((k) => k.slice(0, k.indexOf('.'))))].join(', ')}); every kind when absent`,
      }),
    ),
  },
  { additionalProperties: false },
);

/** `GET /api/v1/events`: the event map as server-sent events (see event-journal.ts and docs/api.md). */
export function eventRoutes(journal: EventJournal, tls: boolean): FastifyPluginAsync {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    ...(tls ? { 'strict-transport-security': HSTS } : {}),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    // nginx and its kin pass each message on at once instead of buffering the stream.
    'x-accel-buffering': 'no',
  };
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.get('/api/v1/events', {
      schema: {
        operationId: 'streamEvents',
        summary: 'The live event stream (server-sent events)',
        description:
          'Every event of the event map as it happens: `id`, `event` (its kind) and `data` (JSON with `at`, ms since the epoch, and the event\'s fields; a task event carries the task\'s state, not its parameters or result). ' +
          'Send `Last-Event-ID` (or `lastEventId` in the query) to resume after a lost connection: the events since are replayed while the server still keeps them (the last 10,000), else the stream begins with a `reset` event and the client should reload what it shows. ' +
          'A comment line every 15 s keeps proxies from closing it.',
        tags: ['events'],
        querystring: Type.Object({ ...Query.properties, lastEventId: Type.Optional(Type.String({ maxLength: 100 })) }, { additionalProperties: false }),
        response: {
          200: { description: 'the stream: `id`, `event` and `data` lines per event', content: { 'text/event-stream': { schema: Type.String() } } },
          ...errors({ 400: ['ORCH_VALIDATION'] }),
        },
      },
    }, (request, reply) => {
      const kinds = parseKinds(request.query.kinds);
      if (kinds !== null && 'error' in kinds) throw new OrchestratorError('ORCH_VALIDATION', kinds.error);
      const header = request.headers['last-event-id'];
      const lastEventId = (Array.isArray(header) ? header[0] : header) ?? request.query.lastEventId;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, headers);
      // HTTP/2 answers (node's compatibility layer) buffer in their stream; HTTP/1 ones in themselves.
      const buffered = res as unknown as { writableLength?: number; stream?: { writableLength: number } };
      const unread = (): number => buffered.stream?.writableLength ?? buffered.writableLength ?? 0;
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        res.end();
      };
      const unsubscribe = journal.subscribe(
        {
          kinds,
          write: (chunk) => {
            if (ended || res.destroyed) return false;
            res.write(chunk);
            if (unread() <= MAX_UNREAD) return true;
            // Its client reads too slowly: closed at once (it reconnects and resumes), not after a flush.
            ended = true;
            res.destroy();
            return false;
          },
          end,
        },
        lastEventId,
      );
      res.on('close', () => {
        ended = true;
        unsubscribe();
      });
    });
  };
}

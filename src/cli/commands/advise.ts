import type { Command } from 'commander';
import { usage } from '../client/errors.js';
import { path } from '../client/http.js';
import { ago, keyValues, percent, table } from '../client/output.js';
import { action, choice, clientOf, clientOptions } from '../client/options.js';
import type { PagingFlags } from '../client/paging.js';
import { pagingOptions, printListing, wanted } from '../client/paging.js';
import type { Advice } from '../client/types.js';

/** Advice may wait for a model up to ADVISOR_TIMEOUT (at most 10 minutes), then the analyser's stands. */
const ADVICE_TIMEOUT_MS = 11 * 60_000;

interface AdviseFlags {
  deployment?: string;
  ring?: string;
  fleet?: boolean;
}

/** `advise [--deployment ID | --ring NAME | --fleet]`, `advise list|show|apply`: the advisor (docs/advisor.md). */
export function registerAdvise(program: Command): void {
  const advise = clientOptions(
    program
      .command('advise')
      .description("ask the advisor (operator): on a deployment (continue, pause, halt or rollback), a ring or the fleet (risks and proposed ring moves), with its evidence; stored, and applied only by advise apply")
      .option('--deployment <id>', 'advice on this deployment')
      .option('--ring <name>', 'advice on this ring')
      .option('--fleet', 'advice on the whole fleet (the default)'),
  ).action(
    action(async (opts: AdviseFlags, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const given = [opts.deployment, opts.ring, opts.fleet].filter((v) => v !== undefined).length;
      if (given > 1) throw usage('--deployment, --ring and --fleet: give one subject');
      const subject = opts.deployment !== undefined ? { deployment: opts.deployment } : opts.ring !== undefined ? { ring: opts.ring } : { fleet: true };
      const advice = await api.post<Advice>('/api/v1/advice', { subject }, { timeoutMs: ADVICE_TIMEOUT_MS });
      if (out.json) out.jsonLine(advice);
      else out.lines(renderAdvice(advice));
    }),
  );

  clientOptions(
    pagingOptions(
      advise
        .command('list')
        .description('advice given so far, newest first')
        .option('--subject <subject>', 'deployment:<id>, ring:<name> or fleet')
        .option('--trigger <trigger>', 'request (asked for), halt (written when a deployment halted) or watch (ADVISOR_AUTO=halt)'),
      20,
      'pieces of advice',
    ),
  ).action(
    action(async (opts: PagingFlags & { subject?: string; trigger?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const trigger = choice('--trigger', opts.trigger, ['request', 'halt', 'watch'] as const);
      if (opts.subject !== undefined && !/^(deployment:.{1,200}|ring:.{1,32}|fleet)$/.test(opts.subject)) throw usage(`--subject: deployment:<id>, ring:<name> or fleet (got "${opts.subject}")`);
      const want = wanted(opts, 20);
      const fetchPage = async (cursor: string | undefined, limit: number) => {
        const page = await api.get<{ advice: Advice[]; nextCursor: string | null }>('/api/v1/advice', { subject: opts.subject, trigger, limit, cursor });
        return { items: page.advice, next: page.nextCursor };
      };
      const now = Date.now();
      await printListing<Advice>(out, {
        fetchPage,
        want,
        pageMax: 200,
        cursor: opts.cursor,
        key: 'advice',
        columns: [
          { header: 'ADVICE', cell: (a) => a.id },
          { header: 'SUBJECT', cell: (a) => subjectText(a.subject) },
          { header: 'TRIGGER', cell: (a) => a.trigger },
          { header: 'DECISION', cell: (a) => a.decision ?? '-' },
          { header: 'RISK', cell: (a) => a.risk },
          { header: 'CONFIDENCE', cell: (a) => percent(a.confidence), right: true },
          { header: 'BY', cell: (a) => a.provider.name },
          { header: 'WHEN', cell: (a) => ago(a.createdAt, now) },
          { header: 'APPLIED', cell: (a) => (a.applied === null ? '-' : `by ${a.applied.by}`) },
          { header: 'SUMMARY', cell: (a) => (a.summary.length > 80 ? `${a.summary.slice(0, 79)}…` : a.summary) },
        ],
        none: 'no advice yet',
        what: 'pieces of advice',
        again: 'orchestrator advise list',
      });
    }),
  );

  clientOptions(advise.command('show <id>').description('one piece of advice, with its evidence')).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const advice = await api.get<Advice>(path('/api/v1/advice', id));
      if (out.json) out.jsonLine(advice);
      else out.lines(renderAdvice(advice));
    }),
  );

  clientOptions(advise.command('apply <id>').description("apply advice (operator, once): its decision as the deployment's action, its moves as pinned ring overrides")).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const advice = await api.post<Advice>(path('/api/v1/advice', id, 'apply'));
      if (out.json) {
        out.jsonLine(advice);
        return;
      }
      const actions = advice.applied?.actions ?? [];
      out.line(`applied ${advice.id}: ${actions.length === 0 ? 'nothing to do' : `${actions.filter((a) => a.ok).length} of ${actions.length} actions done`}`);
      if (actions.length > 0) {
        out.lines(
          table(actions, [
            { header: 'ACTION', cell: (a) => a.action },
            { header: 'TARGET', cell: (a) => a.target },
            { header: 'DONE', cell: (a) => (a.ok ? 'yes' : 'no') },
            { header: 'DETAIL', cell: (a) => a.detail },
          ]),
        );
      }
      if (actions.some((a) => !a.ok)) return 1;
    }),
  );
}

function subjectText(s: Advice['subject']): string {
  return s.deployment !== undefined ? `deployment ${s.deployment}` : s.ring !== undefined ? `ring ${s.ring}` : 'fleet';
}

export function renderAdvice(a: Advice): string[] {
  const lines = keyValues([
    ['Advice', `${a.id} on the ${subjectText(a.subject)} (${a.trigger}, ${ago(a.createdAt)})`],
    a.decision !== null ? ['Decision', `${a.decision} (confidence ${percent(a.confidence)})`] : ['Confidence', percent(a.confidence)],
    ['Risk', a.risk],
    ['Summary', a.summary],
    ['Written by', `${a.provider.name}${a.provider.model === null ? '' : ` (${a.provider.model})`}${a.provider.fallback === null ? '' : `; the analyser's advice stands: ${a.provider.fallback}`}, in ${a.cost.ms} ms${a.cost.inputTokens + a.cost.outputTokens > 0 ? `, ${a.cost.inputTokens} + ${a.cost.outputTokens} tokens` : ''}`],
    ['Applied', a.applied === null ? 'no' : `by ${a.applied.by} ${ago(a.applied.at)}`],
  ]);
  if (a.rings.length > 0) {
    lines.push(
      '',
      ...table(a.rings, [
        { header: 'RING', cell: (r) => r.ring },
        { header: 'RISK', cell: (r) => r.risk },
        { header: 'REASONS', cell: (r) => r.reasons.join('; ') || '-' },
      ]),
    );
  }
  if (a.moves.length > 0) {
    lines.push(
      '',
      'Proposed moves',
      ...table(a.moves, [
        { header: 'DEVICE', cell: (m) => m.deviceId },
        { header: 'FROM', cell: (m) => m.from },
        { header: 'TO', cell: (m) => m.to },
        { header: 'REASON', cell: (m) => m.reason },
      ]),
    );
  }
  if (a.applied === null && (a.moves.length > 0 || (a.decision !== null && a.decision !== 'continue'))) lines.push('', `apply it: orchestrator advise apply ${a.id}`);
  return lines;
}

import type { Command } from 'commander';
import { usage } from '../client/errors.js';
import { path } from '../client/http.js';
import { ago, apiTokenTable, count, table } from '../client/output.js';
import { action, choice, clientOf, clientOptions, durationOption, intOption } from '../client/options.js';
import type { PagingFlags } from '../client/paging.js';
import { pagingOptions, printListing, wanted } from '../client/paging.js';
import type { ApiToken, AuditEntry, EnrollmentToken, Whoami } from '../client/types.js';

const ROLES = ['viewer', 'operator', 'admin'] as const;
const NAME = /^[A-Za-z0-9 ._@:/-]{1,100}$/;

/** `tokens`, `enrollment-tokens`, `whoami`, `audit`: security through the API (admin, but whoami). */
export function registerTokens(program: Command): void {
  registerApiTokens(program);
  registerEnrollmentTokens(program);

  clientOptions(program.command('whoami').description('who the API takes this client for: the token\'s name and role (or the open API)')).action(
    action(async (_opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const me = await api.get<Whoami>('/api/v1/whoami');
      if (out.json) out.jsonLine(me);
      else out.line(me.open ? `${me.actor} (${me.role}): the API at ${api.server} is open to this machine` : `${me.actor} (${me.role})${me.tokenId === undefined ? '' : `, token ${me.tokenId}`} at ${api.server}`);
    }),
  );

  clientOptions(
    pagingOptions(
      program
        .command('audit')
        .description('the audit log (admin): every change made through the API or by the local commands, oldest first')
        .option('--actor <name>', 'a token\'s name, ADMIN_TOKEN, local, anonymous, or cli:<user> (the local commands)')
        .option('--action <action>', 'e.g. "POST /api/v1/tasks" or "CLI token create"')
        .option('--since <time>', 'from this instant (ISO 8601), or this long ago (e.g. 1h, 7d)'),
      100,
      'entries',
    ),
  ).action(
    action(async (opts: PagingFlags & { actor?: string; action?: string; since?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      let since: string | undefined;
      if (opts.since !== undefined) {
        const at = /^\d+(\.\d+)?(ms|s|m|h|d)?$/.test(opts.since) ? Date.now() - (durationOption('--since', opts.since) ?? 0) : Date.parse(opts.since);
        if (!Number.isFinite(at)) throw usage(`--since: an ISO 8601 instant or a duration such as 1h or 7d (got "${opts.since}")`);
        since = String(Math.round(at));
      }
      const want = wanted(opts, 100);
      const fetchPage = async (cursor: string | undefined, limit: number) => {
        const page = await api.get<{ entries: AuditEntry[]; nextCursor: string | null }>('/api/v1/audit', { actor: opts.actor, action: opts.action, since, limit, cursor });
        return { items: page.entries, next: page.nextCursor };
      };
      const now = Date.now();
      await printListing<AuditEntry>(out, {
        fetchPage,
        want,
        pageMax: 1000,
        cursor: opts.cursor,
        key: 'entries',
        columns: [
        { header: 'WHEN', cell: (e) => ago(e.at, now) },
        { header: 'ACTOR', cell: (e) => e.actor },
        { header: 'ROLE', cell: (e) => e.role ?? '-' },
        { header: 'ACTION', cell: (e) => e.action },
        { header: 'TARGET', cell: (e) => e.target ?? '-' },
        { header: 'OUTCOME', cell: (e) => `${e.outcome} ${e.status}` },
        { header: 'FROM', cell: (e) => e.address ?? '-' },
        ],
        none: 'no entries match',
        what: 'entries',
        again: 'orchestrator audit (same filters)',
      });
    }),
  );
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw usage('--name: 1 to 100 characters of letters, digits, space and ._@:/-');
}

function registerApiTokens(program: Command): void {
  const tokens = program
    .command('tokens')
    .description("operators' API tokens through the API (admin); the local `token` command writes to the database instead");

  clientOptions(tokens.command('list').description('API tokens, never their secrets')).action(
    action(async (_opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const list = (await api.get<{ tokens: ApiToken[] }>('/api/v1/tokens')).tokens;
      if (out.json) {
        out.jsonLine({ tokens: list });
        return;
      }
      if (list.length === 0) {
        out.note('no API tokens');
        return;
      }
      const now = Date.now();
      out.lines(apiTokenTable(list, now));
    }),
  );

  clientOptions(
    tokens
      .command('create')
      .description('create an API token and print it on stdout (shown this once: only its hash is kept)')
      .requiredOption('--name <name>', 'who or what holds it, e.g. ci or alice')
      .requiredOption('--role <role>', ROLES.join(', ')),
  ).action(
    action(async (opts: { name: string; role: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const role = choice('--role', opts.role, ROLES);
      checkName(opts.name);
      const made = await api.post<ApiToken>('/api/v1/tokens', { name: opts.name, role });
      if (out.json) {
        out.jsonLine(made);
        return;
      }
      out.line(made.token ?? '');
      out.note(`Created ${made.role} token ${made.id} for ${made.name}. It is shown only now; send it as "Authorization: Bearer <token>" (ORCH_TOKEN for this command line).`);
    }),
  );

  clientOptions(tokens.command('revoke <id>').description('revoke an API token at once')).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const t = await api.delete<ApiToken>(path('/api/v1/tokens', id));
      if (out.json) out.jsonLine(t);
      else out.line(`revoked ${t.id} (${t.name}, ${t.role})`);
    }),
  );
}

function registerEnrollmentTokens(program: Command): void {
  const tokens = program.command('enrollment-tokens').description('tokens agents enroll with (admin): limited in uses and time, revocable, optionally holding new agents for approval');

  clientOptions(tokens.command('list').description('enrollment tokens with their uses, never their secrets')).action(
    action(async (_opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const list = (await api.get<{ tokens: EnrollmentToken[] }>('/api/v1/enrollment-tokens')).tokens;
      if (out.json) {
        out.jsonLine({ tokens: list });
        return;
      }
      if (list.length === 0) {
        out.note('no stored enrollment tokens (the default one, ENROLL_TOKEN, is not listed)');
        return;
      }
      const now = Date.now();
      out.lines(
        table(list, [
          { header: 'ID', cell: (t) => t.id },
          { header: 'NAME', cell: (t) => t.name },
          { header: 'USES', cell: (t) => `${count(t.uses)}${t.maxUses === null ? '' : `/${count(t.maxUses)}`}`, right: true },
          { header: 'EXPIRES', cell: (t) => (t.expiresAt === null ? 'never' : ago(t.expiresAt, now)) },
          { header: 'APPROVAL', cell: (t) => (t.requireApproval ? 'required' : 'no') },
          { header: 'CREATED', cell: (t) => ago(t.createdAt, now) },
          { header: 'BY', cell: (t) => t.createdBy },
          { header: 'REVOKED', cell: (t) => ago(t.revokedAt, now) },
        ]),
      );
    }),
  );

  clientOptions(
    tokens
      .command('create')
      .description('create an enrollment token and print it on stdout (shown this once)')
      .requiredOption('--name <name>', 'what it is for, e.g. berlin-laptops')
      .option('--max-uses <n>', 'how many agents may enroll with it (default: any number)')
      .option('--expires-in <duration>', 'how long it works, e.g. 24h or 7d (default: for ever)')
      .option('--require-approval', 'agents enrolled with it wait for an admin (agents approve ID) before they get tasks'),
  ).action(
    action(async (opts: { name: string; maxUses?: string; expiresIn?: string; requireApproval?: boolean }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      checkName(opts.name);
      const maxUses = intOption('--max-uses', opts.maxUses, 1, 1_000_000_000);
      const expiresMs = durationOption('--expires-in', opts.expiresIn);
      if (expiresMs !== undefined && (expiresMs < 1000 || expiresMs > 10 * 365 * 86_400_000)) throw usage('--expires-in: from 1s to 3650d');
      const made = await api.post<EnrollmentToken>('/api/v1/enrollment-tokens', {
        name: opts.name,
        ...(maxUses === undefined ? {} : { maxUses }),
        ...(expiresMs === undefined ? {} : { expiresInSeconds: Math.round(expiresMs / 1000) }),
        ...(opts.requireApproval === true ? { requireApproval: true } : {}),
      });
      if (out.json) {
        out.jsonLine(made);
        return;
      }
      out.line(made.token ?? '');
      out.note(`Created enrollment token ${made.id} (${made.name}${made.maxUses === null ? '' : `, ${made.maxUses} uses`}${made.expiresAt === null ? '' : `, until ${made.expiresAt}`}${made.requireApproval ? ', approval required' : ''}). It is shown only now: orchestrator agent --server ${api.server} --enroll-token <it>`);
    }),
  );

  clientOptions(tokens.command('revoke <id>').description('revoke an enrollment token (agents it enrolled stay: remove them with agents remove)')).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const t = await api.delete<EnrollmentToken>(path('/api/v1/enrollment-tokens', id));
      if (out.json) out.jsonLine(t);
      else out.line(`revoked ${t.id} (${t.name})`);
    }),
  );
}

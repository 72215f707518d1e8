import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { SETTINGS } from '../../src/config/config.js';
import { TEST_DATABASE_URL } from '../support/postgres.js';
import { ROOT } from '../support/server-process.js';

/*
 * What `sam deploy` ships: deploy/aws/template.yaml points at dist/lambda.handler, and dist/lambda.js (compiled
 * here as `npm run build` compiles it, into a folder of this test's) loads neither better-sqlite3 nor anything
 * outside the production dependencies (deploy/aws/stage.sh installs only those, without install scripts).
 */

const run = promisify(execFile);
const BUILD = join(ROOT, '.tmp', `lambda-build-${process.pid}`);
const TEMPLATE = join(ROOT, 'deploy/aws/template.yaml');

beforeAll(async () => {
  mkdirSync(BUILD, { recursive: true });
  // tsconfig.build.json's settings; only the files these tests load (and what they import).
  const rel = (p: string): string => relative(BUILD, join(ROOT, p));
  writeFileSync(
    join(BUILD, 'tsconfig.json'),
    JSON.stringify({ extends: rel('tsconfig.build.json'), compilerOptions: { outDir: '.', rootDir: rel('src'), sourceMap: false }, include: [], files: [rel('src/lambda.ts'), rel('src/store/open-store.ts')] }),
  );
  writeFileSync(
    join(BUILD, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.MODULE_LOG, r.url + '\\n');
  return r;
}
`,
  );
  writeFileSync(join(BUILD, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
  await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', BUILD], { cwd: ROOT });
}, 120_000);
afterAll(() => rmSync(BUILD, { recursive: true, force: true }));

interface Loaded {
  code: number | null;
  stderr: string;
  /** Every module URL the import resolved (ES modules), and every file in the CommonJS cache after it. */
  modules: string[];
  handler?: string;
}

/** Imports `entry` in a new Node process (a cold start), recording every module it loads. */
async function load(entry: string, env: Record<string, string | undefined>): Promise<Loaded> {
  const log = join(BUILD, `modules-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(log, '');
  const script = `
    const { createRequire } = await import('node:module');
    const mod = await import(${JSON.stringify(pathToFileURL(entry).href)});
    const cached = Object.keys(createRequire(${JSON.stringify(join(BUILD, 'x.js'))}).cache);
    process.stdout.write(JSON.stringify({ handler: typeof mod.handler, cached }));
    await mod.handler?.close?.();
  `;
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, LOG_LEVEL: 'silent', MODULE_LOG: log, ...env })) if (v !== undefined) childEnv[k] = v;
  const child = spawn(process.execPath, ['--import', pathToFileURL(join(BUILD, 'register.mjs')).href, '--input-type=module', '-e', script], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
  const resolved = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
  const result = out === '' ? null : (JSON.parse(out) as { handler: string; cached: string[] });
  return { code, stderr, modules: [...resolved, ...(result?.cached.map((p) => pathToFileURL(p).href) ?? [])], ...(result ? { handler: result.handler } : {}) };
}

/** The package folder of a module under node_modules (`@scope/name` or `name`), or null for ours and node's. */
function packageOf(url: string): string | null {
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return m?.[1] ?? null;
}

const sqlite = (modules: string[]): string[] => modules.filter((u) => /\/node_modules\/better-sqlite3\/|\/store\/sqlite\//.test(u));

describe('the Lambda package', () => {
  it('dist/lambda.js exports handler and loads neither better-sqlite3 nor the SQLite adapter nor a dev dependency', async () => {
    const fn = await load(join(BUILD, 'lambda.js'), { DATABASE_URL: `${TEST_DATABASE_URL}?options=${encodeURIComponent('-c search_path=lambda_package_none')}` });
    expect(fn.stderr).toBe('');
    expect(fn.code).toBe(0);
    expect(fn.handler).toBe('function');
    expect(fn.modules.some((u) => u.endsWith('/lambda.js'))).toBe(true);
    expect(sqlite(fn.modules)).toEqual([]);
    // Each package it loads is a production dependency (what stage.sh installs with --omit=dev).
    const { stdout } = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 }).catch((err: { stdout: string }) => ({ stdout: err.stdout }));
    const production = new Set(stdout.split('\n').map((p) => packageOf(`${p}/`)).filter((p): p is string => p !== null));
    expect(production.has('fastify')).toBe(true);
    expect(production.has('vitest')).toBe(false);
    const loaded = [...new Set(fn.modules.map(packageOf).filter((p): p is string => p !== null))];
    expect(loaded).toContain('@fastify/aws-lambda');
    expect(loaded).toContain('pg');
    expect(loaded.filter((p) => !production.has(p))).toEqual([]);

    // The same check finds better-sqlite3 where it is loaded: the module that opens either store.
    const store = await load(join(BUILD, 'store/open-store.js'), {});
    expect(store.code).toBe(0);
    expect(sqlite(store.modules).length).toBeGreaterThan(0);
  }, 60_000);

  it('a cold start without DATABASE_URL fails naming the setting', async () => {
    const fn = await load(join(BUILD, 'lambda.js'), { DATABASE_URL: undefined });
    expect(fn.code).not.toBe(0);
    expect(fn.stderr).toMatch(/ConfigError: DATABASE_URL: required on AWS Lambda/);
    expect(sqlite(fn.modules)).toEqual([]);
  }, 30_000);

  it('deploy/aws/template.yaml: its handler is the built dist/lambda.js, its settings are the orchestrator\'s, and each parameter is used', () => {
    const tags = ['Ref', 'Sub', 'GetAtt'].map((name) => ({ tag: `!${name}`, resolve: (value: string) => ({ [name === 'Ref' ? 'Ref' : `Fn::${name}`]: value }) }));
    const doc = parseDocument(readFileSync(TEMPLATE, 'utf8'), { customTags: tags });
    expect([...doc.errors, ...doc.warnings].map((e) => e.message)).toEqual([]);
    const template = doc.toJS() as {
      Transform: string;
      Parameters: Record<string, { Type: string }>;
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    expect(template.Transform).toBe('AWS::Serverless-2016-10-31');
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Serverless::Function');
    expect(functions).toHaveLength(1);
    const fn = (functions[0] as { Properties: Record<string, unknown> }).Properties as {
      CodeUri: string; Handler: string; Runtime: string; Timeout: number; MemorySize: number;
      Environment: { Variables: Record<string, unknown> };
      VpcConfig: { SubnetIds: unknown; SecurityGroupIds: unknown };
      Events: Record<string, { Type: string; Properties?: { TimeoutInMillis?: number } }>;
    };
    expect(fn.Runtime).toMatch(/^nodejs(20|22)\.x$/);
    // CodeUri is what stage.sh assembles: a copy of the package root's dist/ and production dependencies.
    expect(resolve(dirname(TEMPLATE), fn.CodeUri)).toBe(join(ROOT, 'deploy/aws/.build'));
    expect(readFileSync(join(ROOT, 'deploy/aws/stage.sh'), 'utf8')).toContain('out="$root/deploy/aws/.build"');
    // The handler: `dist/lambda` is where tsconfig.build.json puts src/lambda.ts, and it exports `handler`.
    const at = fn.Handler.lastIndexOf('.');
    const [file, exported] = [fn.Handler.slice(0, at), fn.Handler.slice(at + 1)];
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect(`${file}.js`).toBe(join(build.compilerOptions.outDir, relative(build.compilerOptions.rootDir, 'src/lambda.ts')).replace(/\.ts$/, '.js'));
    expect(exported).toBe('handler');
    expect(readFileSync(join(BUILD, 'lambda.js'), 'utf8')).toMatch(/^export const handler = /m);
    // Every variable it sets is a setting of the orchestrator; DATABASE_URL among them; no ADMIN_TOKEN (credentials pass through).
    const settings = new Set<string>(SETTINGS.map((s) => s.env));
    const variables = Object.keys(fn.Environment.Variables);
    expect(variables.filter((v) => !settings.has(v))).toEqual([]);
    expect(variables).toContain('DATABASE_URL');
    expect(variables).not.toContain('ADMIN_TOKEN');
    // The VPC it needs, from parameters of the right types.
    expect(fn.VpcConfig).toEqual({ SubnetIds: { Ref: 'SubnetIds' }, SecurityGroupIds: { Ref: 'SecurityGroupIds' } });
    expect(template.Parameters.SubnetIds?.Type).toBe('List<AWS::EC2::Subnet::Id>');
    expect(template.Parameters.SecurityGroupIds?.Type).toBe('List<AWS::EC2::SecurityGroup::Id>');
    // An HTTP API whose timeout is longer than the function's: the function answers first (1 s before its own).
    const api = Object.values(fn.Events).find((e) => e.Type === 'HttpApi');
    expect(api).toBeDefined();
    expect(fn.Timeout * 1000).toBeLessThan(api?.Properties?.TimeoutInMillis ?? 30_000);
    // Each parameter is used: by a Ref, or by name in a Sub.
    const used = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v !== null && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (k === 'Ref' && typeof x === 'string') used.add(x);
          if (k === 'Fn::Sub' && typeof x === 'string') for (const m of x.matchAll(/\$\{([A-Za-z0-9]+)/g)) used.add(m[1] as string);
          walk(x);
        }
      }
    };
    walk(template.Resources);
    walk((template as { Outputs?: unknown }).Outputs);
    expect(Object.keys(template.Parameters).filter((p) => !used.has(p))).toEqual([]);
  });
});

// Builds the standalone agent package (issue 18) into dist/agent-package: src/agent/standalone.ts and everything it
// imports (the agent, its domain and util modules, commander, pino, systeminformation) bundled by esbuild into one
// file, with a package.json of no dependencies, so that `npm install` on a device compiles nothing and fetches
// nothing else. The build fails when the bundle would reach the server, a native module or an import the package
// does not carry. Run by `npm run build`; takes well under a second.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// `--out DIR`: another folder than dist/agent-package (test/e2e/agent-package.test.ts builds into one of its own).
const outAt = process.argv.indexOf('--out');
const OUT = outAt > 0 && process.argv[outAt + 1] ? resolve(process.argv[outAt + 1]) : join(ROOT, 'dist', 'agent-package');
const BIN = 'orchestrator-agent.js';

/** One line on stderr and exit 1: what failed and what to do. */
function fail(message) {
  process.stderr.write(`build-agent-package: ${message}\n`);
  process.exit(1);
}

// esbuild comes with vite and tsx (devDependencies); resolved from the repository as `import` would.
let esbuild;
try {
  esbuild = await import(createRequire(join(ROOT, 'package.json')).resolve('esbuild'));
} catch (err) {
  fail(`esbuild is not installed (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): run npm install`);
}

const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/** Our sources the agent may bundle: what eslint's layer rule lets src/agent import, and the agent itself. */
const OWN_ALLOWED = ['src/agent/', 'src/domain/', 'src/util/', 'src/protocol/'];
/** Packages that mean the server (or a native build) came in through some import. */
/**
 * Optional native add-ons systeminformation tries inside try/catch, on macOS, for CPU and GPU temperatures (which
 * the agent does not read): left as they are, they fail to load and are skipped, as they are without the bundle.
 */
const OPTIONAL_EXTERNAL = ['osx-temperature-sensor', 'macos-temperature-sensor'];
const FORBIDDEN = /^(better-sqlite3|bindings|prebuild-install|node-gyp-build|fastify|@fastify\/.*|fastify-.*|pg|pg-.*|pgpass|typebox|@sinclair\/typebox|prom-client|openai|@strands-agents\/.*|@aws-sdk\/.*|@smithy\/.*|ajv|zod)$/;

// Made afresh, so that nothing of an earlier build stays; a folder that holds something else is left alone.
if (existsSync(OUT) && readdirSync(OUT).length > 0) {
  let earlier;
  try {
    earlier = JSON.parse(readFileSync(join(OUT, 'package.json'), 'utf8')).name;
  } catch {
    earlier = null;
  }
  if (earlier !== 'aws-orchestrator-agent') fail(`${OUT} is not empty and holds no earlier agent package: give --out a new or empty folder`);
}
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

let result;
try {
  result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: ['src/agent/standalone.ts'],
    outfile: join(OUT, BIN),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: OPTIONAL_EXTERNAL,
    // CommonJS dependencies (commander, pino, systeminformation) call require() for node's modules: an ES module
    // has none of its own, so the bundle makes one.
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __agentCreateRequire } from 'node:module';\nconst require = __agentCreateRequire(import.meta.url);" },
    define: { __AGENT_PACKAGE_VERSION__: JSON.stringify(root.version) },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'silent',
  });
} catch (err) {
  const first = err?.errors?.[0];
  fail(first ? `esbuild: ${first.text}${first.location ? ` (${first.location.file}:${first.location.line})` : ''}` : String(err));
}

// What went in: our files by path, other code by package.
const packages = new Map(); // name -> package folder
const problems = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const path = input.split(sep).join('/');
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
  if (m) {
    const name = m[1];
    if (FORBIDDEN.test(name)) problems.add(`the package ${name}`);
    packages.set(name, path.slice(0, m.index + m[0].length - 1).replace(/^\//, ''));
  } else if (!OWN_ALLOWED.some((dir) => path.startsWith(dir))) {
    problems.add(`${path} (outside ${OWN_ALLOWED.join(', ')})`);
  }
  if (path.endsWith('.node')) problems.add(`${path}: a native module`);
}
// Whatever esbuild left as an import must be one of node's own modules: the package has no dependencies.
const builtins = new Set([...builtinModules, ...builtinModules.map((b) => `node:${b}`)]);
for (const output of Object.values(result.metafile.outputs)) {
  for (const imp of output.imports) if (imp.external && !builtins.has(imp.path) && !OPTIONAL_EXTERNAL.includes(imp.path)) problems.add(`an import of ${imp.path} left outside the bundle`);
}
if (problems.size > 0) fail(`the agent bundle must hold only the agent and pure-JS packages, but it has: ${[...problems].join('; ')}`);

chmodSync(join(OUT, BIN), 0o755);

// The bundled packages' licences (MIT and alike ask that their notices travel with copies).
const notices = [];
for (const [name, folder] of [...packages].sort(([a], [b]) => a.localeCompare(b))) {
  const dir = join(ROOT, folder);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const licenceFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  notices.push(`## ${name} ${pkg.version} (${pkg.license ?? 'see below'})\n\n${licenceFile ? readFileSync(join(dir, licenceFile), 'utf8').trim() : '(no licence file in the package)'}\n`);
}
writeFileSync(join(OUT, 'THIRD-PARTY-NOTICES.md'), `# Third-party notices\n\n${BIN} bundles these packages:\n\n${notices.join('\n')}`);

const pkg = {
  name: 'aws-orchestrator-agent',
  version: root.version,
  description: 'The AWS Orchestrator agent: enrolls a device with an orchestrator, reports its health, runs its tasks. One file, no dependencies.',
  license: root.license,
  type: 'module',
  bin: { 'orchestrator-agent': BIN },
  files: [BIN, 'README.md', 'THIRD-PARTY-NOTICES.md'],
  engines: root.engines,
};
writeFileSync(join(OUT, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

writeFileSync(
  join(OUT, 'README.md'),
  `# aws-orchestrator-agent ${root.version}

The agent of AWS Orchestrator: run on each device, it enrolls with an orchestrator, sends heartbeats with the
machine's battery, CPU, memory and disk, and runs the tasks the orchestrator assigns it (the built-in
\`health_check\`, \`monitor\` and \`analyze_risk\`, and any task type an executable in its handlers folder is named after).
One JavaScript file with no dependencies: installing it compiles and downloads nothing. Node.js ${root.engines.node}.

\`\`\`bash
npm install -g ./aws-orchestrator-agent-${root.version}.tgz
orchestrator-agent --server http://orchestrator.example:8000 --enroll-token <token> \\
  --state-dir ~/.orchestrator-agent --handlers ~/.orchestrator-agent/handlers
\`\`\`

\`orchestrator-agent --help\` lists the options. Running it as a systemd unit, a Windows scheduled task or
service, or a launchd daemon: docs/agent.md in the AWS Orchestrator repository.
`,
);

const size = statSync(join(OUT, BIN)).size;
const shown = relative(ROOT, OUT).startsWith('..') ? OUT : relative(ROOT, OUT);
process.stdout.write(`agent package: ${join(shown, BIN)} (${(size / 1024).toFixed(0)} KiB, ${packages.size} bundled packages)\n`);

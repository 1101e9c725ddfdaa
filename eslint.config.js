// ESLint flat config: typescript-eslint's recommended rules over all TypeScript sources.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['.scratch/**', 'node_modules/**', 'data/**', 'dist/**', 'admin-ui/static/vendor/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['daemon/test/**', 'daemon/src/**/*.test.ts', 'daemon/bin/**', 'daemon/src/cli/**', 'daemon/scripts/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // The native addons' CommonJS loaders (daemon/native/*/index.cjs).
    files: ['daemon/native/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Browser code of the UI: plain ES modules, no Node.
    files: ['admin-ui/static/js/**/*.mjs'],
    languageOptions: { globals: { ...globals.browser } },
  },
);

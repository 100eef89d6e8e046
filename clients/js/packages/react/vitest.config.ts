import { defineConfig } from 'vitest/config';

// Workspace packages are read from their TypeScript sources (the `source` export condition).
export default defineConfig({
  resolve: { conditions: ['source'] },
  test: { environment: 'happy-dom' },
});

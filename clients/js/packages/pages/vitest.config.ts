import { defineConfig } from 'vitest/config';

// Workspace packages (and the README's snippets) are read from their TypeScript sources: the
// `source` export condition.
export default defineConfig({
  resolve: { conditions: ['source', 'module', 'node', 'import', 'default'] },
  ssr: { resolve: { conditions: ['source', 'module', 'node', 'import', 'default'], externalConditions: ['source'] } },
});

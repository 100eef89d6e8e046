// Builds the pages into crates/courtside-server/pages/ (committed: `cargo run` never needs
// Node), or into the directory given as the first argument (the test that keeps the committed
// bundle equal to a fresh build).
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, '../../../../../crates/courtside-server/pages'));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, '../src/main.tsx')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  conditions: ['source'],
  minify: true,
  legalComments: 'none',
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  outfile: join(out, 'app.js'),
  logLevel: 'warning',
});
for (const file of ['index.html', 'app.css', 'sw.js', 'manifest.webmanifest', 'icon.svg']) copyFileSync(join(here, '../src', file), join(out, file));

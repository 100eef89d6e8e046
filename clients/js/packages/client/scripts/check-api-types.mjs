// Fails when src/api/schema.ts is not what openapi-typescript makes of docs/openapi.json: the
// REST client's types are generated, never edited, and never behind the server's document.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const fresh = join(mkdtempSync(join(tmpdir(), 'courtside-api-')), 'schema.ts');
const document = resolve(here, '../../../../../docs/openapi.json');
execFileSync(process.execPath, [resolve(here, '../../../node_modules/openapi-typescript/bin/cli.js'), document, '--output', fresh], { stdio: 'ignore' });
const committed = readFileSync(resolve(here, '../src/api/schema.ts'), 'utf8');
if (readFileSync(fresh, 'utf8') !== committed) {
  console.error('src/api/schema.ts differs from docs/openapi.json: run `npm run generate:api` in clients/js/packages/client');
  process.exit(1);
}
console.log('src/api/schema.ts matches docs/openapi.json');

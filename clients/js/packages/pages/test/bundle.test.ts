/**
 * The bundle committed in crates/courtside-server/pages/ (what the binary serves) is what a
 * fresh build of this package makes: change the sources, run `npm run build` here, commit both.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

const committed = resolve(import.meta.dirname, '../../../../../crates/courtside-server/pages');

describe('the embedded bundle', () => {
  it('equals a fresh build', () => {
    const fresh = mkdtempSync(join(tmpdir(), 'courtside-pages-'));
    execFileSync(process.execPath, [resolve(import.meta.dirname, '../scripts/build.mjs'), fresh]);
    expect(readdirSync(committed).sort()).toEqual(readdirSync(fresh).sort());
    for (const file of readdirSync(fresh)) {
      const same = readFileSync(join(fresh, file)).equals(readFileSync(join(committed, file)));
      expect(same, `crates/courtside-server/pages/${file} is stale: run \`npm run build\` in clients/js/packages/pages`).toBe(true);
    }
  });
});

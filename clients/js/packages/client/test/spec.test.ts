/**
 * docs/client.md against the client: every transition code the spec's tables name is the one
 * `ClientCode` and `SubscriptionCode` give that reason, and none is missing from the spec.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ClientCode } from '../src/client.js';
import { SubscriptionCode } from '../src/subscription.js';

const spec = readFileSync(resolve(import.meta.dirname, '../../../../../docs/client.md'), 'utf8');

/** `connectCalled` → `connect called`. */
const words = (name: string) => name.replace(/[A-Z]/g, (letter) => ` ${letter.toLowerCase()}`);

describe('docs/client.md', () => {
  it('gives each client transition code the reason the client uses', () => {
    const rows = new Map([...spec.matchAll(/^\| (\d) \| `([a-z ]+)`/gm)].map((row) => [Number(row[1]), row[2]]));
    expect(rows.size).toBe(Object.keys(ClientCode).length);
    for (const [name, code] of Object.entries(ClientCode)) expect(rows.get(code), name).toBe(words(name));
  });

  it('names each subscription transition code', () => {
    const section = spec.slice(spec.indexOf('## 2. Subscriptions'), spec.indexOf('### Positions and resume')).replace(/\s+/g, ' ');
    for (const [name, code] of Object.entries(SubscriptionCode)) expect(section, name).toContain(`${code} \`${words(name)}\``);
  });
});

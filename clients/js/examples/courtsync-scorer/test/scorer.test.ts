/**
 * The scorer in Chromium against a real server, as a scorekeeper uses it: sign in, claim the
 * match, score five points with the network gone, get it back — the five points reach the
 * server in order, once each, and the page shows the stored score with nothing left to sync.
 */

import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { courtsideBinary } from '../../../packages/client/test/server.js';
import { BrowserRig, chromiumOrSkip, servePage } from '../../../packages/client/test/support/pages.js';

const CHROMIUM = chromiumOrSkip();
const binary = courtsideBinary();

describe.skipIf(CHROMIUM === undefined || binary === undefined)('the CourtSync scorer', () => {
  let rig: BrowserRig;
  beforeAll(async () => {
    const here = resolve(import.meta.dirname, '..');
    rig = await BrowserRig.start(binary ?? '', async (courtside) => {
      await courtside.seedCup();
      return servePage(join(here, 'index.html'), join(here, 'scorer.ts'), '/scorer.js');
    });
  }, 60_000);
  afterAll(async () => {
    await (rig as BrowserRig | undefined)?.stop();
  });

  it('scores offline and syncs each point once, in order', async () => {
    const context = await rig.browser.newContext();
    const tab = await context.newPage();
    await tab.goto(`${rig.page.url}/?server=${encodeURIComponent(rig.courtside.url)}`);
    await tab.getByLabel('User').fill('kim');
    await tab.getByLabel('Password').fill('correct horse battery');
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab.getByLabel('Event').fill('cup');
    await tab.getByLabel('Match').fill('m1');
    await tab.getByRole('button', { name: 'Keep the score of this match' }).click();
    await expect.poll(() => tab.locator('#connection').textContent()).toBe('connected');

    await context.setOffline(true);
    await expect.poll(() => tab.locator('#connection').textContent()).toBe('offline');
    for (let point = 0; point < 5; point++) await tab.getByRole('button', { name: '+1 home' }).click();
    await expect.poll(() => tab.locator('#home').textContent()).toBe('5');
    expect(await tab.locator('#pending').textContent()).toBe('5');

    await context.setOffline(false);
    await expect.poll(() => tab.locator('#pending').textContent(), { timeout: 20_000 }).toBe('0');
    const history = await rig.courtside.api('GET', '/api/events/cup/scores/m1/history');
    const homes = (history.body as { changes: Array<{ sets: Array<{ home: number }> }> }).changes.map((change) => change.sets[0]?.home);
    expect(homes).toEqual([1, 2, 3, 4, 5]);
    expect(await tab.locator('#home').textContent()).toBe('5');
    await context.close();
  }, 60_000);
});

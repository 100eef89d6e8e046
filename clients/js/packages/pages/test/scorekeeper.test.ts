/**
 * The scorekeeper console as `courtside serve` serves it, in Chromium — issue 12's scenario: a
 * scorekeeper signs in, claims a match, goes offline, scores 20 points, reloads the page (the
 * service worker serves it; the points wait in IndexedDB), comes back online — the server holds
 * exactly 20 history entries, in order, and the public scoreboard in another page shows them.
 * axe-core finds no serious violation on the sign-in form or the scoring view.
 */

import { describe, expect, it } from 'vitest';

import { canRun, screenshots, seriousViolations, servedPages } from './support.js';

describe.skipIf(!canRun)('the scorekeeper console', () => {
  const served = servedPages(async (courtside) => {
    await courtside.seedCup();
  });

  it('scores 20 points offline, across a reload, and syncs them once each, in order', async () => {
    const context = await served.browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await page.goto(`${served.courtside.url}/scorekeeper?event=cup`);
    expect(await seriousViolations(page), 'the sign-in form').toEqual([]);
    await page.getByLabel('User').fill('kim');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Show matches' }).click();
    await page.getByRole('button', { name: 'Keep the score of m1' }).click();
    await page.getByRole('button', { name: '+1 home' }).waitFor();
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 });
    await screenshots(page, 'scorekeeper');
    expect(await seriousViolations(page), 'the scoring view').toEqual([]);

    await context.setOffline(true);
    for (let point = 0; point < 20; point++) await page.getByRole('button', { name: '+1 home' }).click();
    await expect.poll(() => page.getByTestId('home').textContent()).toBe('20');
    await expect.poll(() => page.getByTestId('pending').textContent()).toBe('20');

    await page.reload();
    await expect.poll(() => page.getByTestId('pending').textContent()).toBe('20');

    await context.setOffline(false);
    await expect.poll(() => page.getByTestId('pending').textContent(), { timeout: 30_000 }).toBe('0');
    const history = await served.courtside.api('GET', '/api/events/cup/scores/m1/history?limit=100');
    const homes = (history.body as { changes: Array<{ sets: Array<{ home: number }> }> }).changes.map((change) => change.sets[0]?.home);
    expect(homes).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));

    const board = await context.newPage();
    await board.goto(`${served.courtside.url}/scoreboard/cup`);
    await expect.poll(() => board.getByTestId('m1-home').textContent()).toBe('20');
    await context.close();
  }, 90_000);
});

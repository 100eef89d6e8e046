/**
 * The live scoreboard as `courtside serve` serves it, in Chromium: `/` opens the only
 * tournament; a score posted to the API moves on the page; a director's critical announcement
 * is an alert within a second; "N watching" counts the page; axe-core finds no serious or
 * critical violation; screenshots at phone and desktop width are kept in test-artifacts/.
 */

import { describe, expect, it } from 'vitest';

import { canRun, screenshots, seriousViolations, servedPages } from './support.js';

describe.skipIf(!canRun)('the live scoreboard', () => {
  const served = servedPages(async (courtside) => {
    await courtside.seedCup();
    await courtside.api('PUT', '/api/events/cup/courts/c1', { id: 'c1', name: 'Court 1' });
    await courtside.api('PUT', '/api/events/cup/matches/m1', { id: 'm1', divisionId: 'u18', homeTeamId: 'red', awayTeamId: 'blue', courtId: 'c1' });
  });

  it('shows the tournament live, with its alerts, to anyone', async () => {
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${served.courtside.url}/`);
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Cup');
    await expect.poll(() => page.getByRole('listitem', { name: 'Red against Blue' }).isVisible()).toBe(true);
    await expect.poll(() => page.locator('.status').textContent()).toBe('Live · 1 watching');

    const scored = await served.courtside.api('POST', '/api/events/cup/scores', { matchId: 'm1', sets: [{ home: 3, away: 1 }], status: 'in_progress' });
    expect(scored.status).toBe(200);
    await expect.poll(() => page.getByTestId('m1-home').textContent()).toBe('3');
    expect(await page.getByTestId('m1-away').textContent()).toBe('1');

    const before = Date.now();
    const announced = await served.courtside.api('POST', '/api/events/cup/announcements', { priority: 'critical', title: 'Court 1 is closed', body: 'Play moves to court 2.' });
    expect(announced.status).toBe(201);
    await page.getByRole('alert').filter({ hasText: 'Court 1 is closed' }).waitFor({ timeout: 1000 });
    expect(Date.now() - before).toBeLessThan(1000);

    await screenshots(page, 'scoreboard');

    expect(await seriousViolations(page)).toEqual([]);
    await page.close();
  }, 60_000);
});

/**
 * The director console as `courtside serve` serves it, in Chromium: a director adds a team and a
 * court, moves a match onto the court and creates another match, and the public scoreboard open
 * in another page shows both; a critical
 * announcement made on the console is an alert on the scoreboard within a second; a claim is
 * force-released; axe-core finds no serious violation.
 */

import { describe, expect, it } from 'vitest';

import { canRun, screenshots, seriousViolations, servedPages } from './support.js';

describe.skipIf(!canRun)('the director console', () => {
  const served = servedPages(async (courtside) => {
    await courtside.seedCup();
    await courtside.api('POST', '/api/users', { username: 'dana', password: 'director password', roles: ['director'] });
  });

  it('creates a match and announces, and the scoreboard shows both', async () => {
    const context = await served.browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const board = await context.newPage();
    await board.goto(`${served.courtside.url}/scoreboard/cup`);
    await expect.poll(() => board.getByRole('listitem', { name: 'Red against Blue' }).isVisible(), { timeout: 10_000 }).toBe(true);

    const console = await context.newPage();
    await console.goto(`${served.courtside.url}/director?event=cup`);
    await console.getByLabel('User').fill('dana');
    await console.getByLabel('Password').fill('director password');
    await console.getByRole('button', { name: 'Sign in' }).click();
    await console.getByLabel('team id').fill('green');
    await console.getByLabel('team name').fill('Green');
    await console.getByRole('button', { name: 'Add team' }).click();
    await expect.poll(() => console.getByRole('region', { name: 'Registry' }).textContent(), { timeout: 10_000 }).toContain('Green');

    // A court, and match m1 moved onto it: the scoreboard says where it is played.
    await console.getByLabel('court id').fill('center');
    await console.getByLabel('court name').fill('Center Court');
    await console.getByRole('button', { name: 'Add court' }).click();
    await expect.poll(() => console.getByRole('region', { name: 'Registry' }).textContent(), { timeout: 10_000 }).toContain('Center Court');
    const edit = console.getByRole('form', { name: 'Edit m1' });
    await edit.getByLabel('Court').selectOption('center');
    await edit.getByRole('button', { name: 'Save m1' }).click();
    await expect.poll(() => board.getByRole('listitem', { name: 'Red against Blue' }).textContent(), { timeout: 10_000 }).toContain('Center Court');

    const match = console.getByRole('form', { name: 'New match' });
    await match.getByLabel('Match id').fill('m2');
    await match.getByLabel('Home team').selectOption('red');
    await match.getByLabel('Away team').selectOption('green');
    await match.getByRole('button', { name: 'Create match' }).click();
    await expect.poll(() => console.getByRole('region', { name: 'Matches' }).textContent(), { timeout: 10_000 }).toContain('m2: red v green');
    await expect.poll(() => board.getByRole('listitem', { name: 'Red against Green' }).isVisible(), { timeout: 10_000 }).toBe(true);

    const announce = console.getByRole('form', { name: 'New announcement' });
    await announce.getByLabel('Priority').selectOption('critical');
    await announce.getByLabel('Title').fill('Storm: play is stopped');
    const before = Date.now();
    await announce.getByRole('button', { name: 'Announce' }).click();
    await board.getByRole('alert').filter({ hasText: 'Storm: play is stopped' }).waitFor({ timeout: 1000 });
    expect(Date.now() - before).toBeLessThan(1000);

    // A scorekeeper's claim, released by the director.
    const claimed = await served.courtside.api('POST', '/api/events/cup/claims/m1', {});
    expect(claimed.status).toBe(200);
    await console.reload();
    await console.getByRole('button', { name: 'Force-release m1' }).click();
    await expect.poll(async () => (await served.courtside.api('GET', '/api/events/cup/claims/m1')).body).toEqual({ claim: null });

    await screenshots(console, 'director');
    expect(await seriousViolations(console)).toEqual([]);
    await context.close();
  }, 60_000);
});

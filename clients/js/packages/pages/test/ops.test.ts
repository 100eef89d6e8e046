/**
 * The operations dashboard as `courtside serve` serves it, in Chromium: its connection count
 * moves when 100 clients connect, and comes back when they leave; axe-core finds no serious
 * violation; a screenshot is kept.
 */

import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { canRun, screenshots, seriousViolations, servedPages } from './support.js';

describe.skipIf(!canRun)('the operations dashboard', () => {
  const served = servedPages(async () => {});

  it('shows the connections move as 100 clients come and go', async () => {
    const page = await served.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.courtside.url}/ops`);
    const shown = async () => Number(await page.getByTestId('WebSocket connections').textContent());
    await expect.poll(shown, { timeout: 10_000 }).toBeGreaterThanOrEqual(0);
    const before = await shown();
    expect(await page.getByTestId('node').textContent()).toMatch(/^Node [a-z0-9]+, every second/);
    const sockets = await Promise.all(
      Array.from(
        { length: 100 },
        () =>
          new Promise<WebSocket>((open, fail) => {
            const socket = new WebSocket(`${served.courtside.url.replace('http', 'ws')}/ws`);
            socket.once('open', () => {
              socket.send(JSON.stringify({ id: 1, connect: {} }));
              open(socket);
            });
            socket.once('error', fail);
          }),
      ),
    );
    await expect.poll(shown, { timeout: 10_000 }).toBe(before + 100);
    await screenshots(page, 'ops');
    expect(await seriousViolations(page)).toEqual([]);
    for (const socket of sockets) socket.close();
    await expect.poll(shown, { timeout: 10_000 }).toBe(before);
    await page.close();
  }, 60_000);
});

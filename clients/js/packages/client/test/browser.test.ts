/**
 * The client in a real Chromium (Debian's, driven by playwright-core): the offline queue
 * survives a reload while offline (the page comes from its service worker, the operations from
 * IndexedDB) and drains exactly once, in order, when the browser is online again; and two tabs
 * share one connection. Without Chromium the suite says SKIPPED, except under CI=true, where it
 * fails.
 */

import { join, resolve } from 'node:path';
import type { Server } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { courtsideBinary } from './server.js';
import { BrowserRig, chromiumOrSkip, servePage as serve } from './support/pages.js';

const CHROMIUM = chromiumOrSkip();
const binary = courtsideBinary();

/** The test page, its bundled script and its service worker. */
function servePage(): Promise<{ server: Server; url: string }> {
  const here = resolve(import.meta.dirname, 'browser');
  return serve(join(here, 'index.html'), join(here, 'app.ts'), '/app.js', { '/sw.js': [join(here, 'sw.js'), 'text/javascript'] });
}

describe.skipIf(CHROMIUM === undefined || binary === undefined)('@courtside/client in Chromium', () => {
  let rig: BrowserRig;
  beforeAll(async () => {
    rig = await BrowserRig.start(binary ?? '', () => servePage());
  }, 60_000);
  afterAll(async () => {
    await (rig as BrowserRig | undefined)?.stop();
  });

  it('keeps operations made offline across a reload and lands each once, in order, when online', async () => {
    const context = await rig.browser.newContext();
    const tab = await context.newPage();
    const url = `${rig.page.url}/?mode=queue&server=${encodeURIComponent(rig.courtside.url)}`;
    await tab.goto(url);
    await tab.waitForFunction(() => window.courtsideTest.state() === 'connected');
    await tab.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 }).catch(async () => {
      await tab.reload();
      await tab.waitForFunction(() => navigator.serviceWorker.controller !== null);
    });

    await context.setOffline(true);
    await tab.waitForFunction(() => window.courtsideTest.state() === 'offline');
    await tab.evaluate(() => {
      for (let n = 1; n <= 20; n++) (window.courtsideTest as { enqueue: (n: number) => void }).enqueue(n);
    });
    await tab.waitForFunction(() => (window.courtsideTest as { pending: () => number }).pending() === 20);

    await tab.reload();
    await tab.evaluate(() => (window.courtsideTest as { loaded: Promise<void> }).loaded);
    expect(await tab.evaluate(() => (window.courtsideTest as { pending: () => number }).pending())).toBe(20);
    expect(await tab.evaluate(() => window.courtsideTest.state())).not.toBe('connected');

    await context.setOffline(false);
    await tab.waitForFunction(() => (window.courtsideTest as { fates: unknown[] }).fates.length === 20, undefined, { timeout: 20_000 });
    const kinds = await tab.evaluate(() => (window.courtsideTest as { fates: Array<{ fate: { kind: string } }> }).fates.map((event) => event.fate.kind));
    expect(kinds).toEqual(Array(20).fill('applied'));
    const history = await rig.courtside.api('GET', '/api/history?channel=chat:browser&limit=100');
    const numbers = (history.body as { publications: Array<{ data: { n: number } }> }).publications.map((publication) => publication.data.n);
    expect(numbers).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await context.close();
  }, 60_000);

  it('shares one connection between two tabs', async () => {
    const context = await rig.browser.newContext();
    const url = `${rig.page.url}/?mode=tabs&server=${encodeURIComponent(rig.courtside.url)}`;
    const first = await context.newPage();
    await first.goto(url);
    const second = await context.newPage();
    await second.goto(url);
    for (const tab of [first, second]) await tab.waitForFunction(() => window.courtsideTest.state() === 'connected');
    const leaders = await Promise.all([first, second].map((tab) => tab.evaluate(() => (window.courtsideTest as { isLeader: () => boolean }).isLeader())));
    expect(leaders.filter(Boolean)).toHaveLength(1);
    const metrics = await (await fetch(`${rig.courtside.url}/metrics`)).text();
    expect(metrics).toMatch(/^courtside_connections 1$/m);
    const offset = await second.evaluate(() => (window.courtsideTest as { publish: (n: number) => Promise<number> }).publish(1));
    for (const tab of [first, second]) {
      await tab.waitForFunction((expected) => (window.courtsideTest as { offsets: number[] }).offsets.includes(expected), offset);
    }
    await context.close();
  }, 60_000);
});

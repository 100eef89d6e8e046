/**
 * The client in a real Chromium (Debian's, driven by playwright-core): the offline queue
 * survives a reload while offline (the page comes from its service worker, the operations from
 * IndexedDB) and drains exactly once, in order, when the browser is online again; and two tabs
 * share one connection. Without Chromium the suite says SKIPPED, except under CI=true, where it
 * fails.
 */

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { courtsideBinary, TestServer } from './server.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
const binary = courtsideBinary();
if (CHROMIUM === undefined) {
  const message = 'SKIPPED: no Chromium (apt-get install chromium): the browser tests need one';
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true, so this test must not be skipped)`);
  console.warn(message);
}

/** Serves the test page, its bundled script and its service worker. */
async function servePage(): Promise<{ server: Server; url: string }> {
  const here = resolve(import.meta.dirname, 'browser');
  const out = mkdtempSync(join(tmpdir(), 'courtside-browser-'));
  await build({ entryPoints: [join(here, 'app.ts')], bundle: true, format: 'esm', platform: 'browser', target: 'chrome120', conditions: ['source'], outfile: join(out, 'app.js'), logLevel: 'silent' });
  const files: Record<string, [string, string]> = {
    '/': [join(here, 'index.html'), 'text/html'],
    '/index.html': [join(here, 'index.html'), 'text/html'],
    '/app.js': [join(out, 'app.js'), 'text/javascript'],
    '/sw.js': [join(here, 'sw.js'), 'text/javascript'],
  };
  const server = createServer((request, response) => {
    const file = files[new URL(request.url ?? '/', 'http://x').pathname];
    if (file === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file[1] }).end(readFileSync(file[0]));
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  // `localhost` is a secure context: service workers, Web Locks.
  return { server, url: `http://localhost:${port}` };
}

describe.skipIf(CHROMIUM === undefined || binary === undefined)('@courtside/client in Chromium', () => {
  let courtside: TestServer;
  let page: { server: Server; url: string };
  let browser: Browser;

  beforeAll(async () => {
    courtside = await TestServer.start(binary ?? '');
    page = await servePage();
    browser = await chromium.launch({ executablePath: CHROMIUM ?? '', args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    page?.server.close();
    await (courtside as TestServer | undefined)?.stop();
  });

  it('keeps operations made offline across a reload and lands each once, in order, when online', async () => {
    const context = await browser.newContext();
    const tab = await context.newPage();
    const url = `${page.url}/?mode=queue&server=${encodeURIComponent(courtside.url)}`;
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
    const history = await courtside.api('GET', '/api/history?channel=chat:browser&limit=100');
    const numbers = (history.body as { publications: Array<{ data: { n: number } }> }).publications.map((publication) => publication.data.n);
    expect(numbers).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await context.close();
  }, 60_000);

  it('shares one connection between two tabs', async () => {
    const context = await browser.newContext();
    const url = `${page.url}/?mode=tabs&server=${encodeURIComponent(courtside.url)}`;
    const first = await context.newPage();
    await first.goto(url);
    const second = await context.newPage();
    await second.goto(url);
    for (const tab of [first, second]) await tab.waitForFunction(() => window.courtsideTest.state() === 'connected');
    const leaders = await Promise.all([first, second].map((tab) => tab.evaluate(() => (window.courtsideTest as { isLeader: () => boolean }).isLeader())));
    expect(leaders.filter(Boolean)).toHaveLength(1);
    const metrics = await (await fetch(`${courtside.url}/metrics`)).text();
    expect(metrics).toMatch(/^courtside_connections 1$/m);
    const offset = await second.evaluate(() => (window.courtsideTest as { publish: (n: number) => Promise<number> }).publish(1));
    for (const tab of [first, second]) {
      await tab.waitForFunction((expected) => (window.courtsideTest as { offsets: number[] }).offsets.includes(expected), offset);
    }
    await context.close();
  }, 60_000);
});

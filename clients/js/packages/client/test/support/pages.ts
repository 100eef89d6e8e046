/**
 * Pages for the browser tests: an app's entry bundled by esbuild (workspace packages read from
 * their sources), served with its HTML and any other files from `localhost` (a secure context:
 * service workers, Web Locks, IndexedDB); and Debian's Chromium, if there is one.
 */

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

import { TestServer } from '../server.js';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));

/** Says a browser suite is skipped (or fails under CI=true) when there is no Chromium. */
export function chromiumOrSkip(): string | undefined {
  if (CHROMIUM === undefined) {
    const message = 'SKIPPED: no Chromium (apt-get install chromium): the browser tests need one';
    if (process.env.CI === 'true') throw new Error(`${message} (CI=true, so this test must not be skipped)`);
    console.warn(message);
  }
  return CHROMIUM;
}

/** Serves `html` at `/` and `/index.html`, the bundle of `entry` at `script`, and `files` (path → [file, type]). */
export async function servePage(html: string, entry: string, script: string, files: Record<string, [string, string]> = {}): Promise<{ server: Server; url: string }> {
  const out = mkdtempSync(join(tmpdir(), 'courtside-page-'));
  await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'chrome120', conditions: ['source'], outfile: join(out, 'bundle.js'), logLevel: 'silent' });
  const served: Record<string, [string, string]> = {
    '/': [html, 'text/html'],
    '/index.html': [html, 'text/html'],
    [script]: [join(out, 'bundle.js'), 'text/javascript'],
    ...files,
  };
  const server = createServer((request, response) => {
    const file = served[new URL(request.url ?? '/', 'http://x').pathname];
    if (file === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file[1] }).end(readFileSync(file[0]));
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { server, url: `http://localhost:${port}` };
}

/** A real server, a served page and a Chromium, started together and stopped together. */
export class BrowserRig {
  private constructor(
    readonly courtside: TestServer,
    readonly page: { server?: Server; url: string },
    readonly browser: Browser,
  ) {}

  /** `page` serves the app once the server is up (and, e.g., seeded); no `server`: the server serves it. */
  static async start(binary: string, page: (courtside: TestServer) => Promise<{ server?: Server; url: string }>): Promise<BrowserRig> {
    const courtside = await TestServer.start(binary);
    const served = await page(courtside);
    const browser = await chromium.launch({ executablePath: CHROMIUM ?? '', args: ['--no-sandbox'] });
    return new BrowserRig(courtside, served, browser);
  }

  async stop(): Promise<void> {
    await this.browser.close();
    this.page.server?.close();
    await this.courtside.stop();
  }
}

/**
 * What the page tests share: a real server serving the pages and a Chromium, started before a
 * suite and stopped after it (`servedPages`), screenshots' folder, and the accessibility check
 * (axe-core run in the page, its serious and critical violations named).
 */

import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';

import { courtsideBinary, type TestServer } from '../../client/test/server.js';
import { BrowserRig, CHROMIUM, chromiumOrSkip } from '../../client/test/support/pages.js';

chromiumOrSkip();
const binary = courtsideBinary();

/** Whether the page suites can run here (a `courtside` binary and Chromium). */
export const canRun = CHROMIUM !== undefined && binary !== undefined;

/** Where screenshots are kept (test artifacts, not committed). */
export const artifacts = resolve(import.meta.dirname, '../test-artifacts');

/** The server (after `setup`) and browser of a suite, filled in before its tests run. */
export function servedPages(setup: (courtside: TestServer) => Promise<void>): { courtside: TestServer; browser: Browser } {
  const served = {} as { courtside: TestServer; browser: Browser };
  let rig: BrowserRig | undefined;
  beforeAll(async () => {
    rig = await BrowserRig.start(binary ?? '', async (server) => {
      await setup(server);
      return { url: server.url };
    });
    served.courtside = rig.courtside;
    served.browser = rig.browser;
    mkdirSync(artifacts, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });
  return served;
}

const AXE = readFileSync(resolve(import.meta.dirname, '../../../node_modules/axe-core/axe.min.js'), 'utf8');

/** Screenshots of `page` as it stands at desktop and phone width (`{name}-desktop.png`, `{name}-phone.png`). */
export async function screenshots(page: Page, name: string): Promise<void> {
  const viewport = page.viewportSize();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: resolve(artifacts, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: resolve(artifacts, `${name}-phone.png`), fullPage: true });
  if (viewport !== null) await page.setViewportSize(viewport);
}

/** The ids of the serious and critical axe-core violations on `page` as it stands. */
export async function seriousViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ content: AXE });
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: () => Promise<{ violations: Array<{ id: string; impact: string | null }> }> } }).axe;
    const result = await axe.run();
    return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id);
  });
}

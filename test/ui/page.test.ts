/**
 * The operator page in a real browser: Debian's Chromium, driven by
 * playwright-core (never a downloaded browser). It loads /ui, sees the
 * count on a state change after API calls (pushed by /v3/events, not by
 * reloading), finds a volume's history by id, and saves a screenshot that
 * is not blank.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableVolume, useApp } from '../helpers/app.ts';

const CHROMIUM = '/usr/bin/chromium';
const t = useApp({ listen: true });
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

describe('the operator page', () => {
  it('shows live counts on the diagrams, the transitions as they come, and a history by id', async () => {
    const first = await availableVolume(t);
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${t.url}/ui`);
    // The available state of the volume diagram carries its count.
    const available = page.locator('#machine-volume g.node', { has: page.locator('title', { hasText: /^available$/ }) });
    await expect.poll(async () => available.getAttribute('data-count'), { timeout: 20_000 }).toBe('1');
    await expect.poll(async () => (await available.locator('text').first().textContent()) ?? '').toMatch(/available · 1/);

    // Changes made through the API reach the page by the event stream.
    const second = await availableVolume(t);
    await page.waitForFunction("document.querySelector('#log')?.textContent?.includes('--BACKEND_CREATED--> available')", undefined, {
      timeout: 20_000,
    });
    await expect.poll(async () => available.getAttribute('data-count'), { timeout: 20_000 }).toBe('2');
    // The edge it came by carries its rate: creating.backend --BACKEND_CREATED--> available, once this minute.
    const edge = page.locator('#machine-volume g.edge', { has: page.locator('title', { hasText: /^creating_backend->available$/ }) });
    await expect.poll(async () => edge.first().getAttribute('data-per-minute'), { timeout: 20_000 }).toBe('1');
    expect(await edge.first().locator('text').textContent()).toMatch(/^BACKEND_CREATED.* · 1\/min$/);
    expect(await page.locator('#workers tbody tr').count()).toBeGreaterThanOrEqual(1);

    // The history of a volume, by id.
    await page.fill('#rid', second);
    await page.click('#history button');
    await page.waitForSelector('#transitions tbody tr:nth-child(3)');
    expect(await page.locator('#transitions').textContent()).toMatch(/CREATE[\s\S]*BACKEND_CREATED[\s\S]*available/);

    // Not blank: the page's screenshot differs from a blank page's of the same size.
    const dir = mkdtempSync(join(tmpdir(), 'volstate-ui-'));
    const shot = await page.screenshot({ fullPage: false });
    writeFileSync(join(dir, 'ui.png'), shot);
    if (process.env.VOLSTATE_UI_SHOT) writeFileSync(process.env.VOLSTATE_UI_SHOT, shot);
    const blank = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    await blank.setContent('<html><body style="background:white"></body></html>');
    const empty = await blank.screenshot();
    expect(shot.length).toBeGreaterThan(empty.length * 3);
    expect(shot.equals(empty)).toBe(false);
    await blank.close();
    await page.close();
    expect(first).not.toBe(second);
  }, 90_000);
});

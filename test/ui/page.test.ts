/**
 * The operator page in a real browser: Debian's Chromium, driven by
 * playwright-core (never a downloaded browser). It draws every diagram
 * (each machine's overview, and each operation's steps a click on its
 * status opens) readable at 1280 px: every label at least 10 px as
 * rendered, no label over another; it zooms and pans. It loads /ui, sees
 * the count on a status change after API calls (pushed by /v3/events, not
 * by reloading), the rate on the edge taken and in the clicked status's
 * transitions, finds a volume's history by id, and saves a screenshot that
 * is not blank.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableVolume, useApp } from '../helpers/app.ts';
import { RESOURCE_TYPES, modelOf } from '../../machines/index.ts';
import { statusesOf } from '../../src/diagrams.ts';

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

/** The smallest label of the diagram in `box` (CSS px, as rendered) and every pair of labels that overlap. */
async function legibility(page: Page, box: string) {
  return page.locator(box).evaluate((el) => {
    const svg = el.querySelector('svg')!;
    const k = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    const texts = [...svg.querySelectorAll('text')].map((t) => ({
      text: t.textContent ?? '',
      px: Number(t.getAttribute('font-size')) * k,
      r: t.getBoundingClientRect(),
    }));
    const overlaps: string[] = [];
    const e = 1; // a pixel of touching lines is not an overlap
    texts.forEach((a, i) =>
      texts.slice(i + 1).forEach((b) => {
        if (a.r.left + e < b.r.right - e && b.r.left + e < a.r.right - e && a.r.top + e < b.r.bottom - e && b.r.top + e < a.r.bottom - e)
          overlaps.push(`"${a.text}" over "${b.text}"`);
      }),
    );
    return {
      labels: texts.length,
      smallest: Math.min(...texts.map((t) => t.px)),
      overlaps,
      width: Math.round(svg.getBoundingClientRect().width),
    };
  });
}

describe('the operator page', () => {
  it("draws every diagram readable at 1280 px (labels ≥ 10 px, none over another); a click opens an operation's steps; it zooms and pans", async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
    // Drawn (the page says so), or failed with the script's own error rather than a timeout.
    const failed = new Promise<never>((_, reject) => page.on('pageerror', reject));
    await page.goto(`${t.url}/ui`);
    await Promise.race([page.waitForSelector('body[data-ready]', { timeout: 20_000 }), failed]);
    // What an operator sees first, at 1280 × 800: the volume's statuses and the requests between them.
    const shot = await page.screenshot({ fullPage: false });
    if (process.env.VOLSTATE_UI_SHOT) writeFileSync(process.env.VOLSTATE_UI_SHOT.replace(/(\.png)?$/, '-1280x800.png'), shot);
    for (const m of RESOURCE_TYPES) {
      const overview = await legibility(page, `#machine-${m} > .viewer`);
      console.log(`${m}: ${overview.labels} labels, the smallest ${overview.smallest.toFixed(1)} px, drawn ${overview.width} px wide`);
      expect(overview.labels, `${m}: its labels`).toBeGreaterThan(3);
      expect(overview.smallest, `${m}: the smallest label, px (the diagram drawn ${overview.width} px wide)`).toBeGreaterThanOrEqual(10);
      expect(overview.overlaps, `${m}: labels over one another`).toEqual([]);
      for (const s of statusesOf(modelOf(m)).filter((x) => x.steps.length)) {
        await page
          .locator(`#machine-${m} > .viewer g.node`, { has: page.locator('title', { hasText: new RegExp(`^${s.name}$`) }) })
          .click();
        await page.waitForSelector(`#machine-${m} .steps h3:text-is("${s.name}: the steps of its operation")`);
        const steps = await legibility(page, `#machine-${m} .steps .viewer`);
        console.log(`${m}.${s.name}: ${steps.labels} labels, the smallest ${steps.smallest.toFixed(1)} px, drawn ${steps.width} px wide`);
        expect(steps.smallest, `${m}.${s.name}: the smallest label, px (drawn ${steps.width} px wide)`).toBeGreaterThanOrEqual(10);
        expect(steps.overlaps, `${m}.${s.name}: labels over one another`).toEqual([]);
        expect(await page.locator(`#machine-${m} .detail h3`).textContent()).toMatch(new RegExp(`^${s.name}: 0 live`));
      }
    }

    // Zoom (the + button) and pan (a drag, which is no click: the selection stays).
    const viewer = page.locator('#machine-volume > .viewer');
    const fitted = Number(await viewer.getAttribute('data-scale'));
    await viewer.locator('button[title="zoom in"]').click();
    expect(Number(await viewer.getAttribute('data-scale'))).toBeCloseTo(fitted * 1.25, 5);
    const before = await viewer.locator('.stage').evaluate((el) => el.style.transform);
    const b = (await viewer.boundingBox())!;
    await page.mouse.move(b.x + 200, b.y + 150);
    await page.mouse.down();
    await page.mouse.move(b.x + 320, b.y + 210, { steps: 5 });
    await page.mouse.up();
    expect(await viewer.locator('.stage').evaluate((el) => el.style.transform)).not.toBe(before);
    await viewer.locator('button[title="fit the width"]').click();
    expect(Number(await viewer.getAttribute('data-scale'))).toBeCloseTo(fitted, 5);
    await page.close();
  }, 90_000);

  it('shows live counts on the diagrams, the transitions as they come, and a history by id', async () => {
    const first = await availableVolume(t);
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    // The event stream is held back until the second volume below is made: what happens between the
    // page's first counts and its stream's connecting must still reach it (the stream starts at the
    // counts' last_event_id). Without that, this is the race CI met: the volume made before the
    // stream connected never showed.
    let connect!: () => void;
    const connected = new Promise<void>((r) => (connect = r));
    await page.route('**/v3/events**', async (route) => {
      await connected;
      await route.continue();
    });
    await page.goto(`${t.url}/ui`);
    // The available state of the volume diagram carries its count.
    const available = page.locator('#machine-volume g.node', { has: page.locator('title', { hasText: /^available$/ }) });
    await expect.poll(async () => available.getAttribute('data-count'), { timeout: 20_000 }).toBe('1');
    await expect.poll(async () => (await available.locator('text').first().textContent()) ?? '').toMatch(/available · 1/);

    // Changes made through the API reach the page by the event stream.
    const second = await availableVolume(t);
    connect();
    await page.waitForFunction("document.querySelector('#log')?.textContent?.includes('--BACKEND_CREATED--> available')", undefined, {
      timeout: 20_000,
    });
    await expect.poll(async () => available.getAttribute('data-count'), { timeout: 20_000 }).toBe('2');
    // The edge it came by carries its rate: creating --BACKEND_CREATED--> available, once this minute.
    const edge = page.locator('#machine-volume g.edge', { has: page.locator('title', { hasText: /^creating->available$/ }) });
    await expect.poll(async () => edge.first().getAttribute('data-per-minute'), { timeout: 20_000 }).toBe('1');
    expect(await edge.first().locator('text').textContent()).toMatch(/^BACKEND_CREATED.* · 1\/min$/);
    expect(await page.locator('#workers tbody tr').count()).toBeGreaterThanOrEqual(1);
    // A click on a status lists its transitions with their rates: into available, BACKEND_CREATED from creating, once.
    await available.click();
    await expect
      .poll(async () => page.locator('#machine-volume .detail table.in').textContent())
      .toMatch(/BACKEND_CREATEDfrom creating1\/min/);
    expect(await page.locator('#machine-volume .detail table.out').textContent()).toMatch(/EXTENDto extending0\/min/);

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

  it('renders the OpenAPI document as a page: every operation of /openapi.json, each schema link leading to its schema', async () => {
    const doc = (await (await fetch(`${t.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
    const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((op) => op.operationId));
    const page = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${t.url}/openapi`);
    expect(await page.locator('section.op').count()).toBe(ids.length);
    for (const id of ['getV3ProjectIdVolumesId', 'postV3ProjectIdVolumes']) expect(ids).toContain(id);
    await expect
      .poll(async () => page.locator('#getV3ProjectIdVolumesId h3').textContent())
      .toMatch(/GET \/v3\/\{project_id\}\/volumes\/\{id\}/);
    // Every schema link has its schema on the page.
    const targets = await page.locator('pre a[href^="#schema-"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')!.slice(1)));
    expect(targets.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const id of new Set(targets)) if ((await page.locator(`[id="${id}"]`).count()) !== 1) missing.push(id);
    expect(missing).toEqual([]);
    await page.close();
  });
});

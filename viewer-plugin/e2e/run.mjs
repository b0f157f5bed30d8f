// End-to-end test: a live `ivs serve` over real page scans from ../shared/data, driven in Debian's
// Chromium through playwright-core. Exit 0 = passed or skipped (the reason is printed), 1 = failed.
//
//   node e2e/run.mjs            (env: IVS_BIN, CHROMIUM, E2E_KEEP=1 keeps the temp dir)
//
// What it does: serves the scans and generated manifests over HTTP (Mirador on an http:// page
// cannot load file:// images), runs ivs ingest → fetch → embed --model fingerprint → index → serve,
// then opens /viewer and checks: a box drawn over a woodcut finds that woodcut first; clicking a hit
// in another book opens a new window on the hit's canvas with the region highlighted; picking a
// marked region finds results too. Screenshots go to test-output/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  chromiumArgs, chromiumPath, freePort, getJson, inTempDir, ivsBin, logger, outDir, pluginDir, run as runIn,
  runScript, sharedData, Skip, startServer, staticServer, writeManifests,
} from './harness.mjs';

const { check, log } = logger('e2e');
const run = (cmd, args, env) => runIn(log, cmd, args, env);
const bundle = path.join(pluginDir, 'dist', 'mirador-find-similar.viewer.js');

function iou(a, b) {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  const inter = w > 0 && h > 0 ? w * h : 0;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/** Canvas xywh → page pixels, through the window's OSD viewport (single view: world = canvas units). */
async function canvasBoxOnPage(page, xywh) {
  return page.evaluate(([x, y, w, h]) => {
    const { OSDReferences } = window.MiradorFindSimilar.Mirador;
    const windowId = window.miradorInstance.store.getState().workspace.windowIds[0];
    const viewer = OSDReferences.get(windowId).current;
    const b = viewer.viewport.getBounds(true);
    const size = viewer.viewport.getContainerSize();
    const r = viewer.element.getBoundingClientRect();
    const s = size.x / b.width;
    return {
      h: h * s, w: w * s, x: r.left + (x - b.x) * s, y: r.top + (y - b.y) * s,
    };
  }, xywh);
}

async function main() {
  if (!existsSync(sharedData)) throw new Skip(`no test data at ${sharedData}`);
  if (!existsSync(ivsBin)) throw new Skip(`no ivs at ${ivsBin} (set IVS_BIN)`);
  if (!existsSync(chromiumPath)) throw new Skip(`no Chromium at ${chromiumPath} (apt-get install chromium)`);
  if (!existsSync(bundle)) await run('npm', ['run', 'build', '--prefix', pluginDir]);
  mkdirSync(outDir, { recursive: true });

  await inTempDir(log, 'ivs-e2e-', async (tmp, cleanups) => {
    const staticPort = await freePort();
    const staticBase = `http://127.0.0.1:${staticPort}`;
    const files = await staticServer({ data: sharedData, m: path.join(tmp, 'm') }, staticPort);
    cleanups.push(() => files.close());
    const collection = await writeManifests(log, tmp, staticBase, { minBooks: 2 });

    const dataDir = path.join(tmp, 'ivs-data');
    const env = { IVS_ALLOW_PRIVATE_URLS: '1', IVS_DATA_DIR: dataDir };
    await run(ivsBin, ['--data-dir', dataDir, 'ingest', collection], env);
    await run(ivsBin, ['--data-dir', dataDir, 'fetch', '-q'], env);
    await run(ivsBin, ['--data-dir', dataDir, 'embed', '--model', 'fingerprint'], env);
    await run(ivsBin, ['--data-dir', dataDir, 'index', '--model', 'fingerprint'], env);

    const { base, stop } = await startServer(dataDir, env);
    cleanups.push(() => stop());
    check((await fetch(`${base}/viewer`)).ok, '/viewer answers');

    // The query: the largest non-flagged region of the first book's first canvas (a woodcut).
    const coll = await getJson(`${base}/collection`);
    const manifestIds = coll.items.map((m) => m.id);
    let query = null;
    for (const manifestId of manifestIds) {
      const manifest = await getJson(manifestId);
      const canvas = manifest.items[0];
      const pageRef = (canvas.annotations || [])[0];
      if (!pageRef) continue;
      const annos = (await getJson(pageRef.id)).items || [];
      for (const a of annos) {
        const xywh = a.target.selector.value.replace('xywh=', '').split(',').map(Number);
        if (!query || xywh[2] * xywh[3] > query.xywh[2] * query.xywh[3]) {
          query = {
            annotationId: a.id, canvasId: canvas.id, manifestId, xywh,
          };
        }
      }
      if (query) break;
    }
    check(query !== null, `a region to query (${query && query.xywh})`);

    const browser = await chromium.launch({
      args: chromiumArgs, executablePath: chromiumPath,
    });
    cleanups.unshift(() => browser.close());
    const page = await browser.newPage({ viewport: { height: 900, width: 1400 } });
    page.on('pageerror', (e) => log('page error:', e.message));
    // The whole run happens under the service's Content-Security-Policy: nothing may be refused.
    const refused = [];
    page.on('console', (msg) => { if (msg.text().includes('Content Security Policy')) refused.push(msg.text()); });
    const viewerPage = await page.goto(`${base}/viewer?model=fingerprint&manifest=${encodeURIComponent(query.manifestId)}`);
    check((viewerPage.headers()['content-security-policy'] || '').includes("script-src 'self';"),
      '/viewer sends a Content-Security-Policy without inline scripts');
    await page.waitForSelector('.mirador-find-similar-button', { timeout: 60_000 });
    await page.waitForFunction(() => {
      const { OSDReferences } = window.MiradorFindSimilar.Mirador;
      const ids = window.miradorInstance.store.getState().workspace.windowIds;
      const ref = ids.length && OSDReferences.get(ids[0]);
      return ref && ref.current && ref.current.world.getItemCount() > 0 && ref.current.world.getItemAt(0).getFullyLoaded();
    }, null, { timeout: 60_000 });

    // 1. Draw a box over the woodcut.
    await page.click('.mirador-find-similar-button');
    await page.waitForSelector('.mirador-find-similar-draw');
    const box = await canvasBoxOnPage(page, query.xywh);
    await page.mouse.move(box.x + 1, box.y + 1);
    await page.mouse.down();
    await page.mouse.move(box.x + box.w / 2, box.y + box.h / 2, { steps: 5 });
    await page.mouse.move(box.x + box.w - 1, box.y + box.h - 1, { steps: 5 });
    await page.mouse.up();
    await page.waitForSelector('.mirador-find-similar-status[data-status="done"], .mirador-find-similar-status[data-status="error"]', { timeout: 60_000 });
    const statusText = await page.textContent('.mirador-find-similar-status');
    const hits = await page.$$eval('.mirador-find-similar-hit', (els) => els.map((e) => ({
      canvas: e.dataset.canvas, manifest: e.dataset.manifest, xywh: e.dataset.xywh.split(',').map(Number),
    })));
    await page.screenshot({ path: path.join(outDir, 'draw-results.png') });
    check(hits.length > 0, `drawing a box gives results (${statusText})`);
    check(hits[0].canvas === query.canvasId && iou(hits[0].xywh, query.xywh) > 0.8,
      `first hit is the drawn woodcut (${hits[0].canvas} ${hits[0].xywh} vs ${query.xywh})`);

    // 2. A hit in another book opens a new window there, with the region highlighted.
    const otherIndex = hits.findIndex((h) => h.manifest && h.manifest !== query.manifestId);
    check(otherIndex >= 0, 'a hit in another book');
    const other = hits[otherIndex];
    await page.click(`.mirador-find-similar-hit[data-rank="${otherIndex + 1}"]`);
    await page.waitForFunction(() => window.miradorInstance.store.getState().workspace.windowIds.length === 2);
    const newWindow = await page.evaluate(() => {
      const state = window.miradorInstance.store.getState();
      const id = state.workspace.windowIds[1];
      return state.windows[id];
    });
    check(newWindow.manifestId === other.manifest && newWindow.canvasId === other.canvas,
      `new window on ${other.manifest} at ${other.canvas}`);
    const highlight = `.mirador-find-similar-highlight[data-canvas="${other.canvas}"][data-xywh="${other.xywh.join(',')}"]`;
    await page.waitForSelector(highlight, { timeout: 60_000 });
    const hbox = await page.$eval(highlight, (e) => e.getBoundingClientRect().width);
    check(hbox > 2, `the hit region is highlighted in the new window (${Math.round(hbox)} px wide)`);
    await page.waitForTimeout(1500); // let the new window's tiles draw for the screenshot
    await page.screenshot({ path: path.join(outDir, 'other-book-window.png') });

    // 3. Pick a marked region of the first window's page.
    await page.waitForSelector('.mirador-find-similar-region', { timeout: 30_000 });
    const regionButton = await page.$(`.mirador-find-similar-region[data-region="${query.annotationId.split('/').pop()}"]`)
      || await page.$('.mirador-find-similar-region');
    await regionButton.click();
    await page.waitForFunction(() => {
      const el = document.querySelector('.mirador-find-similar-status');
      return el && el.dataset.status !== 'loading';
    }, null, { timeout: 60_000 });
    const regionHits = await page.$$eval('.mirador-find-similar-hit', (els) => els.length);
    await page.screenshot({ path: path.join(outDir, 'region-results.png') });
    check(regionHits > 0, `picking a marked region gives results (${regionHits})`);

    // 4. A link to a region (as the search page makes) opens the viewer at that canvas, zoomed onto it.
    const link = `${base}/viewer?manifest=${encodeURIComponent(other.manifest)}`
      + `&canvas=${encodeURIComponent(other.canvas)}&xywh=${other.xywh.join(',')}`;
    await page.goto(link);
    const linked = `.mirador-find-similar-highlight[data-canvas="${other.canvas}"][data-xywh="${other.xywh.join(',')}"]`;
    await page.waitForSelector(linked, { timeout: 60_000 });
    const opened = await page.evaluate(() => {
      const state = window.miradorInstance.store.getState();
      const id = state.workspace.windowIds[0];
      return { canvasId: state.windows[id].canvasId, viewer: state.viewers[id] };
    });
    check(opened.canvasId === other.canvas, `a region link opens its canvas (${opened.canvasId})`);
    const centre = [other.xywh[0] + other.xywh[2] / 2, other.xywh[1] + other.xywh[3] / 2];
    check(opened.viewer && Math.abs(opened.viewer.x - centre[0]) < other.xywh[2]
      && Math.abs(opened.viewer.y - centre[1]) < other.xywh[3], 'and centres the view on the region');
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(outDir, 'region-link.png') });
    check(refused.length === 0, `no Content-Security-Policy violation (${refused.slice(0, 3).join(' | ')})`);
    log('screenshots in', outDir);
  });
}

runScript(log, 'e2e', main);

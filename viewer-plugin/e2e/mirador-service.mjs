// The service in the real Mirador 4 (npm `mirador`, its UMD bundle), no plugin: an augmented manifest from a
// live `ivs serve` over real page scans and ALTO from ../shared/data, in Debian's Chromium (playwright-core).
// Exit 0 = passed or skipped (the reason is printed), 1 = failed.
//
//   node e2e/mirador-service.mjs            (env: IVS_BIN, CHROMIUM, E2E_KEEP=1 keeps the temp dir)
//
// Checks: Mirador loads the region AnnotationPage linked from the canvas (its redux store holds it), draws the
// regions over the page (pixels on its annotation overlay), lists them in the annotation side panel, and its
// search panel sends a Content Search 1.0 query to the service and shows the hits. (The regions are
// `commenting`, which stock Mirador lists; tests/browser/test_stock_clients.py checks a Mirador with no
// configuration at all.)
// Screenshots go to test-output/.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  chromiumArgs, chromiumPath, freePort, getJson, inTempDir, ivsBin, logger, outDir, pluginDir, run as runIn,
  runScript, sharedData, Skip, startServer, staticServer, writeManifests,
} from './harness.mjs';

const { check, log } = logger('mirador-service');
const run = (cmd, args, env) => runIn(log, cmd, args, env);
const miradorDist = path.join(pluginDir, 'node_modules', 'mirador', 'dist');

/** A manifest of the service whose canvas has regions, and a word of their context that search finds. */
async function pickTarget(base) {
  const coll = await getJson(`${base}/collection`);
  for (const ref of coll.items) {
    const manifest = await getJson(ref.id);
    for (const canvas of manifest.items) {
      const pageRef = (canvas.annotations || []).find((a) => a.id.startsWith(base));
      if (!pageRef) continue;
      const regions = (await getJson(pageRef.id)).items || [];
      if (!regions.length) continue;
      const searchService = [].concat(manifest.service || [])
        .find((s) => (s.profile || '') === 'http://iiif.io/api/search/1/search');
      if (!searchService) throw new Error(`${ref.id} has no Content Search 1.0 service`);
      const acService = [].concat(searchService.service || [])
        .find((s) => /autocomplete/i.test(s.type || s['@type'] || ''));
      const base1 = (searchService.id || searchService['@id']);
      for (const letter of 'dpscmaelt') {
        const ac = acService ? await getJson(`${acService.id || acService['@id']}?q=${letter}`) : { terms: [] };
        const terms = (ac.terms || []).map((t) => t.match).filter((t) => t.length >= 4);
        for (const term of terms) {
          const answer = await getJson(`${base1}?q=${encodeURIComponent(term)}`);
          if ((answer.resources || []).length) {
            return {
              canvasId: canvas.id, manifestId: ref.id, pageId: pageRef.id, regions: regions.length, term,
              hits: answer.resources.length,
            };
          }
        }
      }
    }
  }
  throw new Error('no canvas with regions and searchable context text');
}

function pageHtml(target, miradorBase) {
  const config = {
    id: 'mirador',
    annotations: {
      // Our regions are 'commenting' (in Mirador 4.0.0's default list); find-similar hits are 'highlighting'.
      filteredMotivations: ['oa:commenting', 'oa:tagging', 'sc:painting', 'commenting', 'tagging',
        'highlighting', 'supplementing'],
    },
    window: { highlightAllAnnotations: true, panels: { annotations: true, search: true } },
    windows: [{
      canvasId: target.canvasId, defaultSideBarPanel: 'annotations', highlightAllAnnotations: true,
      manifestId: target.manifestId, sideBarOpen: true,
    }],
  };
  return `<!doctype html><html><head><meta charset="utf-8"><title>Mirador + ivs</title>
<style>html,body,#mirador{margin:0;height:100%;width:100%}</style></head>
<body><div id="mirador"></div><script src="${miradorBase}/mirador.min.js"></script>
<script>window.miradorInstance = Mirador.viewer(${JSON.stringify(config)});</script></body></html>`;
}

async function main() {
  if (!existsSync(sharedData)) throw new Skip(`no test data at ${sharedData}`);
  if (!existsSync(ivsBin)) throw new Skip(`no ivs at ${ivsBin} (set IVS_BIN)`);
  if (!existsSync(chromiumPath)) throw new Skip(`no Chromium at ${chromiumPath} (apt-get install chromium)`);
  if (!existsSync(path.join(miradorDist, 'mirador.min.js'))) throw new Skip(`no Mirador at ${miradorDist} (npm ci)`);
  mkdirSync(outDir, { recursive: true });

  await inTempDir(log, 'ivs-mirador-', async (tmp, cleanups) => {
    const staticPort = await freePort();
    const staticBase = `http://127.0.0.1:${staticPort}`;
    const files = await staticServer({ data: sharedData, m: path.join(tmp, 'm'), mirador: miradorDist }, staticPort);
    cleanups.push(() => files.close());
    const collection = await writeManifests(log, tmp, staticBase, { label: 'Mirador test' });
    const dataDir = path.join(tmp, 'ivs-data');
    const env = { IVS_DATA_DIR: dataDir };
    await run(ivsBin, ['--data-dir', dataDir, 'ingest', collection], env);
    const { base, stop } = await startServer(dataDir, env);
    cleanups.push(() => stop());

    const target = await pickTarget(base);
    log(`target: ${target.manifestId} ${target.canvasId}: ${target.regions} regions; search "${target.term}" (${target.hits} hits)`);
    writeFileSync(path.join(tmp, 'm', 'index.html'), pageHtml(target, `${staticBase}/mirador`));

    const browser = await chromium.launch({
      args: chromiumArgs, executablePath: chromiumPath,
    });
    cleanups.unshift(() => browser.close());
    const page = await browser.newPage({ viewport: { height: 900, width: 1400 } });
    page.on('pageerror', (e) => log('page error:', e.message));
    await page.goto(`${staticBase}/m/index.html`);

    // 1. Mirador fetched the canvas's region page from the service: its store holds every region.
    await page.waitForFunction(([canvasId, pageId]) => {
      const { annotations } = window.miradorInstance.store.getState();
      const entry = annotations[canvasId] && annotations[canvasId][pageId];
      return entry && entry.json && !entry.isFetching;
    }, [target.canvasId, target.pageId], { timeout: 60_000 });
    const loaded = await page.evaluate(([canvasId, pageId]) => {
      const entry = window.miradorInstance.store.getState().annotations[canvasId][pageId];
      return (entry.json.items || []).length;
    }, [target.canvasId, target.pageId]);
    check(loaded === target.regions, `Mirador loaded the region AnnotationPage (${loaded} regions)`);

    // 2. The side panel lists them.
    const windowId = await page.evaluate(() => window.miradorInstance.store.getState().workspace.windowIds[0]);
    const openPanel = (content) => page.evaluate(([id, c]) => {
      const actions = window.Mirador.actions || window.Mirador; // the UMD exports the actions at the top
      window.miradorInstance.store.dispatch(actions.addOrUpdateCompanionWindow(id, { content: c, position: 'left' }));
    }, [windowId, content]);
    await openPanel('annotations');
    try {
      await page.waitForSelector('[annotationid]', { timeout: 30_000 });
    } finally {
      await page.screenshot({ path: path.join(outDir, 'mirador-annotations-panel.png') });
    }
    const listed = await page.$$eval('[annotationid]', (els) => els.map((e) => e.getAttribute('annotationid')));
    check(listed.length === target.regions, `the annotation panel lists the regions (${listed.length})`);

    // 3. They are drawn: wait for the page image, then look for stroke pixels on Mirador's annotation overlay.
    await page.waitForFunction(() => {
      const { OSDReferences } = window.Mirador;
      const ids = window.miradorInstance.store.getState().workspace.windowIds;
      const ref = ids.length && OSDReferences.get(ids[0]);
      return ref && ref.current && ref.current.world.getItemCount() > 0 && ref.current.world.getItemAt(0).getFullyLoaded();
    }, null, { timeout: 60_000 });
    await page.waitForTimeout(1000);
    const drawn = await page.evaluate(() => {
      const { OSDReferences } = window.Mirador;
      const id = window.miradorInstance.store.getState().workspace.windowIds[0];
      const viewer = OSDReferences.get(id).current;
      const drawer = viewer.drawer && viewer.drawer.canvas;
      let painted = 0;
      viewer.element.querySelectorAll('canvas').forEach((c) => {
        if (c === drawer || !c.width || !c.height) return;
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted += 1;
      });
      return painted;
    });
    await page.screenshot({ path: path.join(outDir, 'mirador-regions.png') });
    check(drawn > 100, `the regions are drawn on the annotation overlay (${drawn} pixels)`);

    // 4. Content Search 1.0 from Mirador's own search panel.
    await openPanel('search');
    const input = await page.waitForSelector('input[id^="search-"]', { timeout: 30_000 });
    await input.fill(target.term);
    await input.press('Enter');
    await page.waitForFunction((id) => {
      const searches = window.miradorInstance.store.getState().searches[id] || {};
      return Object.values(searches).some((s) => Object.values(s.data || {}).some((d) => d.json && !d.isFetching));
    }, windowId, { timeout: 60_000 });
    const result = await page.evaluate((id) => {
      const searches = window.miradorInstance.store.getState().searches[id];
      const data = Object.values(searches).flatMap((s) => Object.entries(s.data || {}));
      const [url, d] = data[0];
      return { hits: (d.json.hits || []).length, resources: (d.json.resources || []).length, url };
    }, windowId);
    check(result.url.startsWith(`${base}/search/1/`), `Mirador asked the service's Content Search 1.0 (${result.url})`);
    check(result.resources === target.hits && result.hits > 0, `and got ${result.resources} hits for "${target.term}"`);
    await page.waitForFunction((term) => [...document.querySelectorAll('li, [role="listitem"], button')]
      .some((e) => e.innerText && e.innerText.toLowerCase().includes(term.toLowerCase())), target.term, { timeout: 30_000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(outDir, 'mirador-search.png') });
    check(true, 'the search panel shows the hits with the matched word');
    log('screenshots in', outDir);
  });
}

runScript(log, 'mirador-service', main);

// The service in the real Mirador 4 (npm `mirador`, its UMD bundle), no plugin: an augmented manifest from a
// live `ivs serve` over real page scans and ALTO from ../shared/data, in Debian's Chromium (playwright-core).
// Exit 0 = passed or skipped (the reason is printed), 1 = failed.
//
//   node e2e/mirador-service.mjs            (env: IVS_BIN, CHROMIUM, E2E_KEEP=1 keeps the temp dir)
//
// Checks: Mirador loads the region AnnotationPage linked from the canvas (its redux store holds it), draws the
// regions over the page (pixels on its annotation overlay), lists them in the annotation side panel (with
// `annotations.filteredMotivations` naming our motivation: Mirador 4.0.0 lists only commenting/tagging by
// default), and its search panel sends a Content Search 1.0 query to the service and shows the hits.
// Screenshots go to test-output/.
import { spawn } from 'node:child_process';
import {
  createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, realpathSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const pluginDir = path.resolve(here, '..');
const repo = path.resolve(pluginDir, '..');
// Real path: the manifests name files by their resolved path (../shared may be a link).
const sharedDataLink = path.resolve(repo, '..', 'shared', 'data');
const sharedData = existsSync(sharedDataLink) ? realpathSync(sharedDataLink) : sharedDataLink;
const outDir = path.join(pluginDir, 'test-output');
const ivsBin = process.env.IVS_BIN || path.join(repo, '.venv', 'bin', 'ivs');
const python = path.join(path.dirname(ivsBin), 'python');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const miradorDist = path.join(pluginDir, 'node_modules', 'mirador', 'dist');

class Skip extends Error {}

function log(...args) { console.log('[mirador-service]', ...args); }

function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
  log('ok -', message);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

function run(cmd, args, env) {
  log('$', path.basename(cmd), args.join(' ').slice(0, 200));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${code}):\n${stdout}\n${stderr}`));
    });
  });
}

/** Static files: /data/… = ../shared/data, /m/… = generated manifests and the page, /mirador/… = its dist. */
function staticServer(roots, port) {
  const types = {
    '.html': 'text/html', '.jpg': 'image/jpeg', '.js': 'text/javascript', '.json': 'application/json',
    '.png': 'image/png', '.xml': 'application/xml',
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const [, prefix, ...rest] = decodeURIComponent(url.pathname).split('/');
    const root = roots[prefix];
    const file = root && path.resolve(root, rest.join('/'));
    if (!file || !file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404); res.end('not found'); return;
    }
    res.writeHead(200, {
      'Access-Control-Allow-Origin': '*', 'Content-Type': types[path.extname(file)] || 'application/octet-stream',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

/** One v3 manifest per incunabula page (woodcuts, initials, Latin and French text around them). */
async function writeManifests(tmp, staticBase) {
  const code = `
import json, sys
from pathlib import Path
from iiif_visual_search.local_sample import shared_books, manifest_for
books = [b for b in shared_books(Path(sys.argv[1])) if b.slug.startswith('incunabula-')]
print(json.dumps([manifest_for(b, sys.argv[2]) for b in books]))`;
  const manifests = JSON.parse(await run(python, ['-c', code, sharedData, `${staticBase}/m`]));
  if (manifests.length < 1) throw new Skip('no incunabula page with its scan in ../shared/data');
  const sharedUri = pathToFileURL(sharedData).href;
  const items = manifests.map((m) => {
    const text = JSON.stringify(m).split(sharedUri).join(`${staticBase}/data`);
    const slug = m.id.split('/m/')[1].split('/')[0];
    mkdirSync(path.join(tmp, 'm', slug), { recursive: true });
    writeFileSync(path.join(tmp, 'm', slug, 'manifest.json'), text);
    return { id: m.id, label: m.label, type: 'Manifest' };
  });
  writeFileSync(path.join(tmp, 'm', 'collection.json'), JSON.stringify({
    '@context': 'http://iiif.io/api/presentation/3/context.json',
    id: `${staticBase}/m/collection.json`, items, label: { en: ['Mirador test'] }, type: 'Collection',
  }));
  return `${staticBase}/m/collection.json`;
}

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function startServer(dataDir, env) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(ivsBin, ['--data-dir', dataDir, 'serve', '--host', '127.0.0.1', '--port', String(port),
    '--base-url', base], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < 240; i += 1) {
    if (proc.exitCode !== null) throw new Error(`ivs serve exited with ${proc.exitCode}`);
    try { if ((await fetch(`${base}/health`)).ok) return { base, stop: () => proc.kill('SIGTERM') }; } catch (e) { /* not up */ }
    await new Promise((r) => { setTimeout(r, 250); });
  }
  proc.kill('SIGTERM');
  throw new Error('ivs serve did not answer within 60 s');
}

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
      // Mirador 4.0.0 lists only commenting/tagging/painting unless told; our regions are 'classifying'.
      filteredMotivations: ['oa:commenting', 'oa:tagging', 'sc:painting', 'commenting', 'tagging',
        'classifying', 'highlighting', 'supplementing'],
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

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ivs-mirador-'));
  const cleanups = [];
  try {
    const staticPort = await freePort();
    const staticBase = `http://127.0.0.1:${staticPort}`;
    const files = await staticServer({ data: sharedData, m: path.join(tmp, 'm'), mirador: miradorDist }, staticPort);
    cleanups.push(() => files.close());
    const collection = await writeManifests(tmp, staticBase);
    const dataDir = path.join(tmp, 'ivs-data');
    const env = { IVS_DATA_DIR: dataDir };
    await run(ivsBin, ['--data-dir', dataDir, 'ingest', collection], env);
    const { base, stop } = await startServer(dataDir, env);
    cleanups.push(() => stop());

    const target = await pickTarget(base);
    log(`target: ${target.manifestId} ${target.canvasId}: ${target.regions} regions; search "${target.term}" (${target.hits} hits)`);
    writeFileSync(path.join(tmp, 'm', 'index.html'), pageHtml(target, `${staticBase}/mirador`));

    const browser = await chromium.launch({
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'], executablePath: chromiumPath,
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
  } finally {
    for (const f of cleanups) { try { await f(); } catch (e) { /* already gone */ } }
    if (!process.env.E2E_KEEP) rmSync(tmp, { force: true, recursive: true });
    else log('kept', tmp);
  }
}

main().then(() => { log('PASSED'); }, (e) => {
  if (e instanceof Skip) { log('SKIPPED:', e.message); process.exit(0); }
  console.error('[mirador-service] FAILED:', e.stack || e.message);
  process.exit(1);
});

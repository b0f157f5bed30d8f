// What both end-to-end scripts need: paths, a static file server, the test manifests built from ../shared/data,
// a live `ivs serve` on a free loopback port, and small helpers. Each script passes its own log prefix.
import { spawn } from 'node:child_process';
import {
  createReadStream, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const pluginDir = path.resolve(here, '..');
export const repo = path.resolve(pluginDir, '..');
// Real path: the manifests name files by their resolved path (../shared may be a link).
const sharedDataLink = path.resolve(repo, '..', 'shared', 'data');
export const sharedData = existsSync(sharedDataLink) ? realpathSync(sharedDataLink) : sharedDataLink;
export const outDir = path.join(pluginDir, 'test-output');
export const ivsBin = process.env.IVS_BIN || path.join(repo, '.venv', 'bin', 'ivs');
export const python = path.join(path.dirname(ivsBin), 'python');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-background-networking'];

/** Thrown when the test cannot run here (missing data, browser, …): the script then exits 0 saying why. */
export class Skip extends Error {}

export function logger(prefix) {
  const log = (...args) => console.log(`[${prefix}]`, ...args);
  const check = (cond, message) => {
    if (!cond) throw new Error(`check failed: ${message}`);
    log('ok -', message);
  };
  return { check, log };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

/** Run a command to completion; asynchronous on purpose: the static server lives in this process. */
export function run(log, cmd, args, env) {
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

const TYPES = {
  '.html': 'text/html', '.jpg': 'image/jpeg', '.js': 'text/javascript', '.json': 'application/json',
  '.png': 'image/png', '.xml': 'application/xml',
};

/** Static files under named roots: /{prefix}/… is served from roots[prefix]. */
export function staticServer(roots, port) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const [, prefix, ...rest] = decodeURIComponent(url.pathname).split('/');
    const root = roots[prefix];
    const file = root && path.resolve(root, rest.join('/'));
    if (!file || !file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404); res.end('not found'); return;
    }
    res.writeHead(200, {
      'Access-Control-Allow-Origin': '*', 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

/** One v3 manifest per incunabula page (woodcuts, initials and text), linking scans and ALTO over http://
 * from the static server (/m/… the manifests, /data/… ../shared/data). Returns the collection's URL. */
export async function writeManifests(log, tmp, staticBase, { minBooks = 1, label = 'e2e incunabula' } = {}) {
  const code = `
import json, sys
from pathlib import Path
from iiif_visual_search.local_sample import shared_books, manifest_for
books = [b for b in shared_books(Path(sys.argv[1])) if b.slug.startswith('incunabula-')]
print(json.dumps([manifest_for(b, sys.argv[2]) for b in books]))`;
  const manifests = JSON.parse(await run(log, python, ['-c', code, sharedData, `${staticBase}/m`]));
  if (manifests.length < minBooks) throw new Skip(`fewer than ${minBooks} incunabula books with scans in ../shared/data`);
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
    id: `${staticBase}/m/collection.json`, items, label: { en: [label] }, type: 'Collection',
  }));
  return `${staticBase}/m/collection.json`;
}

export async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return r.json();
}

/** `ivs serve` on a free loopback port, once it answers. */
export async function startServer(dataDir, env, seconds = 60) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ['--data-dir', dataDir, 'serve', '--host', '127.0.0.1', '--port', String(port), '--base-url', base];
  const proc = spawn(ivsBin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < seconds * 4; i += 1) {
    if (proc.exitCode !== null) throw new Error(`ivs serve exited with ${proc.exitCode}`);
    try { if ((await fetch(`${base}/health`)).ok) return { base, stop: () => proc.kill('SIGTERM') }; } catch (e) { /* not up yet */ }
    await new Promise((r) => { setTimeout(r, 250); });
  }
  proc.kill('SIGTERM');
  throw new Error(`ivs serve did not answer within ${seconds} s`);
}

/** Run ``body(tmp, cleanups)`` in a fresh temporary folder; the cleanups run last-in first, then the folder goes
 * (E2E_KEEP=1 keeps it). */
export async function inTempDir(log, prefix, body) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), prefix));
  const cleanups = [];
  try {
    await body(tmp, cleanups);
  } finally {
    for (const f of cleanups) { try { await f(); } catch (e) { /* already gone */ } }
    if (!process.env.E2E_KEEP) rmSync(tmp, { force: true, recursive: true });
    else log('kept', tmp);
  }
}

/** A script's end: PASSED, SKIPPED with its reason (exit 0), or FAILED with the error (exit 1). */
export function runScript(log, name, main) {
  main().then(() => { log('PASSED'); }, (e) => {
    if (e instanceof Skip) { log('SKIPPED:', e.message); process.exit(0); }
    console.error(`[${name}] FAILED:`, e.stack || e.message);
    process.exit(1);
  });
}

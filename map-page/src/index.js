// The /map page: loads the map, draws it (render.js), and wires pointer, keyboard, filters and cluster list.
// The page's HTML (web/templates/map.html) holds every control and the settings block; this adds behaviour.
import { decodeMap } from './data.js';
import { PointGrid } from './grid.js';
import { MapRenderer, MIN_PX, webglAvailable } from './render.js';
import { View } from './view.js';

const LABELS_SHOWN = 24;       // cluster names drawn at once, largest first
const LABELS_BELOW_PX = 40;    // names are drawn while thumbnails are smaller than this

function format(text, values) { return text.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`)); }

function element(tag, attrs = {}, text = '') {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

class MapPage {
  constructor(settings) {
    this.settings = settings;
    this.t = settings.strings;
    this.container = document.getElementById('map');
    this.status = document.getElementById('map-status');
    this.info = document.getElementById('map-info');
    this.view = new View();
    this.cursor = -1;
    this.hover = -1;
    this.pending = false;
  }

  async start() {
    const response = await fetch(this.settings.data, { credentials: 'same-origin' });
    if (!response.ok) throw new Error(`map data: HTTP ${response.status}`);
    this.map = decodeMap(await response.arrayBuffer());
    const { map } = this;
    this.books = new Map(map.header.books.map((b, i) => [i, b]));
    this.clusters = new Map(map.header.clusters.map((c) => [c.id, c]));
    // Sprites cover about half the map's square: most of the picture without piling thumbnails on each other.
    this.worldSize = 0.7 / Math.sqrt(Math.max(1, map.n));
    this.visible = new Uint8Array(map.n).fill(1);
    this.grid = new PointGrid(map.x, map.y, Math.ceil(Math.sqrt(map.n) / 2));
    if (!webglAvailable()) {
      this.status.textContent = this.t.map_no_webgl;
      return;
    }
    const sheetUrl = (n) => `${this.settings.root}/${map.header.atlas.url.replace('{n}', n)}`;
    this.renderer = new MapRenderer(this.container, map, sheetUrl);
    this.renderer.onChange = () => this.requestDraw();
    this.labelLayer = element('div', { 'aria-hidden': 'true' });
    this.tip = element('div', { class: 'map-tip', hidden: '' });
    this.cursorBox = element('div', { class: 'map-cursor', hidden: '' });
    this.container.append(this.labelLayer, this.cursorBox, this.tip);
    this.resize();
    this.showAll();
    this.applyFilters();
    this.wire();
    new ResizeObserver(() => { this.resize(); this.requestDraw(); }).observe(this.container);
  }

  resize() {
    const { clientWidth: w, clientHeight: h } = this.container;
    this.view.resize(w, h);
    this.renderer.resize(w, h);
  }

  showAll() {
    const { map } = this;
    let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
    for (let i = 0; i < map.n; i += 1) {
      if (!this.visible[i]) continue;
      x0 = Math.min(x0, map.x[i]); x1 = Math.max(x1, map.x[i]);
      y0 = Math.min(y0, map.y[i]); y1 = Math.max(y1, map.y[i]);
    }
    if (x0 > x1) { x0 = 0; y0 = 0; x1 = 1; y1 = 1; }
    const pad = this.worldSize;
    this.view.fit(x0 - pad, y0 - pad, x1 + pad, y1 + pad);
    this.requestDraw();
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    this.renderer.draw(this.view, this.worldSize);
    this.drawLabels();
    this.placeCursor();
  }

  pointPx() { return Math.max(this.worldSize * this.view.scale, MIN_PX); }

  drawLabels() {
    this.labelLayer.replaceChildren();
    if (this.pointPx() >= LABELS_BELOW_PX) return;
    const placed = [];
    const shown = [...this.clusters.values()].filter((c) => this.clusterShown(c.id))
      .sort((a, b) => b.size - a.size).slice(0, LABELS_SHOWN);
    for (const c of shown) {
      const [sx, sy] = this.view.toScreen(c.x, c.y);
      if (sx < 0 || sy < 0 || sx > this.view.width || sy > this.view.height) continue;
      const box = { x0: sx - 80, x1: sx + 80, y0: sy - 12, y1: sy + 12 };
      if (placed.some((b) => b.x0 < box.x1 && box.x0 < b.x1 && b.y0 < box.y1 && box.y0 < b.y1)) continue;
      placed.push(box);
      const label = element('div', { class: 'map-label' }, c.label);
      label.style.transform = `translate(${Math.round(sx)}px, ${Math.round(sy)}px) translate(-50%, -50%)`;
      this.labelLayer.append(label);
    }
  }

  clusterShown(id) {
    if (this._shownClusters === undefined) {
      this._shownClusters = new Set();
      for (let i = 0; i < this.map.n; i += 1) if (this.visible[i]) this._shownClusters.add(this.map.cluster[i]);
    }
    return this._shownClusters.has(id);
  }

  applyFilters() {
    const { map } = this;
    const checked = new Set([...document.querySelectorAll('.map-classes input[name=class]')]
      .filter((el) => el.checked).map((el) => el.value));
    const classIndex = new Map(map.header.classes.map((c, i) => [i, c]));
    const bookSelect = document.getElementById('map-book');
    const book = bookSelect ? bookSelect.value : '';
    let count = 0;
    for (let i = 0; i < map.n; i += 1) {
      const cls = map.class[i] >= 0 ? classIndex.get(map.class[i]) : '';
      const ok = checked.has(cls) && (!book || map.header.books[map.book[i]].id === book);
      this.visible[i] = ok ? 1 : 0;
      count += ok;
    }
    this._shownClusters = undefined;
    this.renderer.setVisible(this.visible);
    this.status.textContent = format(this.t.map_count, { shown: count, total: map.n });
    if (this.cursor >= 0 && !this.visible[this.cursor]) this.setCursor(-1);
    this.requestDraw();
  }

  pointAt(clientX, clientY) {
    const rect = this.container.getBoundingClientRect();
    const [wx, wy] = this.view.toWorld(clientX - rect.left, clientY - rect.top);
    const { fraction } = this.renderer;
    const half = Math.max(this.worldSize, MIN_PX / this.view.scale) / 2;
    return this.grid.at(wx, wy, Math.max(half, 3 / this.view.scale), (i) => this.visible[i] && this.renderer.frac[i] < fraction);
  }

  describe(i) {
    const book = this.books.get(this.map.book[i]);
    const cluster = this.clusters.get(this.map.cluster[i]);
    return {
      book: book ? book.label : '',
      page: format(this.t.map_page_of, { page: this.map.page[i] }),
      cluster: cluster ? cluster.label : this.t.cluster_none,
      cls: this.map.class[i] >= 0 ? (this.settings.classNames[this.map.header.classes[this.map.class[i]]]
        || this.map.header.classes[this.map.class[i]]) : this.t.unclassified,
    };
  }

  showTip(i, clientX, clientY) {
    if (i < 0) { this.tip.hidden = true; return; }
    const d = this.describe(i);
    this.tip.replaceChildren(element('strong', {}, d.book), element('br'), document.createTextNode(`${d.page} · ${d.cluster}`));
    const rect = this.container.getBoundingClientRect();
    const x = Math.min(clientX - rect.left + 14, this.view.width - 200);
    this.tip.style.transform = `translate(${Math.round(x)}px, ${Math.round(clientY - rect.top + 14)}px)`;
    this.tip.hidden = false;
  }

  link(kind, i) { return this.settings.links[kind].replace('{id}', encodeURIComponent(this.map.ids[i])); }

  setCursor(i, { centre = false } = {}) {
    this.cursor = i;
    if (i < 0) { this.cursorBox.hidden = true; return; }
    if (centre) {
      const [sx, sy] = this.view.toScreen(this.map.x[i], this.map.y[i]);
      if (sx < 0 || sy < 0 || sx > this.view.width || sy > this.view.height) {
        this.view.cx = this.map.x[i];
        this.view.cy = this.map.y[i];
      }
    }
    this.showInfo(i);
    this.requestDraw();
  }

  placeCursor() {
    if (this.cursor < 0) return;
    const [sx, sy] = this.view.toScreen(this.map.x[this.cursor], this.map.y[this.cursor]);
    const side = Math.max(10, this.pointPx()) + 6;
    this.cursorBox.style.width = `${side}px`;
    this.cursorBox.style.height = `${side}px`;
    this.cursorBox.style.transform = `translate(${Math.round(sx - side / 2)}px, ${Math.round(sy - side / 2)}px)`;
    this.cursorBox.hidden = false;
  }

  showInfo(i) {
    const d = this.describe(i);
    const img = element('img', { src: this.settings.links.thumb.replace('{id}', encodeURIComponent(this.map.ids[i])),
      alt: `${d.book}, ${d.page}` });
    const facts = element('p');
    facts.append(element('strong', {}, d.book), element('br'), document.createTextNode(`${d.page} · ${d.cls}`),
      element('br'), document.createTextNode(`${this.t.map_cluster}: ${d.cluster}`));
    const list = element('ul');
    for (const [kind, text, cls] of [['region', this.t.details, 'map-region'], ['similar', this.t.similar_to, 'map-similar'],
      ['viewer', this.t.open_viewer, 'map-viewer']]) {
      const item = element('li');
      item.append(element('a', { href: this.link(kind, i), class: cls }, text));
      list.append(item);
    }
    const heading = this.info.querySelector('h2');
    this.info.replaceChildren(heading, img, facts, list);
    this.info.dataset.region = this.map.ids[i];
  }

  // Keyboard order: cluster by cluster, and inside one top to bottom, left to right.
  order() {
    if (!this._order) {
      const { map } = this;
      this._order = Array.from({ length: map.n }, (_, i) => i).sort((a, b) => (map.cluster[a] - map.cluster[b])
        || (map.y[a] - map.y[b]) || (map.x[a] - map.x[b]));
    }
    return this._order;
  }

  step(delta) {
    const order = this.order();
    let at = this.cursor >= 0 ? order.indexOf(this.cursor) : (delta > 0 ? -1 : 0);
    for (let k = 0; k < order.length; k += 1) {
      at = (at + delta + order.length) % order.length;
      if (this.visible[order[at]]) { this.setCursor(order[at], { centre: true }); return; }
    }
  }

  zoomToCluster(id, button) {
    const { map } = this;
    let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
    // The cluster's pictures the filters show; all of them when the filters hide every one.
    for (const onlyShown of [true, false]) {
      for (let i = 0; i < map.n; i += 1) {
        if (map.cluster[i] !== id || (onlyShown && !this.visible[i])) continue;
        x0 = Math.min(x0, map.x[i]); x1 = Math.max(x1, map.x[i]);
        y0 = Math.min(y0, map.y[i]); y1 = Math.max(y1, map.y[i]);
      }
      if (x0 <= x1) break;
    }
    if (x0 > x1) return;
    const pad = this.worldSize;
    this.view.fit(x0 - pad, y0 - pad, x1 + pad, y1 + pad);
    document.querySelectorAll('#map-clusters button').forEach((b) => b.setAttribute('aria-pressed', String(b === button)));
    this.requestDraw();
  }

  wire() {
    const c = this.container;
    let drag = null;
    c.addEventListener('pointerdown', (ev) => {
      drag = { x: ev.clientX, y: ev.clientY, moved: 0 };
      c.setPointerCapture(ev.pointerId);
    });
    c.addEventListener('pointermove', (ev) => {
      if (drag) {
        const dx = ev.clientX - drag.x; const dy = ev.clientY - drag.y;
        drag.moved += Math.abs(dx) + Math.abs(dy);
        drag.x = ev.clientX; drag.y = ev.clientY;
        if (drag.moved > 3) { this.view.panPixels(dx, dy); this.requestDraw(); }
        return;
      }
      const i = this.pointAt(ev.clientX, ev.clientY);
      this.hover = i;
      this.showTip(i, ev.clientX, ev.clientY);
    });
    c.addEventListener('pointerup', (ev) => {
      const wasClick = drag && drag.moved <= 3;
      drag = null;
      if (!wasClick) return;
      const i = this.pointAt(ev.clientX, ev.clientY);
      if (i >= 0) this.setCursor(i);
    });
    c.addEventListener('pointerleave', () => { this.tip.hidden = true; });
    c.addEventListener('dblclick', (ev) => {
      const i = this.pointAt(ev.clientX, ev.clientY);
      if (i >= 0) window.location.assign(this.link('region', i));
    });
    c.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const rect = c.getBoundingClientRect();
      this.view.zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - rect.left, ev.clientY - rect.top);
      this.requestDraw();
    }, { passive: false });
    c.addEventListener('keydown', (ev) => this.key(ev));
    document.getElementById('map-zoom-in').addEventListener('click', () => this.zoomCentre(1.5));
    document.getElementById('map-zoom-out').addEventListener('click', () => this.zoomCentre(1 / 1.5));
    document.getElementById('map-reset').addEventListener('click', () => this.showAll());
    document.querySelectorAll('.map-classes input, #map-book').forEach((el) => el.addEventListener('change', () => this.applyFilters()));
    document.querySelectorAll('#map-clusters button[data-cluster]').forEach((b) => {
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => this.zoomToCluster(Number(b.dataset.cluster), b));
    });
  }

  zoomCentre(factor) { this.view.zoomAt(factor, this.view.width / 2, this.view.height / 2); this.requestDraw(); }

  key(ev) {
    const step = 0.1;
    const actions = {
      ArrowLeft: () => this.view.panPixels(this.view.width * step, 0),
      ArrowRight: () => this.view.panPixels(-this.view.width * step, 0),
      ArrowUp: () => this.view.panPixels(0, this.view.height * step),
      ArrowDown: () => this.view.panPixels(0, -this.view.height * step),
      '+': () => this.zoomCentre(1.5),
      '=': () => this.zoomCentre(1.5),
      '-': () => this.zoomCentre(1 / 1.5),
      0: () => this.showAll(),
      n: () => this.step(1),
      p: () => this.step(-1),
      Enter: () => { if (this.cursor >= 0) window.location.assign(this.link('region', this.cursor)); },
      Escape: () => this.setCursor(-1),
    };
    const action = actions[ev.key];
    if (!action || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    ev.preventDefault();
    action();
    this.requestDraw();
  }

  // For tests and bench/map.py: where point i is on screen (client coordinates), and frames drawn.
  api() {
    return {
      count: () => this.map.n,
      ids: () => this.map.ids,
      shown: () => Array.from({ length: this.map.n }, (_, i) => i).filter((i) => this.visible[i]),
      clientPoint: (i) => {
        const rect = this.container.getBoundingClientRect();
        const [sx, sy] = this.view.toScreen(this.map.x[i], this.map.y[i]);
        return [rect.left + sx, rect.top + sy];
      },
      sheetsLoaded: () => (this.renderer ? this.renderer.loadedSheets : 0),
      sheets: () => (this.renderer ? this.renderer.groups.length : 0),
      frames: () => (this.renderer ? this.renderer.frames : 0),
      drawnShare: () => (this.renderer ? this.renderer.fraction : 0),
      drawNow: () => this.draw(),
      pan: (dx, dy) => { this.view.panPixels(dx, dy); },
      zoom: (f) => this.zoomCentre(f),
      showAll: () => this.showAll(),
    };
  }
}

function boot() {
  const block = document.getElementById('ivs-map-settings');
  if (!block) return;
  const page = new MapPage(JSON.parse(block.textContent));
  document.querySelectorAll('[data-map-autosubmit]').forEach((el) => el.addEventListener('change', () => el.form.submit()));
  window.ivsMap = { ready: page.start().then(() => page.api()) };
  window.ivsMap.ready.catch((err) => {
    page.status.textContent = page.t.map_failed;
    console.warn('map:', err); // eslint-disable-line no-console
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();

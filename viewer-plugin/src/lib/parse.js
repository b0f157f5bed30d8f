// Reading the service's "similar" AnnotationPage into plain hit objects for the panel.
// All knowledge of the response's field names lives here, so a change on the service side is
// a change in this one file. Tolerant on purpose: accepts the Search-2 style target
// ({id: "canvas#xywh=", partOf}) as well as SpecificResource + FragmentSelector.
import { parseXywh } from './geometry';

const asArray = (v) => (v === undefined || v === null ? [] : [].concat(v));

/** A IIIF language map, a plain string or a v2 label → one string (preferring `lang`). */
export function labelText(label, lang) {
  if (!label) return '';
  if (typeof label === 'string') return label;
  if (Array.isArray(label)) return label.map((l) => labelText(l, lang)).filter(Boolean).join(' ');
  if (label['@value']) return label['@value'];
  const keys = Object.keys(label);
  const key = (lang && keys.find((k) => k === lang || k.split('-')[0] === lang.split('-')[0]))
    || (keys.includes('none') ? 'none' : null)
    || (keys.includes('en') ? 'en' : keys[0]);
  return key ? asArray(label[key]).join(' ') : '';
}

function idOf(v) {
  if (!v) return null;
  if (typeof v === 'string') return v;
  return v.id || v['@id'] || null;
}

function firstManifest(...candidates) {
  for (const c of candidates) {
    const found = asArray(c).find((p) => p && (typeof p === 'string'
      || /manifest/i.test(p.type || p['@type'] || '')));
    if (found) return found;
  }
  return null;
}

function parseTarget(target) {
  const t = asArray(target)[0];
  if (!t) return null;
  if (typeof t === 'string') {
    const [canvasId] = t.split('#');
    return { canvasId, canvasLabel: '', manifest: null, xywh: parseXywh(t) };
  }
  const source = t.source || t.full || t.on;
  let canvasId = idOf(source);
  let xywh = null;
  const selector = asArray(t.selector).find((s) => s && /FragmentSelector/.test(s.type || s['@type'] || ''));
  if (selector) xywh = parseXywh(selector.value);
  if (!canvasId && idOf(t)) {
    [canvasId] = idOf(t).split('#');
    xywh = xywh || parseXywh(idOf(t));
  }
  const manifest = firstManifest(t.partOf, source && source.partOf, t.within, source && source.within);
  return {
    canvasId,
    canvasLabel: labelText(source && source.label),
    manifest,
    xywh,
  };
}

function bodyWithPurpose(bodies, purposes) {
  return bodies.find((b) => b && asArray(b.purpose).some((p) => purposes.includes(p)));
}

function thumbnailOf(item, bodies) {
  const thumb = asArray(item.thumbnail)[0];
  if (thumb) return idOf(thumb);
  const image = bodies.find((b) => b && /Image/.test(b.type || '') && idOf(b));
  return image ? idOf(image) : null;
}

function scoreOf(item, bodies) {
  const candidates = [item.score, item.similarity, ...bodies.map((b) => b && b.score)];
  const found = candidates.find((s) => s !== undefined && s !== null && !Number.isNaN(Number(s)));
  return found === undefined ? null : Number(found);
}

/** One annotation → a hit, or null when it has no usable canvas region. */
export function parseHit(item, lang) {
  if (!item || typeof item !== 'object') return null;
  const target = parseTarget(item.target || item.on);
  if (!target || !target.canvasId || !target.xywh) return null;
  const bodies = asArray(item.body || item.resource);
  const classBody = bodyWithPurpose(bodies, ['classifying', 'tagging']);
  const manifestPart = target.manifest || firstManifest(item.partOf);
  const manifestLabel = manifestPart && typeof manifestPart === 'object' ? labelText(manifestPart.label, lang) : '';
  return {
    canvasId: target.canvasId,
    canvasLabel: target.canvasLabel || labelText(item.canvasLabel, lang),
    classLabel: classBody ? labelText(classBody.value || classBody.label, lang) : (item.class || ''),
    id: idOf(item),
    label: labelText(item.label, lang),
    manifestId: idOf(manifestPart),
    manifestLabel,
    regionId: item.region || regionIdFromAnnotationId(idOf(item)),
    score: scoreOf(item, bodies),
    thumbnail: thumbnailOf(item, bodies),
    xywh: target.xywh,
  };
}

/** A page → { hits, next, total }. `next` may be a string or {id} (Prezi 3 / Search 2 paging). */
export function parseSimilarPage(json, lang) {
  if (!json || typeof json !== 'object') throw new Error('empty response');
  const items = asArray(json.items || json.resources);
  const hits = items.map((it) => parseHit(it, lang)).filter(Boolean);
  const total = (json.partOf && asArray(json.partOf)[0] && asArray(json.partOf)[0].total)
    ?? (json.within && json.within.total) ?? json.total ?? null;
  return { hits, next: idOf(json.next), total: total === null ? null : Number(total) };
}

/**
 * The region id inside one of the service's annotation ids:
 * `{base}/iiif/{manifest}/annotation/{region}` (see iiif/common.py Urls.annotation),
 * or a region image / similar URL. Null for annotations that are not the service's regions.
 */
export function regionIdFromAnnotationId(id) {
  if (typeof id !== 'string') return null;
  const m = id.match(/\/(?:annotation|regions|similar)\/([^/?#]+)(?:[/?#]|$)/);
  if (m) return decodeURIComponent(m[1]);
  return null;
}

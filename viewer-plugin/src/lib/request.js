// Building the HTTP requests the service answers. Pure: returns { url, init } for fetch().

function trimSlash(endpoint) {
  return String(endpoint || '').replace(/\/+$/, '');
}

// The service reads the filters from the query string for both GET and POST (web/app.py).
// `k` is how many neighbours in all, `size` how many per page (GET /similar/{region} pages;
// POST /similar answers all k at once).
function filterParams({
  model, k, classFilter, pageSize,
}, paged) {
  const params = new URLSearchParams();
  if (model) params.set('model', model);
  if (k) params.set('k', String(k));
  if (paged && pageSize) params.set('size', String(pageSize));
  if (classFilter) params.set('class', classFilter);
  return params;
}

/**
 * The request for a query.
 * query: { kind: 'box', canvasId, xywh: [x,y,w,h] } → POST {endpoint}/similar, JSON {canvas, xywh}
 *        { kind: 'region', regionId }                 → GET  {endpoint}/similar/{region}
 * options: { model, k, pageSize, classFilter }
 * (`manifest` is deliberately never sent: the service reads it as "only hits in this manifest".)
 */
export function buildSimilarRequest(endpoint, query, options = {}) {
  const base = trimSlash(endpoint);
  if (!base) throw new Error('findSimilar.endpoint is not configured');
  if (query.kind === 'region') {
    const qs = filterParams(options, true).toString();
    return {
      init: { headers: { Accept: 'application/ld+json, application/json' }, method: 'GET' },
      url: `${base}/similar/${encodeURIComponent(query.regionId)}${qs ? `?${qs}` : ''}`,
    };
  }
  if (query.kind === 'box') {
    const body = { canvas: query.canvasId, xywh: query.xywh.join(',') };
    // The same filters in the body too, for services that read them there.
    if (options.model) body.model = options.model;
    if (options.k) body.k = Number(options.k);
    if (options.classFilter) body.class = options.classFilter;
    const qs = filterParams(options, false).toString();
    return {
      init: {
        body: JSON.stringify(body),
        headers: { Accept: 'application/ld+json, application/json', 'Content-Type': 'application/json' },
        method: 'POST',
      },
      url: `${base}/similar${qs ? `?${qs}` : ''}`,
    };
  }
  throw new Error(`unknown query kind: ${query.kind}`);
}

/** "More" pages are plain GETs of the page's `next` link. */
export function buildNextRequest(nextUrl) {
  return { init: { headers: { Accept: 'application/ld+json, application/json' }, method: 'GET' }, url: nextUrl };
}

/** Fetch and decode one page; errors carry the HTTP status and the service's message when it has one. */
export async function fetchJson({ url, init }, fetchImpl = globalThis.fetch) {
  const response = await fetchImpl(url, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!response.ok) {
    const detail = (json && (json.detail || json.error || json.message)) || text.slice(0, 200);
    const err = new Error(`HTTP ${response.status}${detail ? `: ${detail}` : ''}`);
    err.status = response.status;
    throw err;
  }
  if (!json) throw new Error('The service answered with something that is not JSON');
  return json;
}

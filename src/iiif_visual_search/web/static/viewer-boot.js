// /viewer: open Mirador with the find-similar plugin on the service's collection. A file, not an inline
// script, so that the page runs under a Content-Security-Policy without 'unsafe-inline'; the page's settings
// arrive in the JSON data block #ivs-viewer-settings.
(async function () {
  const settings = JSON.parse(document.getElementById('ivs-viewer-settings').textContent);
  const params = new URLSearchParams(location.search);
  const endpoint = settings.endpoint || location.href.replace(/\/viewer\/?([?#].*)?$/, '');
  let manifests = [];
  try {
    const collection = await (await fetch(endpoint + '/collection')).json();
    manifests = (collection.items || collection.manifests || [])
      .map((m) => m.id || m['@id']).filter(Boolean);
  } catch (e) {
    console.error('could not read the collection', e);
  }
  const first = params.get('manifest') || manifests[0];
  const start = first ? { manifestId: first } : null;
  const canvasId = params.get('canvas');
  const box = (params.get('xywh') || '').split(',').map(Number);
  if (start && canvasId) {
    start.canvasId = canvasId;
    if (box.length === 4 && box.every((n) => Number.isFinite(n) && n >= 0) && box[2] > 0 && box[3] > 0) {
      const xywh = box.map(Math.round);
      start.findSimilarHighlight = { canvasId, id: 'link', xywh };
      // Open on the region with some page around it, as a reader expects from a link to a picture.
      start.initialViewerConfig = { x: xywh[0] + xywh[2] / 2, y: xywh[1] + xywh[3] / 2,
        zoom: 1 / (2.2 * Math.max(xywh[2], xywh[3])) };
    }
  }
  window.miradorInstance = MiradorFindSimilar.viewer({
    id: 'viewer',
    language: params.get('lang') || settings.language,
    annotations: { filteredMotivations: settings.filteredMotivations, htmlSanitizationRuleSet: 'iiif' },
    catalog: manifests.map((manifestId) => ({ manifestId })),
    windows: start ? [start] : [],
    window: { sideBarOpen: false },
    workspace: { type: 'mosaic' },
    findSimilar: {
      endpoint,
      model: params.get('model') || settings.model,
      models: settings.models,
      k: Number(params.get('k')) || settings.k,
      classes: settings.classes,
    },
  });
  if (params.get('class')) {
    // the class filter is a per-window panel choice; start every window with it
    const store = window.miradorInstance.store;
    store.getState().workspace.windowIds.forEach((windowId) => store.dispatch({
      type: 'mirador-find-similar/SET_OPTIONS', windowId, options: { classFilter: params.get('class') },
    }));
  }
})();

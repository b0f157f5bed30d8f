// Plugin state lives under the `findSimilar` key of Mirador's store, one entry per window.
import {
  addCompanionWindow, addWindow, getCompanionWindowsForContent, getConfig, miradorSlice, setCanvas, updateWindow,
} from 'mirador';
import {
  buildNextRequest, buildSimilarRequest, fetchJson,
} from '../lib/request';
import { parseSimilarPage } from '../lib/parse';

export const ActionTypes = {
  FAIL: 'mirador-find-similar/FAIL',
  RECEIVE: 'mirador-find-similar/RECEIVE',
  REQUEST: 'mirador-find-similar/REQUEST',
  REQUEST_MORE: 'mirador-find-similar/REQUEST_MORE',
  SET_MODE: 'mirador-find-similar/SET_MODE',
  SET_OPTIONS: 'mirador-find-similar/SET_OPTIONS',
};

export const COMPANION_KEY = 'findSimilar';

let requestCounter = 0;

/** mode: 'idle' | 'draw' — while 'draw', the overlay captures the pointer to draw a box. */
export function setFindSimilarMode(windowId, mode) {
  return { mode, type: ActionTypes.SET_MODE, windowId };
}

/** Panel filters that override the config for this window: { model, k, classFilter }. */
export function setFindSimilarOptions(windowId, options) {
  return { options, type: ActionTypes.SET_OPTIONS, windowId };
}

export function requestSimilar(windowId, query, requestId) {
  return {
    query, requestId, type: ActionTypes.REQUEST, windowId,
  };
}

export function requestMoreSimilar(windowId, requestId) {
  return { requestId, type: ActionTypes.REQUEST_MORE, windowId };
}

export function receiveSimilar(windowId, requestId, page, append = false) {
  return {
    append, page, requestId, type: ActionTypes.RECEIVE, windowId,
  };
}

export function failSimilar(windowId, requestId, error) {
  return {
    error, requestId, type: ActionTypes.FAIL, windowId,
  };
}

const settingsCache = new Map();

/** The effective settings for a window: config `findSimilar` overlaid with the panel's choices. */
export function getFindSimilarSettings(state, windowId) {
  const config = getConfig(state).findSimilar || {};
  const local = ((miradorSlice(state).findSimilar || {})[windowId] || {}).options || {};
  // Same inputs → the same object, so connected components do not re-render on every action.
  const cached = settingsCache.get(windowId);
  if (cached && cached.config === config && cached.local === local) return cached.value;
  const value = computeSettings(config, local);
  settingsCache.set(windowId, { config, local, value });
  return value;
}

function computeSettings(config, local) {
  return {
    classFilter: local.classFilter ?? '',
    classes: config.classes || [],
    endpoint: config.endpoint || '',
    k: local.k ?? config.k ?? 20,
    model: local.model ?? config.model ?? '',
    pageSize: config.pageSize ?? 10,
    models: config.models || [],
  };
}

export function getFindSimilarWindowState(state, windowId) {
  return (miradorSlice(state).findSimilar || {})[windowId] || {};
}

function openPanel(dispatch, getState, windowId) {
  const open = getCompanionWindowsForContent(getState(), { content: COMPANION_KEY, windowId });
  if (open.length === 0) {
    dispatch(addCompanionWindow(windowId, { content: COMPANION_KEY, position: 'right' }));
  }
}

/** Thunk: ask the service for regions like `query` and show them in the window's panel. */
export function findSimilar(windowId, query, { fetchImpl } = {}) {
  return async (dispatch, getState) => {
    requestCounter += 1;
    const requestId = requestCounter;
    dispatch(requestSimilar(windowId, query, requestId));
    openPanel(dispatch, getState, windowId);
    try {
      const settings = getFindSimilarSettings(getState(), windowId);
      const json = await fetchJson(buildSimilarRequest(settings.endpoint, query, settings), fetchImpl);
      dispatch(receiveSimilar(windowId, requestId, parseSimilarPage(json)));
    } catch (error) {
      dispatch(failSimilar(windowId, requestId, error.message || String(error)));
    }
  };
}

/** Thunk: follow the current page's `next` link and append its hits. */
export function findMoreSimilar(windowId, { fetchImpl } = {}) {
  return async (dispatch, getState) => {
    const current = getFindSimilarWindowState(getState(), windowId);
    if (!current.next || current.loadingMore) return;
    const { requestId } = current;
    dispatch(requestMoreSimilar(windowId, requestId));
    try {
      const json = await fetchJson(buildNextRequest(current.next), fetchImpl);
      dispatch(receiveSimilar(windowId, requestId, parseSimilarPage(json), true));
    } catch (error) {
      dispatch(failSimilar(windowId, requestId, error.message || String(error)));
    }
  };
}

/**
 * Thunk: show a hit. Same manifest → go to its canvas in this window; another manifest → a new
 * window on that manifest and canvas (what a IIIF Content State target would say). Either way the
 * region is kept in the window as `findSimilarHighlight`, which the overlay draws.
 */
export function showHit(windowId, hit, currentManifestId) {
  return (dispatch) => {
    const highlight = { canvasId: hit.canvasId, id: hit.id, xywh: hit.xywh };
    if (!hit.manifestId || hit.manifestId === currentManifestId) {
      dispatch(updateWindow(windowId, { findSimilarHighlight: highlight }));
      dispatch(setCanvas(windowId, hit.canvasId));
      return;
    }
    dispatch(addWindow({
      canvasId: hit.canvasId,
      findSimilarHighlight: highlight,
      manifestId: hit.manifestId,
    }));
  };
}

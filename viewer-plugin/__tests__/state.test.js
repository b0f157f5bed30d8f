import { describe, expect, it, vi } from 'vitest';
import {
  ActionTypes as MiradorActionTypes, createStore, importConfig, removeWindow,
} from 'mirador';
import {
  ActionTypes, findMoreSimilar, findSimilar, getFindSimilarSettings, getFindSimilarWindowState,
  receiveSimilar, requestSimilar, setFindSimilarMode, setFindSimilarOptions,
} from '../src/state/actions';
import { findSimilarReducer } from '../src/state/reducer';

const hit = (n) => ({ canvasId: `c${n}`, id: `h${n}`, xywh: [n, n, 10, 10] });

describe('findSimilarReducer', () => {
  it('starts a query, clears old hits and leaves draw mode', () => {
    let s = findSimilarReducer({}, setFindSimilarMode('w', 'draw'));
    s = findSimilarReducer(s, receiveSimilar('w', 0, { hits: [hit(9)], next: null, total: 1 }));
    s = findSimilarReducer(s, requestSimilar('w', { kind: 'region', regionId: 'r' }, 1));
    expect(s.w).toMatchObject({ hits: [], mode: 'idle', requestId: 1, status: 'loading' });
  });
  it('appends "more" pages and ignores answers to superseded requests', () => {
    let s = findSimilarReducer({}, requestSimilar('w', {}, 1));
    s = findSimilarReducer(s, receiveSimilar('w', 1, { hits: [hit(1)], next: 'p2', total: 2 }));
    s = findSimilarReducer(s, { requestId: 1, type: ActionTypes.REQUEST_MORE, windowId: 'w' });
    expect(s.w.loadingMore).toBe(true);
    s = findSimilarReducer(s, receiveSimilar('w', 1, { hits: [hit(2)], next: null, total: null }, true));
    expect(s.w.hits.map((h) => h.id)).toEqual(['h1', 'h2']);
    expect(s.w).toMatchObject({ loadingMore: false, next: null, status: 'done', total: 2 });
    const stale = findSimilarReducer(s, receiveSimilar('w', 0, { hits: [], next: null }));
    expect(stale).toBe(s);
  });
  it('keeps shown hits when a "more" page fails, shows an error otherwise', () => {
    let s = findSimilarReducer({}, requestSimilar('w', {}, 1));
    s = findSimilarReducer(s, { error: 'boom', requestId: 1, type: ActionTypes.FAIL, windowId: 'w' });
    expect(s.w).toMatchObject({ error: 'boom', status: 'error' });
    s = findSimilarReducer(s, requestSimilar('w', {}, 2));
    s = findSimilarReducer(s, receiveSimilar('w', 2, { hits: [hit(1)], next: 'p2' }));
    s = findSimilarReducer(s, { requestId: 2, type: ActionTypes.REQUEST_MORE, windowId: 'w' });
    s = findSimilarReducer(s, { error: 'down', requestId: 2, type: ActionTypes.FAIL, windowId: 'w' });
    expect(s.w).toMatchObject({ error: 'down', status: 'done' });
    expect(s.w.hits).toHaveLength(1);
  });
  it('forgets a window when Mirador removes it', () => {
    const s = findSimilarReducer({ w: {}, x: {} }, removeWindow('w'));
    expect(Object.keys(s)).toEqual(['x']);
  });
});

function makeStore(findSimilarConfig) {
  const store = createStore({ findSimilar: findSimilarReducer });
  store.dispatch(importConfig({ findSimilar: findSimilarConfig }));
  // A bare window (no manifest, so no saga goes to the network).
  store.dispatch({
    companionWindows: [], type: MiradorActionTypes.ADD_WINDOW, window: { companionWindowIds: [], id: 'w' },
  });
  return store;
}

describe('thunks against a real Mirador store', () => {
  it('merges config with the panel options', () => {
    const store = makeStore({ endpoint: 'http://svc', k: 20, model: 'siglip' });
    store.dispatch(setFindSimilarOptions('w', { classFilter: 'map', k: 5 }));
    expect(getFindSimilarSettings(store.getState(), 'w')).toMatchObject({
      classFilter: 'map', endpoint: 'http://svc', k: 5, model: 'siglip',
    });
  });
  it('asks the service, opens the panel and pages with next', async () => {
    const store = makeStore({ endpoint: 'http://svc', k: 1, model: 'fingerprint' });
    const pages = {
      'http://svc/similar/r1?model=fingerprint&k=1&size=10': {
        items: [{ id: 'a1', target: 'http://b/canvas/1#xywh=1,2,3,4' }], next: 'http://svc/p2', type: 'AnnotationPage',
      },
      'http://svc/p2': { items: [{ id: 'a2', target: 'http://b/canvas/2#xywh=5,6,7,8' }], type: 'AnnotationPage' },
    };
    const fetchImpl = vi.fn(async (url) => ({ ok: true, status: 200, text: async () => JSON.stringify(pages[url]) }));
    await store.dispatch(findSimilar('w', { kind: 'region', regionId: 'r1' }, { fetchImpl }));
    let w = getFindSimilarWindowState(store.getState(), 'w');
    expect(w.hits.map((h) => h.id)).toEqual(['a1']);
    expect(w.next).toBe('http://svc/p2');
    const companions = Object.values(store.getState().companionWindows);
    expect(companions.some((c) => c.content === 'findSimilar' && c.position === 'right')).toBe(true);
    await store.dispatch(findMoreSimilar('w', { fetchImpl }));
    w = getFindSimilarWindowState(store.getState(), 'w');
    expect(w.hits.map((h) => h.id)).toEqual(['a1', 'a2']);
    expect(fetchImpl).toHaveBeenCalledTimes(2);
  });
  it('shows a missing endpoint as an error state', async () => {
    const store = makeStore({});
    await store.dispatch(findSimilar('w', { kind: 'region', regionId: 'r1' }));
    expect(getFindSimilarWindowState(store.getState(), 'w')).toMatchObject({ status: 'error' });
    expect(getFindSimilarWindowState(store.getState(), 'w').error).toMatch(/endpoint/);
  });
});

import { ActionTypes as MiradorActionTypes } from 'mirador';
import { ActionTypes } from './actions';

const initialWindowState = {
  error: null,
  hits: [],
  loadingMore: false,
  mode: 'idle',
  next: null,
  options: {},
  query: null,
  requestId: 0,
  status: 'idle',
  total: null,
};

function updateWindowState(state, windowId, fn) {
  const existing = state[windowId];
  const next = fn(existing || initialWindowState);
  // Unchanged (e.g. a stale answer): keep the same object so connected components do not re-render.
  return next === existing ? state : { ...state, [windowId]: next };
}

/** Per-window state of the find-similar panel. Answers to superseded requests are dropped. */
export function findSimilarReducer(state = {}, action = {}) {
  switch (action.type) {
    case ActionTypes.SET_MODE:
      return updateWindowState(state, action.windowId, (w) => ({ ...w, mode: action.mode }));
    case ActionTypes.SET_OPTIONS:
      return updateWindowState(state, action.windowId, (w) => ({
        ...w, options: { ...w.options, ...action.options },
      }));
    case ActionTypes.REQUEST:
      return updateWindowState(state, action.windowId, (w) => ({
        ...w,
        error: null,
        hits: [],
        loadingMore: false,
        mode: 'idle',
        next: null,
        query: action.query,
        requestId: action.requestId,
        status: 'loading',
        total: null,
      }));
    case ActionTypes.REQUEST_MORE:
      return updateWindowState(state, action.windowId, (w) => (
        w.requestId === action.requestId ? { ...w, error: null, loadingMore: true } : w));
    case ActionTypes.RECEIVE:
      return updateWindowState(state, action.windowId, (w) => {
        if (w.requestId !== action.requestId) return w;
        return {
          ...w,
          error: null,
          hits: action.append ? [...w.hits, ...action.page.hits] : action.page.hits,
          loadingMore: false,
          next: action.page.next,
          status: 'done',
          total: action.page.total ?? w.total,
        };
      });
    case ActionTypes.FAIL:
      return updateWindowState(state, action.windowId, (w) => {
        if (w.requestId !== action.requestId) return w;
        // A failed "more" keeps the hits already shown.
        return {
          ...w, error: action.error, loadingMore: false, status: w.loadingMore ? 'done' : 'error',
        };
      });
    case MiradorActionTypes.REMOVE_WINDOW: {
      if (!(action.windowId in state)) return state;
      const { [action.windowId]: removed, ...rest } = state;
      return rest;
    }
    default:
      return state;
  }
}

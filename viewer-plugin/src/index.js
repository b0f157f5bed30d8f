// mirador-find-similar: everything Mirador-specific is wired here (targets, state mapping, config).
import {
  addCompanionWindow,
  getCompanionWindowsForContent,
  getCanvasLabel,
  getCurrentCanvas,
  getPresentAnnotationsOnSelectedCanvases,
  getWindow,
} from 'mirador';
import { FindSimilarButton } from './components/FindSimilarButton';
import { FindSimilarOverlay } from './components/FindSimilarOverlay';
import { FindSimilarPanel } from './components/FindSimilarPanel';
import {
  COMPANION_KEY,
  findMoreSimilar,
  findSimilar,
  getFindSimilarSettings,
  getFindSimilarWindowState,
  setFindSimilarMode,
  setFindSimilarOptions,
  showHit,
} from './state/actions';
import { findSimilarReducer } from './state/reducer';
import { translations } from './translations';

/** Open the results panel on the right unless it is open already. */
export function openFindSimilarPanel(windowId) {
  return (dispatch, getState) => {
    if (getCompanionWindowsForContent(getState(), { content: COMPANION_KEY, windowId }).length > 0) return;
    dispatch(addCompanionWindow(windowId, { content: COMPANION_KEY, position: 'right' }));
  };
}

const defaultConfig = {
  findSimilar: {
    classes: [], // class labels offered as a filter, e.g. ['illustration', 'map', 'music']
    endpoint: '', // base URL of the iiif-visual-search service, e.g. https://example.org/ivs
    k: 20, // neighbours asked for
    pageSize: 10, // hits per page where the service pages (GET /similar/{region})
    model: '', // '' = the service's default model
    models: [], // models offered in the panel
  },
  translations,
};

export const findSimilarPlugin = [
  {
    component: FindSimilarButton,
    config: defaultConfig,
    mapDispatchToProps: { openPanel: openFindSimilarPanel, setMode: setFindSimilarMode },
    mapStateToProps: (state, { windowId }) => ({
      drawing: getFindSimilarWindowState(state, windowId).mode === 'draw',
    }),
    mode: 'add',
    name: 'FindSimilarButton',
    reducers: { findSimilar: findSimilarReducer },
    target: 'WindowTopBarPluginArea',
  },
  {
    component: FindSimilarOverlay,
    mapDispatchToProps: { findSimilar, setMode: setFindSimilarMode },
    mapStateToProps: (state, { windowId }) => {
      const windowState = getFindSimilarWindowState(state, windowId);
      const win = getWindow(state, { windowId }) || {};
      return {
        highlight: win.findSimilarHighlight || null,
        manifestId: win.manifestId || null,
        mode: windowState.mode || 'idle',
        query: windowState.query || null,
      };
    },
    mode: 'add',
    name: 'FindSimilarOverlay',
    target: 'OpenSeadragonViewer',
  },
  {
    companionWindowKey: COMPANION_KEY,
    component: FindSimilarPanel,
    mapDispatchToProps: {
      findMore: findMoreSimilar,
      findSimilar,
      setMode: setFindSimilarMode,
      setOptions: setFindSimilarOptions,
      showHit,
    },
    mapStateToProps: (state, { windowId }) => {
      const windowState = getFindSimilarWindowState(state, windowId);
      const canvas = getCurrentCanvas(state, { windowId });
      const queryCanvasId = windowState.query && windowState.query.canvasId;
      return {
        annotationLists: getPresentAnnotationsOnSelectedCanvases(state, { windowId }),
        canvasLabel: queryCanvasId ? getCanvasLabel(state, { canvasId: queryCanvasId, windowId }) : '',
        currentCanvasId: canvas ? canvas.id : null,
        currentManifestId: (getWindow(state, { windowId }) || {}).manifestId || null,
        settings: getFindSimilarSettings(state, windowId),
        windowState,
      };
    },
    name: 'FindSimilarPanel',
  },
];

export { findSimilarReducer } from './state/reducer';
export * from './state/actions';
export * from './lib/geometry';
export * from './lib/parse';
export * from './lib/request';
export { regionAnnotationsFromLists } from './lib/regions';
export { translations } from './translations';
export default findSimilarPlugin;

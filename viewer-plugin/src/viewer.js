// Entry of the self-contained bundle for plain <script> pages: Mirador 4 and this plugin share one
// React, which a separately built plugin cannot do with Mirador's UMD file (it exports no React).
// `MiradorFindSimilar.Mirador` is Mirador's whole module (actions, selectors, OSDReferences, …).
import * as Mirador from 'mirador';
import findSimilarPlugin from './index';

export { findSimilarPlugin };
export { Mirador };

/** Mirador.viewer with the find-similar plugin added to `plugins`. */
export function viewer(config, plugins = []) {
  return Mirador.viewer(config, [...findSimilarPlugin, ...plugins]);
}

// The service's own region annotations among the annotations Mirador has loaded for a window.
import { regionIdFromAnnotationId } from './parse';

/**
 * Mirador annotation lists/pages (with `.resources`, as from getPresentAnnotationsOnSelectedCanvases)
 * → [{ id, regionId, canvasId, xywh, label }] for annotations minted by `endpoint` (when given).
 */
export function regionAnnotationsFromLists(lists, endpoint) {
  const base = String(endpoint || '').replace(/\/+$/, '');
  const seen = new Set();
  const out = [];
  (lists || []).forEach((list) => {
    (list.resources || []).forEach((resource) => {
      const { id } = resource;
      if (!id || seen.has(id)) return;
      if (base && !id.startsWith(base)) return;
      const regionId = regionIdFromAnnotationId(id);
      const xywh = resource.fragmentSelector;
      if (!regionId || !xywh || xywh.some((n) => Number.isNaN(n))) return;
      seen.add(id);
      const tags = resource.tags || [];
      out.push({
        canvasId: resource.targetId,
        id,
        label: [...tags, resource.chars].filter(Boolean).join(' ').trim().slice(0, 80),
        regionId,
        xywh,
      });
    });
  });
  return out;
}

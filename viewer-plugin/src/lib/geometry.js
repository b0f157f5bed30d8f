// Coordinate conversion between the OpenSeadragon viewer element (CSS pixels), the Mirador
// "world" (= OSD viewport coordinates: canvases laid side by side, scaled to a common height)
// and one canvas's own coordinate space (what the service stores and answers in).
// Rotation and flip are not handled: Mirador 4 applies them to the whole viewer, and a box drawn
// on a rotated view would need the inverse transform (not done; the draw control says so).

/** The canvases laid out in the world, as plain boxes; `width`/`height` are the canvas's own size. */
export function canvasBoxesFromWorld(canvasWorld) {
  if (!canvasWorld || !canvasWorld.canvasDimensions) return [];
  return canvasWorld.canvasDimensions.map((d) => ({
    height: d.canvas.getHeight(),
    id: d.canvas.id,
    width: d.canvas.getWidth(),
    world: { h: d.height, w: d.width, x: d.x, y: d.y },
  }));
}

/**
 * Viewer-element pixel → world point, from the viewport's current bounds (no rotation) and the
 * container size: the same affine map OSD's `viewerElementToViewportCoordinates` uses.
 */
export function pixelToWorld(px, bounds, containerSize) {
  const scale = bounds.width / containerSize.x;
  return { x: bounds.x + px.x * scale, y: bounds.y + px.y * scale };
}

/** World point → viewer-element pixel (inverse of pixelToWorld). */
export function worldToPixel(pt, bounds, containerSize) {
  const scale = containerSize.x / bounds.width;
  return { x: (pt.x - bounds.x) * scale, y: (pt.y - bounds.y) * scale };
}

function overlapArea(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * A world rectangle → { canvasId, xywh: [x, y, w, h] } on the canvas it overlaps most, as integers
 * clipped to the canvas. Null when it touches no canvas or is smaller than `minSize` canvas units.
 */
export function worldRectToCanvasRegion(rect, boxes, minSize = 4) {
  let best = null;
  let bestArea = 0;
  boxes.forEach((box) => {
    const area = overlapArea(rect, box.world);
    if (area > bestArea) { best = box; bestArea = area; }
  });
  if (!best) return null;
  const sx = best.width / best.world.w;
  const sy = best.height / best.world.h;
  const x0 = Math.max(0, Math.floor((rect.x - best.world.x) * sx));
  const y0 = Math.max(0, Math.floor((rect.y - best.world.y) * sy));
  const x1 = Math.min(best.width, Math.ceil((rect.x + rect.w - best.world.x) * sx));
  const y1 = Math.min(best.height, Math.ceil((rect.y + rect.h - best.world.y) * sy));
  if (x1 - x0 < minSize || y1 - y0 < minSize) return null;
  return { canvasId: best.id, xywh: [x0, y0, x1 - x0, y1 - y0] };
}

/** Canvas xywh → world rectangle, or null when that canvas is not in the world (not visible). */
export function canvasRegionToWorldRect(canvasId, xywh, boxes) {
  const box = boxes.find((b) => b.id === canvasId);
  if (!box || !box.width || !box.height) return null;
  const sx = box.world.w / box.width;
  const sy = box.world.h / box.height;
  const [x, y, w, h] = xywh;
  return {
    h: h * sy, w: w * sx, x: box.world.x + x * sx, y: box.world.y + y * sy,
  };
}

/** Two pointer positions (any order) → a normalised {x, y, w, h} rectangle. */
export function rectFromPoints(a, b) {
  return {
    h: Math.abs(b.y - a.y), w: Math.abs(b.x - a.x), x: Math.min(a.x, b.x), y: Math.min(a.y, b.y),
  };
}

/** Parse `xywh=1,2,3,4` (optionally after a `#`) into integers; null for anything else. */
export function parseXywh(value) {
  if (typeof value !== 'string') return null;
  const m = value.match(/xywh=(?:pixel:)?(\d+(?:\.\d+)?),(\d+(?:\.\d+)?),(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)$/);
  if (!m) return null;
  return m.slice(1, 5).map((n) => Math.round(Number(n)));
}

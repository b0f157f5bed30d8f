import { describe, expect, it } from 'vitest';
import {
  canvasRegionToWorldRect, parseXywh, pixelToWorld, rectFromPoints, worldRectToCanvasRegion, worldToPixel,
} from '../src/lib/geometry';

// Book view: two canvases scaled to a common world height of 1000 (Mirador's CanvasWorld layout).
const boxes = [
  { height: 2000, id: 'c1', width: 1500, world: { h: 1000, w: 750, x: 0, y: 0 } },
  { height: 1000, id: 'c2', width: 800, world: { h: 1000, w: 800, x: 750, y: 0 } },
];

describe('pixel ↔ world', () => {
  const bounds = { height: 500, width: 1000, x: 100, y: 50 };
  const container = { x: 500, y: 250 };
  it('maps through the viewport bounds and back', () => {
    const w = pixelToWorld({ x: 250, y: 100 }, bounds, container);
    expect(w).toEqual({ x: 600, y: 250 });
    expect(worldToPixel(w, bounds, container)).toEqual({ x: 250, y: 100 });
  });
});

describe('worldRectToCanvasRegion', () => {
  it('scales world units to the canvas size of a scaled canvas', () => {
    expect(worldRectToCanvasRegion({ h: 100, w: 100, x: 100, y: 200 }, boxes))
      .toEqual({ canvasId: 'c1', xywh: [200, 400, 200, 200] });
  });
  it('picks the canvas the box overlaps most and clips to it', () => {
    expect(worldRectToCanvasRegion({ h: 1200, w: 300, x: 700, y: -100 }, boxes))
      .toEqual({ canvasId: 'c2', xywh: [0, 0, 250, 1000] });
  });
  it('returns integers that cover fractional edges', () => {
    const r = worldRectToCanvasRegion({ h: 10.2, w: 10.2, x: 750.4, y: 0.6 }, boxes);
    expect(r.xywh.every(Number.isInteger)).toBe(true);
    expect(r.xywh).toEqual([0, 0, 11, 11]);
  });
  it('rejects boxes outside every canvas or too small', () => {
    expect(worldRectToCanvasRegion({ h: 10, w: 10, x: 2000, y: 0 }, boxes)).toBeNull();
    expect(worldRectToCanvasRegion({ h: 1, w: 1, x: 10, y: 10 }, boxes)).toBeNull();
  });
  it('round-trips with canvasRegionToWorldRect', () => {
    const world = canvasRegionToWorldRect('c1', [300, 600, 150, 400], boxes);
    expect(world).toEqual({ h: 200, w: 75, x: 150, y: 300 });
    expect(worldRectToCanvasRegion(world, boxes)).toEqual({ canvasId: 'c1', xywh: [300, 600, 150, 400] });
    expect(canvasRegionToWorldRect('elsewhere', [0, 0, 1, 1], boxes)).toBeNull();
  });
});

describe('small helpers', () => {
  it('normalises a dragged rectangle whatever the direction', () => {
    expect(rectFromPoints({ x: 10, y: 40 }, { x: 4, y: 2 })).toEqual({ h: 38, w: 6, x: 4, y: 2 });
  });
  it('parses plain and pixel: xywh fragments only', () => {
    expect(parseXywh('https://x/canvas/1#xywh=1,2,3,4')).toEqual([1, 2, 3, 4]);
    expect(parseXywh('xywh=pixel:1,2,3,4')).toEqual([1, 2, 3, 4]);
    expect(parseXywh('xywh=percent:1,2,3,4')).toBeNull();
    expect(parseXywh(undefined)).toBeNull();
  });
});

import {
  useCallback, useEffect, useReducer, useRef, useState,
} from 'react';
import { useTranslation } from 'mirador';
import {
  canvasBoxesFromWorld, canvasRegionToWorldRect, pixelToWorld, rectFromPoints, worldRectToCanvasRegion, worldToPixel,
} from '../lib/geometry';

const layer = {
  inset: 0, pointerEvents: 'none', position: 'absolute', zIndex: 10,
};

function viewState(viewer) {
  if (!viewer || !viewer.viewport) return null;
  const bounds = viewer.viewport.getBounds(true);
  const containerSize = viewer.viewport.getContainerSize();
  if (!containerSize || !containerSize.x) return null;
  return { bounds, containerSize };
}

function Box({
  rect, view, className, style, ...rest
}) {
  if (!rect || !view) return null;
  const a = worldToPixel({ x: rect.x, y: rect.y }, view.bounds, view.containerSize);
  const b = worldToPixel({ x: rect.x + rect.w, y: rect.y + rect.h }, view.bounds, view.containerSize);
  return (
    <div
      className={className}
      style={{
        boxSizing: 'border-box',
        height: b.y - a.y,
        left: a.x,
        position: 'absolute',
        top: a.y,
        width: b.x - a.x,
        ...style,
      }}
      {...rest}
    />
  );
}

/**
 * Drawn over the OpenSeadragon viewer: the rubber band while the user drags a box, the box that
 * was asked about, and the hit region chosen in the results panel (`findSimilarHighlight`).
 */
export function FindSimilarOverlay({
  canvasWorld, findSimilar, highlight = null, manifestId = null, mode = 'idle', query = null, setMode, viewer, windowId,
}) {
  const { t } = useTranslation();
  const [, redraw] = useReducer((n) => n + 1, 0);
  const [drag, setDrag] = useState(null);
  const surface = useRef(null);

  useEffect(() => {
    if (!viewer) return undefined;
    // OSD moves the picture without React knowing; follow every frame it draws.
    viewer.addHandler('update-viewport', redraw);
    viewer.addHandler('resize', redraw);
    return () => {
      viewer.removeHandler('update-viewport', redraw);
      viewer.removeHandler('resize', redraw);
    };
  }, [viewer]);

  useEffect(() => {
    if (mode === 'draw' && surface.current) surface.current.focus();
    if (mode !== 'draw') setDrag(null);
  }, [mode]);

  const toWorld = useCallback((event) => {
    const view = viewState(viewer);
    const box = surface.current.getBoundingClientRect();
    return pixelToWorld({ x: event.clientX - box.left, y: event.clientY - box.top }, view.bounds, view.containerSize);
  }, [viewer]);

  const view = viewState(viewer);
  const boxes = canvasBoxesFromWorld(canvasWorld);

  const onPointerDown = (event) => {
    if (!view) return;
    event.preventDefault();
    event.stopPropagation();
    if (surface.current.setPointerCapture) surface.current.setPointerCapture(event.pointerId);
    const start = toWorld(event);
    setDrag({ end: start, start });
  };
  const onPointerMove = (event) => {
    if (!drag) return;
    event.stopPropagation();
    setDrag({ ...drag, end: toWorld(event) });
  };
  const onPointerUp = (event) => {
    if (!drag) return;
    event.stopPropagation();
    const region = worldRectToCanvasRegion(rectFromPoints(drag.start, toWorld(event)), boxes);
    setDrag(null);
    if (!region) return;
    findSimilar(windowId, {
      canvasId: region.canvasId, kind: 'box', manifestId, xywh: region.xywh,
    });
  };
  const onKeyDown = (event) => {
    if (event.key === 'Escape') {
      setDrag(null);
      setMode(windowId, 'idle');
    }
  };

  const queryRect = query && query.canvasId && query.xywh
    ? canvasRegionToWorldRect(query.canvasId, query.xywh, boxes) : null;
  const highlightRect = highlight ? canvasRegionToWorldRect(highlight.canvasId, highlight.xywh, boxes) : null;

  return (
    <div className="mirador-find-similar-overlay" style={layer}>
      <Box
        className="mirador-find-similar-query"
        rect={queryRect}
        style={{ border: '2px dashed #ff9800' }}
        view={view}
        data-canvas={query && query.canvasId}
        data-xywh={query && query.xywh && query.xywh.join(',')}
      />
      <Box
        className="mirador-find-similar-highlight"
        rect={highlightRect}
        style={{ background: 'rgba(0, 191, 255, 0.2)', border: '3px solid #00bfff' }}
        view={view}
        data-canvas={highlight && highlight.canvasId}
        data-xywh={highlight && highlight.xywh.join(',')}
      />
      {mode === 'draw' && (
        <div
          aria-label={t('findSimilarDrawOverlay')}
          className="mirador-find-similar-draw"
          onKeyDown={onKeyDown}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          ref={surface}
          role="application"
          style={{
            ...layer, cursor: 'crosshair', outline: 'none', pointerEvents: 'auto', touchAction: 'none',
          }}
          tabIndex={0}
          title={t('findSimilarDrawHint')}
        >
          {drag && (
            <Box
              className="mirador-find-similar-rubberband"
              rect={rectFromPoints(drag.start, drag.end)}
              style={{ background: 'rgba(255, 152, 0, 0.15)', border: '2px solid #ff9800' }}
              view={view}
            />
          )}
        </div>
      )}
    </div>
  );
}
